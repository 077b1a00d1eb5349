"""Checkpoints and exported models: safetensors + JSON only (never pickle, so loading runs no code).

A training run's checkpoint directory:

    runs/x/
      latest                  # text: the name of the newest complete checkpoint, e.g. "step-000500"
      LOCK, run.log           # the PID of the run using the folder; its history (diffviz.runs)
      step-000500/
        config.json           # model config, schedule config, train config, step, versions, sha256s,
                              # and config_sha256: its own hash (a hand-edited config is refused)
        model.safetensors     # the trained weights
        ema.safetensors       # the EMA weights (what you sample with)
        train_state.safetensors  # AdamW moments, RNG states (uint8), loss history; JSON in metadata

Writes are atomic: everything goes into ``ckpt-*.tmp/`` first, is fsynced, and the folder is renamed
to ``step-XXXXXX/``; only then is ``latest`` replaced (temp file + ``os.replace``). A crash leaves at
worst a ``*.tmp`` folder, which is never read and is removed by the next save.

An exported model (``export_model``) is ``PREFIX.safetensors`` (fp16 weights) + ``PREFIX.json``, as shipped in data/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from . import checkpoint_io as io
from .checkpoint_io import FORMAT_VERSION, CheckpointError, cpu_state_dict, read_tensors
from .classifier import NoisyClassifier, NoisyClassifierConfig
from .schedules import NoiseSchedule
from .toy import ToyConfig, ToyMLP
from .unet import UNet, UNetConfig

MODEL_TYPES = {"unet": (UNet, UNetConfig), "toy_mlp": (ToyMLP, ToyConfig),  # name → (class, config)
               "noisy_classifier": (NoisyClassifier, NoisyClassifierConfig)}
_STEP_DIR = re.compile(r"^step-(\d+)$")


class LoadedModel(NamedTuple):
    model: torch.nn.Module  # in eval mode, on the requested device
    schedule: NoiseSchedule  # the noise schedule it was trained with
    meta: dict  # step, images_seen, wall_time, train_config, versions, path, ...


@dataclass
class TrainState:
    step: int  # optimizer steps done
    images_seen: int  # training examples seen
    wall_time: float  # seconds of training so far
    rng_states: dict  # name → uint8 tensor (torch.Generator / torch RNG states)
    losses: list  # loss of every step so far
    extra: dict  # anything else the trainer stored


# ----- models ↔ JSON -----
def model_to_config(model) -> dict:
    """{"type": ..., "config": {...}}: enough JSON to rebuild ``model`` (without its weights)."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model wraps the original
    for name, (cls, _) in MODEL_TYPES.items():
        if isinstance(model, cls):
            return {"type": name, "config": asdict(model.config)}
    raise TypeError(f"cannot save a {type(model).__name__}; known model types: {', '.join(MODEL_TYPES)}")


def model_from_config(config: dict, num_timesteps: int | None = None):
    """Inverse of ``model_to_config``; a config without ``num_timesteps`` (older files) gets the schedule's T."""
    if config.get("type") not in MODEL_TYPES:
        raise CheckpointError(f"unknown model type {config.get('type')!r}; known: {', '.join(MODEL_TYPES)}")
    cls, config_cls = MODEL_TYPES[config["type"]]
    fields = dict(config["config"])
    if num_timesteps is not None:
        fields.setdefault("num_timesteps", num_timesteps)
    try:
        model_config = config_cls(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"invalid {config['type']} config {config['config']!r}: {err}") from None
    with torch.random.fork_rng(devices=[]):  # the init is overwritten; leave the global RNG alone
        return cls(model_config)


# ----- saving -----
def save_checkpoint(directory, model, schedule, *, ema_model=None, optimizer=None, train_config=None,
                    step=0, images_seen=0, wall_time=0.0, rng_states=None, losses=None, keep=3,
                    extra=None) -> Path:
    """Atomically write ``directory/step-XXXXXX/`` and point ``directory/latest`` at it; keep the
    newest ``keep`` checkpoints (None = all). Returns the new checkpoint's path."""
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be a positive int or None, got {keep!r}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f"ckpt-{step:06d}-", suffix=".tmp", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp makes a private folder; a checkpoint is an ordinary output
        files = {"model.safetensors": io.write_tensors(tmp / "model.safetensors", cpu_state_dict(model))}
        io.pause_for_tests()  # ... and here: a temp folder with only some of its files
        if ema_model is not None:
            files["ema.safetensors"] = io.write_tensors(tmp / "ema.safetensors", cpu_state_dict(ema_model))
        tensors, scalars = _train_state_tensors(optimizer, rng_states, losses, extra)
        files["train_state.safetensors"] = io.write_tensors(tmp / "train_state.safetensors", tensors,
                                                          metadata={"json": json.dumps(scalars)})
        meta = {"step": step, "images_seen": images_seen, "wall_time": wall_time,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": io.versions()}
        config = {"format": "diffviz-checkpoint", "format_version": FORMAT_VERSION,
                  "model": model_to_config(model), "schedule": schedule.to_config(),
                  "train_config": train_config, "meta": meta, "files": files}
        io.write_text_atomic(tmp / "config.json", json.dumps(io.seal_config(config), indent=2))
        io.pause_for_tests()  # a test kills the process here: a complete temp folder, not yet renamed
        io.fsync_path(tmp)
        final = root / name
        if final.exists():  # re-saving the same step: move the old one aside first
            os.replace(final, tempfile.mkdtemp(prefix="old-", suffix=".tmp", dir=root))
        os.replace(tmp, final)
        io.write_text_atomic(root / "latest", name + "\n")
        io.fsync_path(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep, current=name)
    return final


def _train_state_tensors(optimizer, rng_states, losses, extra):
    """AdamW state → flat tensors ``optimizer.<param index>.<name>``; the rest as JSON scalars."""
    tensors, scalars = {}, {"extra": extra or {}}
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, param_state in state["state"].items():
            for key, value in param_state.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        # hyper-parameters (lr, betas, ...) are JSON; a tensor-valued lr is stored as its float
        groups = [{k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in g.items()}
                  for g in state["param_groups"]]
        scalars["param_groups"] = groups
    for key, value in (rng_states or {}).items():
        tensors[f"rng.{key}"] = value.detach().cpu().to(torch.uint8).contiguous()
    tensors["losses"] = torch.tensor(list(losses or []), dtype=torch.float64)
    return tensors, scalars


def _prune(root: Path, keep: int, current: str):
    """Delete all but the newest ``keep`` step folders (never ``current``), and leftover *.tmp folders."""
    steps = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir())
    for _, path in steps[:-keep] if keep else []:
        if path.name != current:
            shutil.rmtree(path, ignore_errors=True)
    for path in root.glob("*.tmp"):  # a folder or a file a crash left behind
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


# ----- loading -----
def has_checkpoint(directory) -> bool:
    """True when ``directory`` is a checkpoint or holds a ``latest`` pointer."""
    path = Path(directory)
    return (path / "config.json").is_file() or (path / "latest").is_file()


def resolve_checkpoint(path) -> Path:
    """A checkpoint folder: ``path`` itself if it holds config.json, else the folder ``path/latest`` names."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    if not (path / "latest").is_file():
        raise CheckpointError(f"{path}: not a checkpoint (no config.json) and no 'latest' file")
    name = (path / "latest").read_text(encoding="utf-8").strip()
    if not _STEP_DIR.match(name) or not (path / name / "config.json").is_file():
        raise CheckpointError(f"{path / 'latest'}: points to {name!r}, which is not a complete checkpoint")
    return path / name


def checkpoint_config(path) -> dict:
    """The parsed config.json of a checkpoint (or of a run folder's ``latest``)."""
    return _read_config(resolve_checkpoint(path))


def _read_config(folder: Path, kind="diffviz-checkpoint", file="config.json") -> dict:
    path = folder / file if folder.is_dir() else folder
    required = ("model", "schedule", "files") if kind == "diffviz-checkpoint" else ("model", "schedule", "weights")
    return io.read_json_config(path, kind, required)


def _load_weights(module, path: Path, expected: dict | None):
    """Copy the tensors of ``path`` into ``module`` after checking every key and shape."""
    tensors, _ = read_tensors(path, expected)
    own = getattr(module, "_orig_mod", module).state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [f"{k} {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
             for k, v in own.items() if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path}: weights do not match the model config: missing keys {missing[:4]}, "
                              f"unexpected keys {unexpected[:4]}, shape mismatches {wrong[:4]}")
    getattr(module, "_orig_mod", module).load_state_dict(tensors)


def _files(folder: Path, config: dict) -> dict:
    files = config.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise CheckpointError(f"{folder / 'config.json'}: has no valid 'files' table")
    return files


def load_checkpoint(path, device="cpu", ema=True) -> LoadedModel:
    """Rebuild the model from config.json and load its EMA weights (``ema=True``, when saved) or
    its raw weights. ``path``: a step-XXXXXX folder, or a checkpoint_dir (its ``latest`` is used).
    Returns: LoadedModel(model in eval mode, schedule, meta)."""
    folder = resolve_checkpoint(path)
    config = _read_config(folder)
    files = _files(folder, config)
    schedule = NoiseSchedule.from_config(config["schedule"])
    model = model_from_config(config["model"], schedule.num_timesteps)
    weights = "ema.safetensors" if ema and "ema.safetensors" in files else "model.safetensors"
    _load_weights(model, folder / weights, files[weights])
    meta = {**config.get("meta", {}), "train_config": config.get("train_config"), "path": str(folder),
            "weights": weights, "format_version": config["format_version"]}
    return LoadedModel(model.to(device).eval(), schedule, meta)


def load_train_state(path, model, ema_model, optimizer) -> TrainState:
    """Load weights, EMA weights and optimizer state of a checkpoint into the given objects (for
    ``Trainer.resume``); returns the step count, RNG states and loss history."""
    folder = resolve_checkpoint(path)
    config = _read_config(folder)
    files = _files(folder, config)
    _load_weights(model, folder / "model.safetensors", files["model.safetensors"])
    if ema_model is not None:
        _load_weights(ema_model, folder / "ema.safetensors", files.get("ema.safetensors"))
    state_path = folder / "train_state.safetensors"
    tensors, metadata = read_tensors(state_path, files.get("train_state.safetensors"))
    scalars = json.loads(metadata.get("json", "{}"))
    if optimizer is not None:
        _load_optimizer(optimizer, tensors, scalars, state_path)
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    meta = config.get("meta", {})
    losses = tensors["losses"].tolist() if "losses" in tensors else []
    return TrainState(meta.get("step", 0), meta.get("images_seen", 0), meta.get("wall_time", 0.0), rng,
                      losses, scalars.get("extra", {}))


def _load_optimizer(optimizer, tensors, scalars, path):
    if "param_groups" not in scalars:
        raise CheckpointError(f"{path}: holds no optimizer state")
    state = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in scalars["param_groups"]]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: optimizer state does not fit this model's parameters ({err})") from None


# ----- compact inference-only export -----
def export_model(model, schedule, path_prefix, dtype=torch.float16, metadata=None) -> Path:
    """Write ``PREFIX.safetensors`` (weights cast to ``dtype``) and ``PREFIX.json`` (model and
    schedule config, sha256, ``metadata``), each atomically. Returns the JSON path."""
    prefix = Path(path_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in cpu_state_dict(model).items()}
    tensor_path = prefix.with_name(prefix.name + ".safetensors")
    info = io.write_tensors_atomic(tensor_path, weights)
    config = {"format": "diffviz-model", "format_version": FORMAT_VERSION, "model": model_to_config(model),
              "schedule": schedule.to_config(), "dtype": str(dtype).removeprefix("torch."),
              "weights": {"file": tensor_path.name, **info}, "versions": io.versions(), "metadata": metadata or {}}
    json_path = prefix.with_name(prefix.name + ".json")
    io.write_text_atomic(json_path, json.dumps(io.seal_config(config), indent=2))
    return json_path


def load_model(path_prefix, device="cpu", dtype=torch.float32) -> LoadedModel:
    """Load an ``export_model`` pair (``PREFIX``, ``PREFIX.json`` or ``PREFIX.safetensors``),
    with weights converted to ``dtype``. Returns: LoadedModel(model in eval mode, schedule, meta)."""
    prefix = Path(path_prefix)
    if prefix.suffix in (".json", ".safetensors"):
        prefix = prefix.with_suffix("")
    json_path = prefix.with_name(prefix.name + ".json")
    config = _read_config(json_path, kind="diffviz-model")
    schedule = NoiseSchedule.from_config(config["schedule"])
    model = model_from_config(config["model"], schedule.num_timesteps)
    _load_weights(model, json_path.parent / config["weights"]["file"], config["weights"])
    meta = {**config.get("metadata", {}), "versions": config.get("versions"), "path": str(json_path)}
    return LoadedModel(model.to(device=device, dtype=dtype).eval(), schedule, meta)
