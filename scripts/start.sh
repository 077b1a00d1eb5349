#!/usr/bin/env bash
# The main job: install diffviz (scripts/setup.sh) and open the notebooks in JupyterLab.
# `bash scripts/start.sh --demo` instead samples digits from the bundled pretrained model and
# writes demo.png — no browser needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
if [ "${1:-}" = "--demo" ]; then
  exec .venv/bin/python -m diffviz.demo --out demo.png
fi
exec .venv/bin/jupyter lab notebooks/
