"""A demo that needs no browser: sample digits with the bundled model and draw x_t | ε̂ | x̂_0.

    python -m diffviz.demo --out demo.png

Writes ``demo.png`` (the "full noise removal" view at six timesteps, like the figure in README.md)
and ``demo_samples.png`` (one digit of each class). Runs on a laptop CPU in a few seconds.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .images import save_image_grid
from .pretrained import load_pretrained
from .sampling import sample
from .widgets import trajectory_explorer


def run(out="demo.png", num_steps=50, seed=0, guidance_scale=2.0):
    """Sample 10 digits (classes 0–9) with DDIM-``num_steps``; returns the Trajectory."""
    model, schedule, _ = load_pretrained("mnist")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(10)
    start = time.perf_counter()
    traj = sample(model, schedule, (10, 1, 28, 28), sampler="ddim", num_steps=num_steps, generator=generator,
                  y=labels, guidance_scale=guidance_scale)
    seconds = time.perf_counter() - start
    out = Path(out)
    fig = trajectory_explorer(traj, max_images=4, nrow=2).filmstrip(num=6)
    fig.suptitle(f"DDIM-{num_steps}, guidance w = {guidance_scale}: input x_t | predicted noise ε̂ | "
                 "x̂_0 = the whole noise removed at once", fontsize=10)
    fig.savefig(out, dpi=110)
    save_image_grid(traj.sample, out.with_name(out.stem + "_samples.png"), nrow=10, scale=4)
    print(f"sampled 10 digits in {seconds:.1f} s; wrote {out} and {out.with_name(out.stem + '_samples.png')}")
    return traj


def main(argv=None):
    parser = argparse.ArgumentParser(description="Sample digits with the bundled model and draw x_t | ε̂ | x̂_0.")
    parser.add_argument("--out", default="demo.png", help="output PNG (default demo.png)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale w (default 2)")
    args = parser.parse_args(argv)
    run(args.out, args.steps, args.seed, args.guidance)


if __name__ == "__main__":
    main()
