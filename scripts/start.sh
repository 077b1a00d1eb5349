#!/usr/bin/env bash
# The main job: install diffviz (scripts/setup.sh) and open the notebooks in JupyterLab.
#   bash scripts/start.sh [JUPYTER LAB OPTIONS...]   # e.g. --port 8890 --no-browser; passed to `jupyter lab`
#   bash scripts/start.sh --demo                     # no browser: sample digits into outputs/demo.png
# As root (Docker, cloud VMs) Jupyter refuses to start without --allow-root, so it is added then.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
if [ "${1:-}" = "--demo" ]; then
  mkdir -p outputs  # git-ignored
  exec .venv/bin/python -m diffviz.demo --out outputs/demo.png
fi
extra=()
if [ "$(id -u)" = 0 ]; then
  extra+=(--allow-root)
fi
exec .venv/bin/jupyter lab notebooks/ ${extra[@]+"${extra[@]}"} "$@"
