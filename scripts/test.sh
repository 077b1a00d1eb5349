#!/usr/bin/env bash
# The test command: installs everything (scripts/setup.sh) and Chromium (apt, as root; the unit
# test that prints a handout PDF needs it), then runs the unit suite, the notebooks under nbval,
# and the real-browser tests (tests/e2e, when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
PY=.venv/bin/python

if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian's chromium (apt-get), for the handout PDF test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is missing and we are not root: the handout PDF test will be skipped"
    echo "      (install it with: sudo apt-get install chromium)"
  fi
fi

echo "== unit tests"
$PY -m pytest tests -q --durations=10

echo "== notebooks (nbval)"
$PY -m pytest --nbval notebooks/ --nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider -q --durations=0

if [ -d tests/e2e ] && [ "${DIFFVIZ_SKIP_E2E:-0}" != 1 ]; then
  echo "== real-browser tests"
  bash scripts/e2e.sh
fi
