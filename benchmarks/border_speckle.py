"""Background speckle of a digit model's samples: lit pixels in the outer 3-pixel frame, where real
MNIST digits are almost always black (``diffviz.quality.border_speckle``).

    python benchmarks/border_speckle.py                       # the shipped model, n = 200
    python benchmarks/border_speckle.py --checkpoint runs/mnist/step-003000

Every sampler starts from the same x_T (seed 1) with labels 0–9 cycling. The last column is the
median over samples of max |x̂₀| at the first step: how far the first clean-image guess overshoots
[−1, 1] (x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t divides ε̂'s error by √ᾱ_t ≈ 0.006 at t = 999).
"""
import argparse
import time

import torch

import diffviz
from diffviz import quality

SAMPLERS = {  # name -> diffviz.sample keywords
    "DDIM-50": dict(sampler="ddim", num_steps=50),
    "DDIM-50, x̂₀ clipped": dict(sampler="ddim", num_steps=50, clip_sample=True),
    "DDPM-50 (σ² = β̃)": dict(sampler="ddpm", num_steps=50),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a checkpoint folder or an exported model (default: the pretrained model)")
    parser.add_argument("--n", type=int, default=200, help="samples per sampler (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="seeds x_T and the DDPM noise")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        model, schedule, _ = diffviz.load_model(args.checkpoint)
    else:
        model, schedule, _ = diffviz.load_pretrained("mnist")
    reference = quality.Reference()
    labels = quality.cycling_labels(args.n)
    x_T = torch.randn((args.n, 1, 28, 28), generator=torch.Generator().manual_seed(args.seed))
    print(f"n = {args.n}, seed {args.seed}, {args.threads} thread(s)\n")
    print(f"{'samples':<22} {'border speckle':>14} {'feature-FID':>11} {'accuracy':>9} {'max|x̂₀| step 1':>16} {'seconds':>8}")
    print(f"{'real test digits':<22} {quality.border_speckle(reference.test.x):>14.4f}")
    for name, keywords in SAMPLERS.items():
        began = time.perf_counter()
        trajectory = diffviz.sample(model, schedule, x_T.shape, x_T=x_T, y=labels, record=True,
                                    generator=torch.Generator().manual_seed(args.seed), **keywords)
        images = trajectory.sample.clamp(-1, 1)
        scores = quality.measure(images, labels, reference)
        overshoot = trajectory.x0_hat[0].flatten(1).abs().amax(1).median().item()
        print(f"{name:<22} {quality.border_speckle(images):>14.4f} {scores['fid']:>11.1f} {scores['accuracy']:>9.3f} "
              f"{overshoot:>16.1f} {time.perf_counter() - began:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
