#!/usr/bin/env bash
# Real-browser tests (tests/e2e, pytest marker e2e): JupyterLab + Debian's Chromium driven by
# Playwright, and an exported handout opened offline. Installs chromium (apt, as root) and the
# `e2e` extra (playwright; never `playwright install`: it uses /usr/bin/chromium). Screenshots and
# logs go to ${TMPDIR:-/tmp}/diffviz-e2e-<timestamp>/, printed at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
PY=.venv/bin/python

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian's chromium (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "e2e: SKIPPED — /usr/bin/chromium is missing and we are not root; run: sudo apt-get install chromium"
    exit 0
  fi
fi
if ! command -v pdftoppm >/dev/null && [ "$(id -u)" = 0 ]; then  # optional: PDF page pictures as artifacts
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null 2>&1 || true
fi
$PY -c "import playwright" 2>/dev/null || $PY -m pip install -q -e '.[e2e]'

export DIFFVIZ_E2E_ARTIFACTS="${TMPDIR:-/tmp}/diffviz-e2e-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$DIFFVIZ_E2E_ARTIFACTS"
echo "e2e artifacts: $DIFFVIZ_E2E_ARTIFACTS"
status=0
$PY -m pytest -m e2e tests/e2e -q -p no:cacheprovider --durations=0 || status=$?
echo "e2e artifacts (screenshots, jupyterlab.log, handouts/): $DIFFVIZ_E2E_ARTIFACTS"
exit $status
