"""Readable digits from scratch in minutes on a laptop CPU: a small latent-diffusion pipeline, one command.

    python benchmarks/latent_in_minutes.py                       # both cores (--threads 2), ~10 minutes
    python benchmarks/latent_in_minutes.py --ae-steps 20 --ldm-steps 20 --n 20 --out /tmp/q   # a smoke test

Pixel diffusion on 28×28 digits needs about an hour of one CPU core to reach the bar of issue 11 (the
``mnist`` recipe first met it at its step-5,250 snapshot, 55 minutes; ``time_to_quality.py``). A
latent model denoises 196 numbers instead of 784 at 3.3× fewer FLOPs per step (Rombach et al. 2022;
``latent_vs_pixel.py``), so it gets there sooner. This script runs, in order and from scratch:

  1. ``train_autoencoder.py --steps AE_STEPS`` — the KL autoencoder 28×28 → 4×7×7 (``mnist-autoencoder``'s
     architecture and recipe, fewer steps);
  2. ``train_latent_diffusion.py --steps LDM_STEPS`` — the class-conditional latent U-Net on the encoded
     training digits with the project's recipe (linear schedule, T = 1000, ε-prediction, min-SNR-γ 5,
     cosine learning rate, EMA with warm-up, label dropout 0.1), then its evaluation: n class-balanced
     DDIM-50 samples at w = 1 (and w = 2), decoded, scored by ``diffviz.metrics``.

It prints the training time (autoencoder + encoding + latent U-Net, from the two models' JSON cards and
the processes' clocks), the whole command's wall time, and the result against the bar: class accuracy
≥ 0.9 and feature-FID ≤ 2 × the FID of n class-balanced real training digits (21.0 at n = 200). It
also draws 40 digits (0–9 four times, DDIM-50, w = 1, seed 0) into OUT/samples.png, to look at.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from diffviz import quality  # noqa: E402
from time_to_quality import BAR_ACCURACY, BAR_FID_RATIO  # noqa: E402  (issue 11's bar, one definition)


def run(script: str, threads: int, *args) -> float:
    """Run one benchmarks/ script to the end with ``threads`` torch threads; its wall seconds."""
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *map(str, args), "--threads", str(threads)],
                   check=True, env=env)
    return time.perf_counter() - start


def draw_samples(out: Path) -> Path:
    """40 digits from the trained pair, 0–9 four times, into OUT/samples.png."""
    import torch

    from diffviz.images import save_image_grid
    from diffviz.latent import load_latent_diffusion

    model, _, _ = load_latent_diffusion(out / "ldm", out / "ae")
    digits = model.sample((40, 1, 28, 28), sampler="ddim", num_steps=50, y=torch.arange(40) % 10, record=False,
                          generator=torch.Generator().manual_seed(0)).sample.clamp(-1, 1)
    return save_image_grid(digits, out / "samples.png", nrow=10, scale=3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ae-steps", type=int, default=800, help="autoencoder steps (the shipped one: 2000)")
    parser.add_argument("--ldm-steps", type=int, default=3200, help="latent U-Net steps (the shipped one: 3200)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both stages (default 2: both cores)")
    parser.add_argument("--n", type=int, default=200, help="samples for the metrics (a multiple of 10)")
    parser.add_argument("--out", type=Path, help="folder for the two models (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="latent_in_minutes-"))
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    ae_wall = run("train_autoencoder.py", args.threads, "--steps", args.ae_steps, "--out", out / "ae")
    ldm_wall = run("train_latent_diffusion.py", args.threads, "--steps", args.ldm_steps, "--autoencoder", out / "ae",
                   "--out", out / "ldm", "--eval-n", args.n)
    total = time.perf_counter() - began
    ae = json.loads((out / "ae.json").read_text(encoding="utf-8"))["metadata"]
    ldm = json.loads((out / "ldm.json").read_text(encoding="utf-8"))["metadata"]
    train_seconds = ae["train_seconds"] + ldm["train_seconds"]
    real = quality.real_baseline(args.n, quality.Reference())["fid"]
    result = {"ae_steps": args.ae_steps, "ldm_steps": args.ldm_steps, "threads": args.threads, "n": args.n,
              "autoencoder_train_seconds": ae["train_seconds"], "ldm_train_seconds": ldm["train_seconds"],
              "train_seconds": round(train_seconds, 1), "autoencoder_process_seconds": round(ae_wall, 1),
              "ldm_process_seconds": round(ldm_wall, 1), "command_seconds": round(total, 1), "real_fid": real,
              "autoencoder_recon_accuracy": ae["metrics"]["recon_class_accuracy"], "metrics": ldm["metrics"],
              "hardware": ldm["hardware"]}
    w1 = ldm["metrics"]["w=1"]
    result["at_bar"] = w1["class_accuracy"] >= BAR_ACCURACY and w1["feature_fid"] <= BAR_FID_RATIO * real
    print(f"\ntraining: autoencoder {ae['train_seconds']:.0f} s + latent U-Net {ldm['train_seconds']:.0f} s = "
          f"{train_seconds / 60:.1f} min at {args.threads} thread(s); the whole command {total / 60:.1f} min "
          f"(loading, encoding, exports and evaluation included)")
    for key, row in ldm["metrics"].items():
        print(f"{key}: class accuracy {row['class_accuracy']:.3f}, feature-FID {row['feature_fid']:.1f} "
              f"({row['feature_fid'] / real:.2f}× the real-digit FID {real:.1f} at n = {args.n})")
    print(f"bar (w = 1: accuracy ≥ {BAR_ACCURACY}, FID ≤ {BAR_FID_RATIO:g}× real): "
          f"{'met' if result['at_bar'] else 'not met'}")
    result["samples_png"] = str(draw_samples(out))
    print(f"40 samples: {result['samples_png']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
