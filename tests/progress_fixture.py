"""A tiny training-progress folder for tests (and for the lead's checks): a random tiny U-Net
exported as ``num_snapshots`` snapshots, a made-up loss curve, metrics and random uint8 samples.

    from progress_fixture import make_progress
    progress = load_progress(make_progress(tmp_path / "run"))
"""
from pathlib import Path

import numpy as np
import torch

from diffviz.checkpoint import export_model
from diffviz.progress import Snapshot, write_progress
from diffviz.schedules import linear_schedule
from diffviz.unet import UNet, preset

STEP_EVERY = 500  # snapshot i was taken at step (i + 1) · STEP_EVERY
BATCH = 64  # images per step, for images_seen


def make_progress(folder, num_snapshots: int = 3, num_samples: int = 8, image_size: int = 8,
                  missing: dict | None = None, seed: int = 0) -> Path:
    """Write a progress folder and return it. Snapshot i: step (i + 1)·500, (i + 1)·500·64 images,
    (i + 1)·30 s, metrics fid = 100/(i + 1), fid_real = 5, accuracy = 0.5 + 0.2·i (capped at 1),
    w0_confidence, w0_entropy; ``missing`` {index: [metric names]} leaves those metrics out.
    Samples: random uint8 (S, N, H, W) from ``seed``; labels 0, 1, ..., N − 1 (mod 10)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)  # the U-Net's initial weights (a test fixture: the global RNG is fine here)
    model = UNet(preset("tiny", base_channels=8, groups=4, image_size=image_size, num_classes=10))
    schedule = linear_schedule(50)
    missing = missing or {}
    snapshots = []
    for i in range(num_snapshots):
        step = (i + 1) * STEP_EVERY
        prefix = f"step-{step:06d}"
        export_model(model, schedule, folder / prefix, metadata={"step": step})
        metrics = {"fid": 100.0 / (i + 1), "fid_real": 5.0, "accuracy": min(1.0, 0.5 + 0.2 * i),
                   "w0_confidence": 0.3 + 0.1 * i, "w0_entropy": 2.0 - 0.3 * i}
        metrics = {k: v for k, v in metrics.items() if k not in missing.get(i, ())}
        snapshots.append(Snapshot(step, step * BATCH, 30.0 * (i + 1), prefix, metrics))
    loss_steps = np.arange(50, num_snapshots * STEP_EVERY + 1, 50)
    losses = 0.05 + 0.5 / np.sqrt(loss_steps)  # falls like a real loss curve
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, 256, size=(num_snapshots, num_samples, image_size, image_size), dtype=np.uint8)
    write_progress(folder, run={"recipe": "test", "device": "cpu"}, loss_steps=loss_steps, losses=losses,
                   snapshots=snapshots, samples=samples, sample_labels=[k % 10 for k in range(num_samples)],
                   sample_info={"sampler": "ddim", "num_steps": 10, "guidance_scale": 2.0, "seed": 0},
                   metric_info={"n": 100, "sampler": "ddim", "reference": "mnist test"})
    return folder
