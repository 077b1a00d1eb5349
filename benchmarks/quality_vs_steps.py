"""Sample quality against the number of sampler steps, for four samplers, stored for notebook 05.

    python benchmarks/quality_vs_steps.py                       # the pretrained model, n = 200, steps 10 20 50 100
    python benchmarks/quality_vs_steps.py --n 500 --ddpm-1000   # the full run (DDPM-1000 is slow on a CPU)
    python benchmarks/quality_vs_steps.py --model random-tiny --n 10 --steps 2 3 --out /tmp/q.json  # a smoke test

The four samplers share one trained network and differ only in the reverse step:
  DDPM σ² = β̃  ("ddpm-S")       ancestral sampling with the posterior variance (diffviz's default);
  DDPM σ² = β  ("ddpm-S:beta")  the same chain with the larger variance β (Ho et al. 2020, Sec. 3.2);
  DDIM η = 0   ("ddim-S")       deterministic DDIM (Song et al. 2020, Eq. 12);
  DDIM η = 1   ("ddim-S:eta1")  DDIM with σ(η = 1), which equals respaced DDPM σ² = β̃.
Song et al. 2020, Table 1 calls σ² = β "σ̂" and finds it far worse than η = 0 at few steps.

Every row starts from the same noise x_T (the generator is re-seeded per row) with labels cycling
0, 1, …, 9, and is measured with ``benchmarks/sample_quality.py``'s columns (feature-FID against
the 500 held-out test digits, class accuracy, …). The "real digits" floor is n class-balanced
real digits measured the same way, at the SAME n: feature-FID is biased upwards at small n.
The JSON names the model by its weights' sha256 and training step, so a notebook can tell when
the stored file was measured on a model other than the one shipped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_quality import (check_model, draw_samples, load_eps_model, measure, model_identity,  # noqa: E402
                            parse_row, reference_row)

from diffviz import quality  # noqa: E402  (sample_quality put the repository on sys.path)

SAMPLERS = {"ddpm_small": ("DDPM σ² = β̃", "ddpm-{}"), "ddpm_large": ("DDPM σ² = β", "ddpm-{}:beta"),
            "ddim_eta0": ("DDIM η = 0", "ddim-{}"), "ddim_eta1": ("DDIM η = 1", "ddim-{}:eta1")}
DEFAULT_STEPS = [10, 20, 50, 100]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "quality_vs_steps.json"


def plan(steps, ddpm_1000: bool) -> list[tuple[str, int, str]]:
    """(sampler key, steps, row spec) for every point of every curve."""
    points = [(key, s, spec.format(s)) for key, (_, spec) in SAMPLERS.items() for s in steps]
    if ddpm_1000 and 1000 not in steps:
        points.append(("ddpm_small", 1000, "ddpm-1000"))
    return points


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="an exported model or checkpoint folder (default: the pretrained model)")
    parser.add_argument("--model", choices=["random-tiny"], help="a stand-in model instead of --checkpoint")
    parser.add_argument("--n", type=int, default=200, help="samples per point, class-balanced (default 200)")
    parser.add_argument("--steps", type=int, nargs="+", default=DEFAULT_STEPS, help="sampler steps per curve")
    parser.add_argument("--ddpm-1000", action="store_true", help="add DDPM σ² = β̃ at all 1000 steps (slow)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the starting noise (same for every point)")
    parser.add_argument("--batch-size", type=int, default=250, help="samples per sampler call")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON to write (default {DEFAULT_OUT})")
    parser.add_argument("--device", default="cpu", help="run the model here (the noise still comes from CPU generators)")
    args = parser.parse_args(argv)
    if args.n < 10:
        raise ValueError(f"--n must be at least 10 (one sample per digit), got {args.n}")
    torch.set_num_threads(args.threads)

    model, schedule, description = load_eps_model(args)
    model = model.to(args.device)
    num_classes = check_model(model)
    if num_classes is None:
        raise ValueError(f"class accuracy needs a class-conditional model; {description} is unconditional")
    labels = quality.cycling_labels(args.n, num_classes)
    reference = quality.Reference()
    points = []
    for key, steps, spec in plan(args.steps, args.ddpm_1000):
        print(f"{spec} ...", end=" ", file=sys.stderr, flush=True)
        start = time.perf_counter()
        images = draw_samples(model, schedule, parse_row(spec), args.n, labels, args.seed, min(args.batch_size, args.n))
        seconds = time.perf_counter() - start
        points.append({"sampler": key, "label": SAMPLERS[key][0], "steps": steps, "row": spec,
                       **measure(images, labels, reference), "seconds": seconds})
        print(f"{seconds:.0f} s, FID {points[-1]['fid']:.1f}, accuracy {points[-1]['accuracy']:.3f}",
              file=sys.stderr, flush=True)

    result = {"model": description, **{f"model_{k}": v for k, v in model_identity(args, model).items()},
              "n": args.n, "seed": args.seed, "threads": args.threads, "device": args.device,
              "samplers": {key: label for key, (label, _) in SAMPLERS.items()},
              "real": reference_row(args.n, args.seed, reference), "points": points}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
