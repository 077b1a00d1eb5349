"""Seal diffviz JSON configs with their own hash (``config_sha256``, see diffviz/checkpoint_io.py).

    python scripts/rehash_configs.py data/pretrained/mnist_unet.json runs/mnist/step-006000

Configs written before the hash existed are refused by the loaders; run this once on files you
trust (it also checks that the weights still match the sha256s the config records). Each path is
an exported model's PREFIX.json, or a checkpoint folder (its config.json).
"""
import json
import sys
from pathlib import Path

from diffviz import checkpoint_io as io


def rehash(path: Path) -> Path:
    path = path / "config.json" if path.is_dir() else path
    config = json.loads(path.read_text(encoding="utf-8"))
    files = config.get("files") or {config["weights"]["file"]: config["weights"]}
    for name, info in files.items():
        if io.sha256_file(path.parent / name) != info["sha256"]:
            raise SystemExit(f"{path.parent / name}: sha256 does not match its config; not sealing {path}")
    io.write_text_atomic(path, json.dumps(io.seal_config(config), indent=2))
    return path


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for arg in sys.argv[1:]:
        print(f"sealed {rehash(Path(arg))}")
