"""The durable file writes and checked reads under ``diffviz.checkpoint``.

Writes: ``write_tensors`` (safetensors + fsync, returns its sha256), ``write_text_atomic`` (temp
file in the same folder + fsync + ``os.replace``). Reads: ``read_tensors`` checks a file's sha256
before parsing it; ``read_json_config`` checks a config.json's own hash (``config_sha256``), so a
hand-edited config is refused instead of silently describing other weights.

The config hash: ``config_sha256`` is the sha256 of the config's canonical JSON (keys sorted, no
spaces, UTF-8) without that field. ``seal_config`` adds it; ``scripts/rehash_configs.py`` re-seals
files written before the hash existed.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT_VERSION = 1
HASH_FIELD = "config_sha256"
SLOW_SAVE_ENV = "DIFFVIZ_TEST_SLOW_SAVE"  # tests only: seconds to sleep in the middle of a checkpoint write


class CheckpointError(ValueError):
    """A checkpoint or exported model that is missing, corrupt, edited by hand, or does not fit the model."""


def fsync_path(path: Path):
    """fsync a file or a folder (a folder's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_state_dict(model) -> dict:
    """The model's state dict as contiguous CPU tensors, ready for safetensors (a torch.compile'd model's
    own weights)."""
    model = getattr(model, "_orig_mod", model)
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def write_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> dict:
    """save_file + fsync; returns {"sha256", "bytes"} for config.json."""
    save_file(tensors, str(path), metadata=metadata)
    fsync_path(path)
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def write_text_atomic(path: Path, text: str):
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes private files; these are ordinary outputs
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tensors_atomic(path: Path, tensors: dict) -> dict:
    """``write_tensors`` into a temp file next to ``path``, then ``os.replace``: never a half file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        info = write_tensors(Path(tmp), tensors)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return info


def versions() -> dict:
    """Versions of diffviz, torch, safetensors and Python, recorded in every config."""
    import safetensors
    import torch
    try:  # from the installed metadata: importing the diffviz package from here would be a cycle
        diffviz = metadata.version("diffviz")
    except metadata.PackageNotFoundError:
        diffviz = "unknown"
    return {"diffviz": diffviz, "torch": torch.__version__, "safetensors": safetensors.__version__,
            "python": platform.python_version()}


def pause_for_tests():
    """Sleep ``$DIFFVIZ_TEST_SLOW_SAVE`` seconds (unset: no pause), so a test can kill a process
    while a checkpoint is half written."""
    seconds = float(os.environ.get(SLOW_SAVE_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds)


# ----- the hash of config.json itself -----
def config_digest(config: dict) -> str:
    """sha256 of the canonical JSON of ``config`` without its ``config_sha256`` field."""
    body = {k: v for k, v in config.items() if k != HASH_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal_config(config: dict) -> dict:
    """``config`` with its ``config_sha256`` field (re)computed."""
    return {**config, HASH_FIELD: config_digest(config)}


def read_json_config(path: Path, kind: str, required: tuple = ()) -> dict:
    """Parse the JSON config at ``path``, check its format, version and ``config_sha256``, and that
    it has the ``required`` fields."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a {kind} file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != kind:
        raise CheckpointError(f"{path}: not a {kind} file (its 'format' field is not {kind!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown format_version {config.get('format_version')!r}; "
                              f"this diffviz reads format_version {FORMAT_VERSION}")
    if HASH_FIELD not in config:
        raise CheckpointError(f"{path}: has no {HASH_FIELD} (written by an older diffviz, or edited); "
                              f"if you trust it, seal it with: python scripts/rehash_configs.py {path}")
    if config[HASH_FIELD] != config_digest(config):
        raise CheckpointError(f"{path}: was changed after it was written ({HASH_FIELD} does not match its "
                              f"content); a hand-edited config would describe weights it does not hold")
    missing = [name for name in required if not isinstance(config.get(name), dict)]
    if missing:
        raise CheckpointError(f"{path}: has no valid {', '.join(repr(m) for m in missing)} section")
    return config


def read_tensors(path: Path, expected: dict | None):
    """Load a safetensors file after checking it exists and matches the sha256 in ``expected``.
    Returns (name → tensor, metadata)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing file")
    if expected is not None and "sha256" in expected and sha256_file(path) != expected["sha256"]:
        raise CheckpointError(f"{path}: sha256 does not match the one recorded at save time; "
                              f"the file is corrupt or truncated ({path.stat().st_size} bytes, "
                              f"expected {expected.get('bytes')})")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot be read as safetensors ({err}); truncated or corrupt file") from None
