"""A training run's progress, shipped so that a student can scrub through it: EMA snapshots
(fp16) at a few steps, the loss curve, the sample-quality metrics of every snapshot, and samples
of every snapshot drawn from ONE fixed x_T (so the pictures differ only by training).

A progress folder holds
  progress.json            format "diffviz-progress", sealed by its own sha256 (like config.json)
  step-000500.json/.safetensors, ...   each snapshot, an ``export_model`` pair (``load_model``)
  samples.safetensors      "samples": uint8 (S, N, H, W), pixel = round((x + 1) · 127.5)

``load_progress("mnist")`` reads the one shipped with the pretrained model;
``diffviz.explorers.progress`` draws it; ``data/export_progress.py`` writes it from a run folder.
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint_io as io
from .checkpoint import CheckpointError, LoadedModel, load_model
from .data import data_dir

KIND = "diffviz-progress"
SHIPPED = {"mnist": "mnist_unet_progress"}  # name -> folder in data/pretrained/


@dataclass
class Snapshot:
    step: int  # optimizer steps done when the EMA weights were taken
    images_seen: int  # training examples seen by then
    wall_time: float  # seconds of training by then
    prefix: str  # file prefix of the export_model pair, relative to the progress folder
    metrics: dict = field(default_factory=dict)  # name -> value ("fid", "accuracy", ...), measured afterwards


@dataclass
class TrainingProgress:
    folder: Path
    run: dict  # what was trained, how, on what machine (free-form, for the caption and the card)
    loss_steps: np.ndarray  # (L,) steps of the loss curve
    losses: np.ndarray  # (L,) training loss, averaged over the steps since the previous point
    snapshots: list  # [Snapshot], by step
    samples: np.ndarray  # (S, N, H, W) uint8: snapshot i's samples, all from the same x_T
    sample_labels: list  # (N,) the digit each sample was asked for
    sample_info: dict  # how they were drawn: sampler, steps, guidance, seed
    metric_info: dict  # how the metrics were measured: n, sampler, reference, ...

    @property
    def steps(self) -> np.ndarray:
        """(S,) the snapshots' steps."""
        return np.array([s.step for s in self.snapshots])

    def metric(self, name: str) -> np.ndarray:
        """(S,) one metric over the snapshots (NaN where a snapshot lacks it)."""
        return np.array([s.metrics.get(name, np.nan) for s in self.snapshots], dtype=float)

    def load_model(self, index: int, device="cpu") -> LoadedModel:
        """Snapshot ``index``'s EMA model (float32, eval mode) and its schedule."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"snapshot index must be an int, got {type(index).__name__} {index!r}")
        if not -len(self.snapshots) <= index < len(self.snapshots):
            raise IndexError(f"snapshot index {index!r} out of range: this run has {len(self.snapshots)} snapshots")
        return load_model(self.folder / self.snapshots[int(index)].prefix, device=device)


def progress_path(name_or_folder) -> Path:
    """The folder of the shipped progress ``name`` ("mnist"), or ``name_or_folder`` as a path."""
    if isinstance(name_or_folder, str) and name_or_folder in SHIPPED:
        path = data_dir() / "pretrained" / SHIPPED[name_or_folder]
        if not path.is_dir():
            raise FileNotFoundError(f"the shipped training progress {name_or_folder!r} is not installed: "
                                    f"no folder {str(path)!r}")
        return path
    if not isinstance(name_or_folder, (str, Path)):
        raise TypeError(f"progress must be a folder (str or Path) or one of {', '.join(SHIPPED)}, "
                        f"got {type(name_or_folder).__name__}")
    path = Path(name_or_folder)
    if not path.is_dir():
        raise FileNotFoundError(f"no training progress at {str(path)!r}: give a folder, or one of {', '.join(SHIPPED)}")
    return path


def load_progress(name_or_folder="mnist") -> TrainingProgress:
    """Read a progress folder (or the shipped one: "mnist"). Checks progress.json's own hash and the
    samples' sha256 here; each snapshot's files are checked when ``load_model(i)`` reads them."""
    folder = progress_path(name_or_folder)
    config = io.read_json_config(folder / "progress.json", KIND, required=("samples", "losses", "run"))
    tensors, _ = io.read_tensors(folder / config["samples"]["file"], config["samples"])
    samples = tensors["samples"].numpy()
    try:
        snapshots = [Snapshot(**s) for s in config["snapshots"]]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{folder / 'progress.json'}: no valid 'snapshots' list ({err})") from None
    labels = config["samples"].get("labels", [])
    if samples.ndim != 4 or samples.shape[:2] != (len(snapshots), len(labels)) or samples.dtype != np.uint8:
        raise CheckpointError(f"{folder}: samples {tuple(samples.shape)} {samples.dtype} do not match "
                              f"{len(snapshots)} snapshots × {len(labels)} labels of uint8 images (S, N, H, W)")
    info = {k: v for k, v in config["samples"].items() if k not in ("file", "sha256", "bytes", "labels")}
    return TrainingProgress(folder, config["run"], np.array(config["losses"]["step"]), np.array(config["losses"]["loss"]),
                            snapshots, samples, list(labels), info, config.get("metrics", {}))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] → (N, H, W) uint8, round((x + 1) · 127.5)."""
    return ((images.clamp(-1, 1)[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()


def snapshot_json(snap: Snapshot) -> dict:
    """``snap`` as plain JSON types (numpy ints and floats, e.g. from a training loop, become int / float);
    a metric that is None or NaN is left out (``TrainingProgress.metric`` reads it back as NaN)."""
    metrics = {str(k): float(v) for k, v in snap.metrics.items() if v is not None and np.isfinite(float(v))}
    return {"step": int(snap.step), "images_seen": int(snap.images_seen), "wall_time": float(snap.wall_time),
            "prefix": str(snap.prefix), "metrics": metrics}


def write_progress(folder, run: dict, loss_steps, losses, snapshots: list, samples: np.ndarray,
                   sample_labels: list, sample_info: dict, metric_info: dict) -> Path:
    """Write progress.json and samples.safetensors into ``folder`` (which already holds the
    snapshots' ``export_model`` pairs named by ``Snapshot.prefix``), each atomically."""
    folder = Path(folder)
    samples = np.asarray(samples)
    if samples.dtype != np.uint8 or samples.ndim != 4 or samples.shape[:2] != (len(snapshots), len(sample_labels)):
        raise ValueError(f"samples must be uint8 (S, N, H, W) with S = {len(snapshots)} snapshots and "
                         f"N = {len(sample_labels)} labels, got {samples.dtype} {samples.shape}")
    if len(loss_steps) != len(losses):
        raise ValueError(f"loss_steps and losses must have the same length, got {len(loss_steps)} and {len(losses)}")
    for snap in snapshots:
        if not (folder / f"{snap.prefix}.json").is_file():
            raise FileNotFoundError(f"snapshot {snap.prefix!r} is not in {folder}")
    info = io.write_tensors_atomic(folder / "samples.safetensors", {"samples": torch.from_numpy(np.ascontiguousarray(samples))})
    config = {"format": KIND, "format_version": io.FORMAT_VERSION, "run": run,
              "losses": {"step": [int(s) for s in loss_steps], "loss": [float(v) for v in losses]},
              "snapshots": [snapshot_json(s) for s in snapshots], "metrics": metric_info,
              "samples": {"file": "samples.safetensors", **info, "labels": [int(v) for v in sample_labels], **sample_info},
              "versions": io.versions()}
    io.write_text_atomic(folder / "progress.json", json.dumps(io.seal_config(config), indent=1))
    return folder / "progress.json"
