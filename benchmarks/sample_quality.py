"""Sample quality against sampler steps and guidance, measured offline with diffviz.metrics.

    python benchmarks/sample_quality.py                          # the pretrained MNIST model, 500 samples
    python benchmarks/sample_quality.py --quick                  # 100 samples, DDIM rows only
    python benchmarks/sample_quality.py --checkpoint runs/mnist --rows ddim-50 ddim-50@w3 --json q.json
    python benchmarks/sample_quality.py --model random-tiny --n 20 --rows ddim-5   # a smoke test

A row is SAMPLER-STEPS[@wSCALE]: "ddpm-1000" is ancestral sampling over all 1000 steps, "ddim-50"
is deterministic DDIM (η = 0) over 50 steps, "@w3" sets the classifier-free guidance scale
(0 = unconditional, 1 = plain conditional, the default). Labels cycle 0, 1, …, 9, so class
accuracy asks "does a sample generated as a 7 look like a 7?". Every row starts from the same
noise x_T (the generator is re-seeded per row), so rows differ only by the sampler.

Columns: feature-FID against the 500 held-out test digits (lower is better; it is biased upwards
for small --n, so compare with the "real digits" row, which has the same n), class accuracy,
entropy of the predicted-class histogram in nats (max log 10 = 2.303), the fraction of samples
closer to a training image than 95% of real held-out digits are (≈ 5% means no copying), the
median distance to the nearest training image, and the seconds the sampling took.
DDPM-1000 is slow on a CPU: about 1000 × (n / batch) U-Net calls; the estimate is printed first.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import diffviz  # noqa: E402
from diffviz import metrics, quality  # noqa: E402

DEFAULT_ROWS = ["ddpm-1000", "ddim-100", "ddim-50", "ddim-20", "ddim-10", "ddim-50@w0", "ddim-50@w1", "ddim-50@w3"]
QUICK_ROWS = ["ddim-50", "ddim-20", "ddim-10", "ddim-20@w0", "ddim-20@w3"]
QUICK_N = 100
_ROW = re.compile(r"^(ddpm|ddim)-(\d+)(?:@w(\d+(?:\.\d+)?))?(?::(beta|eta1))?(\+clip)?$")


class Row(NamedTuple):
    sampler: str  # "ddpm" or "ddim"
    steps: int
    scale: float | None  # classifier-free guidance w; None = plain conditional
    variance: str = "fixed_small"  # DDPM's σ²: β̃ ("fixed_small") or β (":beta", "fixed_large")
    eta: float = 0.0  # DDIM's η (":eta1" = 1)
    clip: bool = False  # "+clip": clamp x̂_0 to [-1, 1] at every step


def parse_row(spec: str) -> Row:
    """"ddim-50@w3" → Row("ddim", 50, 3.0); "ddpm-20:beta" → σ² = β; "ddim-20:eta1" → η = 1;
    a "+clip" suffix clamps x̂_0. Without "@w" the scale is None (plain conditional)."""
    match = _ROW.match(spec)
    if not match:
        raise ValueError(f"row {spec!r} is not SAMPLER-STEPS[@wSCALE][:beta|:eta1][+clip], e.g. 'ddpm-1000', "
                         f"'ddim-50@w3', 'ddpm-20:beta', 'ddim-20:eta1'")
    sampler, steps, scale, variant, clip = match.groups()
    if variant == "beta" and sampler != "ddpm" or variant == "eta1" and sampler != "ddim":
        raise ValueError(f"row {spec!r}: ':beta' is a DDPM variance, ':eta1' a DDIM η")
    return Row(sampler, int(steps), None if scale is None else float(scale),
               "fixed_large" if variant == "beta" else "fixed_small", 1.0 if variant == "eta1" else 0.0, bool(clip))


def load_eps_model(args):
    """(model, schedule, description) from --model / --checkpoint / diffviz.load_pretrained."""
    if args.model == "random-tiny":  # an untrained conditional U-Net: exercises the script, not quality
        from diffviz.unet import UNet, preset
        torch.manual_seed(args.seed)
        return UNet(preset("tiny", num_classes=10)).eval(), diffviz.get_schedule("linear"), "untrained tiny U-Net"
    if args.checkpoint is not None:
        from diffviz.checkpoint import load_checkpoint, load_model
        path = Path(args.checkpoint)
        loaded = load_checkpoint(path) if path.is_dir() else load_model(path)
        return loaded.model, loaded.schedule, str(path)
    if not hasattr(diffviz, "load_pretrained"):
        sys.exit("diffviz.load_pretrained does not exist yet: pass --checkpoint PATH (a checkpoint folder "
                 "or an exported model) or --model random-tiny")
    loaded = diffviz.load_pretrained("mnist")
    return loaded[0], loaded[1], 'diffviz.load_pretrained("mnist")'


def model_identity(args, model) -> dict:
    """{"sha256", "step", "source"} of the model measured: the weights file's sha256 from an exported
    model's JSON (what ``load_pretrained`` reads), else a sha256 of the parameters themselves."""
    if args.model is None:
        from diffviz.pretrained import pretrained_path
        prefix = Path(args.checkpoint) if args.checkpoint else pretrained_path("mnist")
        prefix = prefix.with_suffix("") if prefix.suffix in (".json", ".safetensors") else prefix
        json_path = prefix.with_name(prefix.name + ".json")  # a checkpoint folder has none: hash the parameters
        if json_path.is_file():
            config = json.loads(json_path.read_text())
            return {"sha256": config["weights"]["sha256"], "step": config.get("metadata", {}).get("step"),
                    "source": str(json_path.name)}
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    return {"sha256": digest.hexdigest(), "step": None, "source": "parameters"}


def check_model(model):
    """Raise unless the model makes (1, 28, 28) images; return its number of classes (or None)."""
    config = getattr(model, "config", None)
    size, channels = getattr(config, "image_size", 28), getattr(config, "in_channels", 1)
    if (channels, size, size) != metrics.IMAGE_SHAPE:
        raise ValueError(f"the metrics need a model of 1×28×28 images, got {channels}×{size}×{size}")
    return getattr(config, "num_classes", None)


@torch.no_grad()
def draw_samples(model, schedule, row, n, labels, seed, batch_size):
    """n samples for one row (a ``Row``), in batches, clamped to [-1, 1] as when saved as images."""
    row = Row(*row)
    sampler, steps, scale = row.sampler, row.steps, row.scale
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        y = None if labels is None else labels[start:start + batch_size]
        b = min(batch_size, n - start)
        trajectory = diffviz.sample(model, schedule, (b, *metrics.IMAGE_SHAPE), sampler=sampler,
                                    num_steps=steps, eta=row.eta, generator=generator, y=y, variance=row.variance,
                                    clip_sample=row.clip, guidance_scale=None if y is None else scale, record=False)
        out.append(trajectory.sample.clamp(-1, 1))
    return torch.cat(out)


def measure(images, labels, data):
    """The metric columns for one set of images (labels=None: no class accuracy)."""
    return quality.measure(images, labels, data)


def reference_row(n, seed, data):
    """Real digits at the same n (``diffviz.quality.real_baseline``): FID of n class-balanced train
    images vs the test set (the floor for a perfect sampler); the other columns from the test images."""
    return {"row": "real digits", "sampler": None, "steps": None, "guidance": None,
            **quality.real_baseline(n, data, seed), "seconds": None}


def forward_seconds(model, batch, num_classes):
    """Seconds for one ε-model call on a batch (for the time estimate)."""
    device = next(model.parameters()).device
    x, t = torch.zeros(batch, *metrics.IMAGE_SHAPE, device=device), torch.full((batch,), 500, device=device)
    y = None if num_classes is None else torch.zeros(batch, dtype=torch.long, device=device)
    start = time.perf_counter()
    with torch.no_grad():
        model(x, t) if y is None else model(x, t, y)
    return time.perf_counter() - start


def markdown_table(rows, real_median) -> str:
    fmt = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
    lines = ["| samples | feature-FID ↓ | class acc ↑ | entropy (nats) | confidence | memorised | median NN dist | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['row']} | {fmt(r['fid'], '.1f')} | {fmt(r['accuracy'], '.3f')} | "
                     f"{fmt(r['entropy'], '.3f')} | {fmt(r['confidence'], '.3f')} | {fmt(r['memorised'], '.1%')} | {fmt(r['median_nn'], '.2f')} | "
                     f"{fmt(r['seconds'], '.1f')} |")
    lines.append(f"\nfeature-FID vs the 500 held-out test digits; entropy max log 10 = 2.303; memorised = closer "
                 f"to a training image than 95% of held-out digits are (5% for real digits by construction); "
                 f"median NN dist of held-out digits to the training set = {real_median:.2f}. 'real digits': "
                 f"FID of n train images vs the test set, other columns from the test images.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a checkpoint folder or an exported model (default: the pretrained model)")
    parser.add_argument("--model", choices=["random-tiny"], help="a stand-in model instead of --checkpoint")
    parser.add_argument("--n", type=int, help=f"samples per row (default 500; {QUICK_N} with --quick)")
    parser.add_argument("--rows", nargs="+", help=f"rows to run (default: {' '.join(DEFAULT_ROWS)})")
    parser.add_argument("--quick", action="store_true", help=f"--n {QUICK_N} and rows {' '.join(QUICK_ROWS)}")
    parser.add_argument("--seed", type=int, default=0, help="seeds the starting noise (same for every row)")
    parser.add_argument("--batch-size", type=int, default=250, help="samples per sampler call")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--device", default="cpu", help="run the model here (cuda: the noise still comes from "
                        "CPU generators, so the samples match a CPU run's to float precision)")
    args = parser.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else 500)
    specs = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    parsed = [parse_row(spec) for spec in specs]
    if args.threads:
        torch.set_num_threads(args.threads)

    model, schedule, description = load_eps_model(args)
    model = model.to(args.device)
    num_classes = check_model(model)
    if num_classes is None and any(row.scale is not None for row in parsed):
        raise ValueError(f"guidance rows need a class-conditional model; {description} is unconditional")
    labels = None if num_classes is None else torch.arange(n) % num_classes
    data = quality.Reference()
    batch = min(args.batch_size, n)
    per_call = forward_seconds(model, batch, num_classes)
    print(f"model: {description}; n = {n}, seed = {args.seed}, device = {args.device}, threads = {torch.get_num_threads()}",
          file=sys.stderr)

    rows, done = [reference_row(n, args.seed, data)], {}
    for spec, row in zip(specs, parsed):
        sampler, steps, scale = row.sampler, row.steps, row.scale
        key = row._replace(scale=1.0 if scale is None else scale)  # "ddim-50" and "ddim-50@w1" are one run
        calls = steps * -(-n // batch) * (2 if scale not in (None, 0.0, 1.0) and labels is not None else 1)
        print(f"{spec}: ~{calls * per_call:.0f} s estimated ...", end=" ", file=sys.stderr, flush=True)
        if key not in done:
            start = time.perf_counter()
            images = draw_samples(model, schedule, row, n, labels, args.seed, batch)
            done[key] = (images, time.perf_counter() - start)
        images, seconds = done[key]
        accuracy_labels = None if scale == 0 else labels  # w = 0 samples are unconditional
        guidance = None if labels is None else (1.0 if scale is None else scale)
        rows.append({"row": spec, "sampler": sampler, "steps": steps, "guidance": guidance, "n": n,
                     "variance": row.variance if sampler == "ddpm" else None, "eta": row.eta if sampler == "ddim" else None,
                     "clip": row.clip,
                     **measure(images, accuracy_labels, data), "seconds": seconds})
        print(f"{seconds:.0f} s", file=sys.stderr, flush=True)

    print(markdown_table(rows, real_median=rows[0]["median_nn"]))
    if args.json:
        args.json.write_text(json.dumps({"model": description, "model_identity": model_identity(args, model),
                                         "n": n, "seed": args.seed, "rows": rows,
                                         "classifier_test_accuracy": rows[0]["accuracy"]}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
