#!/usr/bin/env bash
# Create .venv (if missing) and install diffviz with its notebook and test tools.
# torch is installed FIRST and pinned: with no torch present, `torch>=2.2` would resolve to a
# multi-GB CUDA build. Set TORCH_SPEC to choose another build (e.g. a CUDA one on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/python - <<'PY'
import os, torch, diffviz
if os.environ.get("CI") and not torch.__version__.endswith("+cpu"):
    raise SystemExit(f"CI expects the CPU build of torch, got {torch.__version__}")
print(f"diffviz {diffviz.__version__} with torch {torch.__version__} is installed in .venv")
PY
