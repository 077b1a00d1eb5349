"""Export a training run's progress for the training-progress explorer: the EMA weights of every
checkpoint in the run folder (fp16), the run's loss curve, samples of every snapshot from one fixed
x_T, and the sample-quality metrics of every snapshot (``diffviz.quality``).

    diffviz train --recipe mnist --checkpoint-dir runs/mnist --checkpoint-every 1000 --keep 100 --threads 1
    python data/export_progress.py runs/mnist --out data/pretrained/mnist_unet_progress --n 200

Step 0 (the initial weights, rebuilt from the run's config and seed) is included: it shows what
"untrained" looks like. Metrics per snapshot, DDIM-50 (η = 0) from the same x_T for every snapshot:
"fid", "accuracy" (w = 1, labels cycling 0–9, n samples), "w0_confidence", "w0_entropy", "w0_fid"
(w = 0: unconditional), and "fid_real" (n class-balanced real train digits: the floor at this n).
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import diffviz  # noqa: E402
from diffviz import quality  # noqa: E402
from diffviz.checkpoint import export_model, load_checkpoint, load_model  # noqa: E402
from diffviz.checkpoint_io import read_tensors  # noqa: E402
from diffviz.progress import Snapshot, to_uint8, write_progress  # noqa: E402
from diffviz.training import TrainConfig, Trainer  # noqa: E402

GRID_SEED, METRIC_SEED, GRID_N, LOSS_BIN = 0, 1, 20, 25


def draw(model, schedule, n, labels, seed, guidance_scale=None):
    """n DDIM-50 samples (η = 0) from the x_T of ``seed``, clamped to [-1, 1]."""
    x_T = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))
    return diffviz.sample(model, schedule, x_T.shape, sampler="ddim", num_steps=50, x_T=x_T, y=labels,
                          guidance_scale=guidance_scale, record=False).sample.clamp(-1, 1)


def initial_snapshot(train_config: dict, out: Path):
    """The run's step-0 weights (its seeded initialisation), exported like the others."""
    trainer = Trainer(TrainConfig(**{**train_config, "checkpoint_dir": None, "resume": False,
                                     "checkpoint_every": 0, "device": "cpu"}))
    export_model(trainer.ema_model, trainer.schedule, out / "step-000000", metadata={"step": 0})
    return Snapshot(0, 0, 0.0, "step-000000")


def loss_curve(run: Path):
    """(steps, losses): the run's per-step losses averaged over bins of LOSS_BIN steps."""
    latest = diffviz.checkpoint.resolve_checkpoint(run)
    tensors, _ = read_tensors(latest / "train_state.safetensors", None)
    losses = tensors["losses"].double().numpy()
    bins = len(losses) // LOSS_BIN
    steps = (np.arange(bins) + 1) * LOSS_BIN
    return steps, losses[:bins * LOSS_BIN].reshape(bins, LOSS_BIN).mean(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder (its step-XXXXXX checkpoints become snapshots)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "pretrained" / "mnist_unet_progress")
    parser.add_argument("--n", type=int, default=200, help="samples per metric (class-balanced)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hardware", default=f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
                        help="where the run was trained (recorded in progress.json)")
    parser.add_argument("--device", default="cpu", help="sample the snapshots here (the noise still comes from "
                        "CPU generators, so the metrics match a CPU run's to float precision)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    folders = sorted(p for p in args.run.glob("step-*") if p.is_dir())
    if not folders:
        sys.exit(f"{args.run}: no step-XXXXXX checkpoints")
    reference = quality.Reference()
    fid_real = quality.real_baseline(args.n, reference)["fid"]
    labels, grid_labels = quality.cycling_labels(args.n), quality.cycling_labels(GRID_N)
    first = load_checkpoint(folders[-1])
    train_config = first.meta["train_config"]
    snapshots = [initial_snapshot(train_config, args.out)]
    for folder in folders:
        model, schedule, meta = load_checkpoint(folder)
        prefix = folder.name
        export_model(model, schedule, args.out / prefix,
                     metadata={k: meta[k] for k in ("step", "images_seen", "wall_time") if k in meta})
        snapshots.append(Snapshot(meta["step"], meta["images_seen"], meta["wall_time"], prefix))
    grids, cache = [], args.out / ".measured"  # measured snapshots, keyed by weights sha256: a rerun skips them
    cache.mkdir(exist_ok=True)
    for snap in snapshots:
        began = time.perf_counter()
        model, schedule, meta = load_model(args.out / snap.prefix, device=args.device)  # the shipped fp16, as float32
        key = cache / f"{json.loads((args.out / f'{snap.prefix}.json').read_text())['weights']['sha256']}-n{args.n}"
        if key.with_suffix(".json").is_file():
            snap.metrics = json.loads(key.with_suffix(".json").read_text())
            grids.append(np.load(key.with_suffix(".npy")))
            continue
        grids.append(to_uint8(draw(model, schedule, GRID_N, grid_labels, GRID_SEED)))
        cond = quality.measure(draw(model, schedule, args.n, labels, METRIC_SEED), labels, reference)
        uncond = quality.measure(draw(model, schedule, args.n, labels, METRIC_SEED, guidance_scale=0.0), None, reference)
        snap.metrics = {"fid": cond["fid"], "accuracy": cond["accuracy"], "fid_real": fid_real,
                        "w0_fid": uncond["fid"], "w0_confidence": uncond["confidence"], "w0_entropy": uncond["entropy"]}
        np.save(key.with_suffix(".npy"), grids[-1])
        key.with_suffix(".json").write_text(json.dumps(snap.metrics))
        print(f"step {snap.step:>6}: " + ", ".join(f"{k} {v:.3f}" for k, v in snap.metrics.items())
              + f"  ({time.perf_counter() - began:.0f} s)", flush=True)
    steps, losses = loss_curve(args.run)
    run = {"recipe": train_config, "hardware": args.hardware, "wall_time": snapshots[-1].wall_time,
           "steps": snapshots[-1].step, "images_seen": snapshots[-1].images_seen,
           "loss": f"training loss (min-SNR-γ weighted when the recipe says so), mean over {LOSS_BIN} steps"}
    path = write_progress(args.out, run, steps, losses, snapshots, np.stack(grids), grid_labels.tolist(),
                          {"sampler": "ddim", "num_steps": 50, "eta": 0.0, "guidance_scale": 1.0, "seed": GRID_SEED},
                          {"n": args.n, "sampler": "ddim-50, η = 0", "seed": METRIC_SEED,
                           "reference": "the 500 held-out mnist-5k test digits", "labels": "0–9 cycling"})
    print(f"wrote {path} ({len(snapshots)} snapshots)")


if __name__ == "__main__":
    main()
