"""Classifier-guided DDIM with the shipped digit model: target-class accuracy against the scale s.

    python benchmarks/classifier_guidance.py                 # ~1-2 minutes on one CPU thread

The ε-model is ``load_pretrained("mnist")`` used unconditionally (y=None, its learned null class);
the classifier is ``load_pretrained("mnist-noisy-classifier")``; ε̂ − s·√(1 − ᾱ_t)·∇ log p_φ(y | x_t)
(Dhariwal & Nichol 2021, Eq. 14). Each scale samples the same N digits (targets 0..9 in turn) from
the same x_T; ``diffviz.metrics`` (an independent classifier trained on clean digits) scores them.
Writes benchmarks/results/classifier_guidance.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffviz import load_pretrained, metrics, sample  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 3.0, 10.0])
    parser.add_argument("--n", type=int, default=50, help="samples per scale (targets cycle through 0..9)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps (η = 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results"
                        / "classifier_guidance.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    unet, schedule, _ = load_pretrained("mnist")
    classifier = load_pretrained("mnist-noisy-classifier").model
    target = torch.arange(args.n) % 10
    rows = []
    for scale in args.scales:
        start = time.perf_counter()
        out = sample(unet, schedule, (args.n, 1, 28, 28), "ddim", num_steps=args.steps, y=target,
                     classifier=classifier, classifier_scale=scale,
                     generator=torch.Generator().manual_seed(args.seed), record=False)
        images = out.sample.clamp(-1, 1)
        rows.append({"scale": scale, "target_accuracy": metrics.class_accuracy(images, target),
                     "histogram_entropy": metrics.class_histogram_entropy(images),
                     "seconds": round(time.perf_counter() - start, 1)})
        print(f"s = {scale:5.1f}: target-class accuracy {rows[-1]['target_accuracy']:.2f}, "
              f"entropy {rows[-1]['histogram_entropy']:.2f} nats, {rows[-1]['seconds']} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"n": args.n, "steps": args.steps, "sampler": "ddim", "eta": 0.0, "seed": args.seed,
              "threads": args.threads, "rows": rows, "torch": torch.__version__}
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
