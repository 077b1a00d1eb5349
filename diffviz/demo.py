"""A demo that needs no browser (and no ipywidgets): sample digits with the bundled model and draw
x_t | ε̂ | x̂_0.

    python -m diffviz.demo --out demo.png [--steps 50] [--threads 1]

Writes ``demo.png`` (the "full noise removal" view at six timesteps, like the figure in README.md)
and ``demo_samples.png`` (one digit of each class), and prints how long sampling took on how many
threads. Runs on a laptop CPU in a few seconds.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .explorers import trajectory
from .images import save_image_grid
from .pretrained import load_pretrained
from .sampling import sample
from .validate import check_num_steps, finite_number, positive_int


def run(out="demo.png", num_steps=50, seed=0, guidance_scale=2.0, threads=1):
    """Sample 10 digits (classes 0–9) with DDIM-``num_steps`` on ``threads`` torch threads; returns the Trajectory."""
    threads = positive_int("threads", threads)
    out = Path(out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise ValueError(f"out must be a .png file path, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)  # e.g. outputs/ on a fresh checkout
    guidance_scale = finite_number("guidance_scale", guidance_scale, low=0)
    model, schedule, _ = load_pretrained("mnist")
    num_steps = check_num_steps(num_steps, schedule.num_timesteps)
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(10)
    start = time.perf_counter()
    traj = sample(model, schedule, (10, 1, 28, 28), sampler="ddim", num_steps=num_steps, generator=generator,
                  y=labels, guidance_scale=guidance_scale)
    seconds = time.perf_counter() - start
    fig = trajectory.filmstrip(traj, num=6, max_images=4, nrow=2)
    fig.suptitle(f"DDIM-{num_steps}, guidance w = {guidance_scale:g}\ninput x_t | predicted noise ε̂ | "
                 "x̂_0 = the whole noise removed at once", fontsize=10)  # two lines: one is wider than the grid
    fig.savefig(out, dpi=110)
    samples_path = out.with_name(out.stem + "_samples.png")
    save_image_grid(traj.sample, samples_path, nrow=10, scale=4)
    print(f"sampled 10 digits in {seconds:.1f} s on {threads} thread{'s' if threads > 1 else ''}; "
          f"wrote {out} and {samples_path}")
    return traj


def main(argv=None):
    parser = argparse.ArgumentParser(description="Sample digits with the bundled model and draw x_t | ε̂ | x̂_0.")
    parser.add_argument("--out", default="demo.png", help="output PNG (default demo.png)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale w (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady on a shared CPU)")
    args = parser.parse_args(argv)
    try:
        run(args.out, args.steps, args.seed, args.guidance, args.threads)
    except (TypeError, ValueError, OSError) as err:  # bad options, an unwritable --out: one line, exit 2
        parser.error(str(err))


if __name__ == "__main__":
    main()
