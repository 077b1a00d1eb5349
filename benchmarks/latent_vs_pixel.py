"""Pixel diffusion against latent diffusion, side by side in one run: the two shipped digit models.

    python benchmarks/latent_vs_pixel.py            # ~3 minutes on one CPU thread

``load_pretrained("mnist")`` (a U-Net on 1×28×28 pixels) against ``load_pretrained("mnist-latent")``
(a U-Net on the 4×7×7 latents of ``mnist-autoencoder``, decoded once at the end; Rombach et al. 2022).
Measured here, on this CPU at one thread: network FLOPs of one denoising step per image
(``torch.utils.flop_counter.FlopCounterMode`` over one ε-model call, multiply-add = 2 FLOPs) and of the
decoder; parameters; the dimension the diffusion runs in; wall time to sample 16 digits with DDIM-50
(decoding included, best of 3); class accuracy and feature-FID of n class-balanced DDIM-50 samples
at guidance w = 1 against the 500 held-out test digits. Training wall times come from the models'
JSON cards, with the hardware each was trained on (the shipped pixel model on a GPU, the latent model
and its autoencoder on one CPU thread). At EQUAL TRAINING TIME on the same CPU: the CPU run of the pixel
recipe (``--recipe mnist``, one thread) kept EMA snapshots, and its snapshot at step 1,500
(``data/pretrained/mnist_unet_cpu_step1500``, 23.0 min, at least as long as the latent model and its
autoencoder together) is measured the same way (column "pixel, same time").
Writes benchmarks/results/latent_vs_pixel.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import diffviz as dv  # noqa: E402
from diffviz import metrics  # noqa: E402
from diffviz.checkpoint import load_model  # noqa: E402
from diffviz.data import data_dir  # noqa: E402
from diffviz.unet import num_parameters  # noqa: E402


def flops(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


@torch.no_grad()
def step_flops(eps_model, shape) -> int:
    """FLOPs of one conditional ε-model call on one example of ``shape`` (C, H, W)."""
    x = torch.zeros(1, *shape)
    return flops(eps_model, x, torch.tensor([500]), torch.tensor([3]))


def sampler(name, model, schedule):
    """sample(n, y, generator, record) for either model, with the same arguments (DDIM-50, w = 1)."""
    if name != "latent":
        return lambda n, y, g: dv.sample(model, schedule, (n, 1, 28, 28), sampler="ddim", num_steps=50, generator=g,
                                         y=y, guidance_scale=1.0, record=False).sample
    return lambda n, y, g: model.sample((n, 1, 28, 28), sampler="ddim", num_steps=50, generator=g, y=y,
                                        guidance_scale=1.0, record=False).sample


SAME_TIME = "mnist_unet_cpu_step1500"  # in data/pretrained: the CPU pixel run's snapshot at 23.0 min


def equal_time_snapshot(latent_row):
    """The CPU pixel run's EMA snapshot at step 1,500, trained at least as long on the same kind of CPU
    as the latent model and its autoencoder together: (its row, its model)."""
    budget = latent_row["train_seconds"] + latent_row["autoencoder_train_seconds"]
    model, _, meta = load_model(data_dir() / "pretrained" / SAME_TIME)
    if meta["wall_time"] < budget:
        print(f"note: {SAME_TIME} trained {meta['wall_time']:.0f} s, less than the latent model's {budget:.0f} s")
    row = {"model": f"{SAME_TIME} (recipe mnist, step {meta['step']})", "dimensions": 784,
           "step_flops": step_flops(model, (1, 28, 28)), "decode_flops": 0, "parameters": num_parameters(model),
           "autoencoder_parameters": 0, "train_seconds": round(meta["wall_time"], 1),
           "train_images_seen": meta["images_seen"], "train_hardware": meta["hardware"]}
    return row, model


def measure(run, test_x, n, seed) -> dict:
    y16 = torch.arange(16) % 10
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run(16, y16, torch.Generator().manual_seed(seed))
        times.append(time.perf_counter() - start)
    y = torch.arange(n) % 10
    digits = run(n, y, torch.Generator().manual_seed(seed)).clamp(-1, 1)
    return {"sample_16_seconds": round(min(times), 2), "class_accuracy": metrics.class_accuracy(digits, y),
            "feature_fid": metrics.feature_fid(digits, test_x)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per model for accuracy and FID (multiple of 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latent_vs_pixel.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    test_x = dv.load_dataset("mnist-5k", split="test").x
    pixel, pixel_schedule, pixel_meta = dv.load_pretrained("mnist")
    latent, latent_schedule, latent_meta = dv.load_pretrained("mnist-latent")
    ae, ae_meta = latent.autoencoder, latent_meta["autoencoder_meta"]
    C = latent.latent_shape[0]
    rows = {
        "pixel": {"model": 'load_pretrained("mnist")', "dimensions": 784,
                  "step_flops": step_flops(pixel, (1, 28, 28)), "decode_flops": 0,
                  "parameters": num_parameters(pixel), "autoencoder_parameters": 0,
                  "train_seconds": round(pixel_meta["wall_time"], 1), "train_images_seen": pixel_meta["images_seen"],
                  "train_hardware": pixel_meta["hardware"]},
        "latent": {"model": 'load_pretrained("mnist-latent")', "dimensions": C * 49,
                   "step_flops": step_flops(latent, latent.latent_shape),
                   "decode_flops": flops(torch.no_grad()(ae.decode), torch.zeros(1, *latent.latent_shape)),
                   "parameters": num_parameters(latent.eps_model), "autoencoder_parameters": num_parameters(ae),
                   "train_seconds": round(latent_meta["wall_time"], 1), "train_images_seen": latent_meta["images_seen"],
                   "autoencoder_train_seconds": ae_meta["train_seconds"], "train_hardware": latent_meta["hardware"]},
    }
    rows["pixel_same_time"], snapshot = equal_time_snapshot(rows["latent"])
    for name, model, schedule in (("pixel", pixel, pixel_schedule), ("pixel_same_time", snapshot, pixel_schedule),
                                  ("latent", latent, latent_schedule)):
        rows[name].update(measure(sampler(name, model, schedule), test_x, args.n, args.seed))
        print(name, rows[name], flush=True)
    result = {"n": args.n, "sampler": "ddim", "steps": 50, "eta": 0.0, "guidance_scale": 1.0, "seed": args.seed,
              "threads": 1, "rows": rows, "torch": torch.__version__,
              "note": "step_flops: one conditional ε-model call per image; a DDIM-50 sample at w = 1 costs "
                      "50·step_flops (+ decode_flops for the latent model). Training times from the JSON cards."}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(rows)


def print_table(rows):
    p, e, l = rows["pixel"], rows["pixel_same_time"], rows["latent"]
    lines = [("dimensions of x_t", p["dimensions"], e["dimensions"], l["dimensions"]),
             ("MFLOPs per denoising step (per image)", p["step_flops"] / 1e6, e["step_flops"] / 1e6,
              l["step_flops"] / 1e6),
             ("MFLOPs of the decoder (once per image)", 0, 0, l["decode_flops"] / 1e6),
             ("U-Net parameters", p["parameters"], e["parameters"], l["parameters"]),
             ("autoencoder parameters", 0, 0, l["autoencoder_parameters"]),
             ("16 digits, DDIM-50 (s)", p["sample_16_seconds"], e["sample_16_seconds"], l["sample_16_seconds"]),
             ("class accuracy", p["class_accuracy"], e["class_accuracy"], l["class_accuracy"]),
             ("feature-FID", p["feature_fid"], e["feature_fid"], l["feature_fid"]),
             ("training wall time (s)", p["train_seconds"], e["train_seconds"],
              f'{l["train_seconds"]} + AE {l["autoencoder_train_seconds"]}')]
    print(f"{'':40s} {'pixel':>14s} {'pixel, same time':>18s} {'latent':>22s}")
    for label, a, b, c in lines:
        fmt = lambda v: f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
        print(f"{label:40s} {fmt(a):>14s} {fmt(b):>18s} {fmt(c):>22s}")


if __name__ == "__main__":
    main()
