#!/usr/bin/env bash
# The test command: installs everything (scripts/setup.sh), then runs the unit suite, the
# notebooks under nbval, and the real-browser tests (tests/e2e, when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
PY=.venv/bin/python

echo "== unit tests"
$PY -m pytest tests -q --durations=10

echo "== notebooks (nbval)"
$PY -m pytest --nbval notebooks/ --nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider -q --durations=0

if [ -d tests/e2e ] && [ "${DIFFVIZ_SKIP_E2E:-0}" != 1 ]; then
  echo "== real-browser tests"
  bash scripts/e2e.sh
fi
