"""Real-browser fixtures: a JupyterLab server on 127.0.0.1 and the system Chromium driven by Playwright.

Run with ``bash scripts/e2e.sh`` (it installs Debian's chromium and playwright, then runs
``pytest -m e2e tests/e2e``). Screenshots, logs and the served notebook copies go to
``$DIFFVIZ_E2E_ARTIFACTS`` (scripts/e2e.sh sets it; default: a new temp dir). JupyterLab serves
COPIES of the notebooks, so running them never touches the checkout. Playwright is imported
inside the fixtures: the unit run collects this folder without it.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DIFFVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LAB_SETTINGS = {  # user settings of the served JupyterLab: no network, no autosave, every cell in the DOM
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("DIFFVIZ_E2E_ARTIFACTS") or tempfile.mkdtemp(prefix="diffviz-e2e-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ne2e artifacts: {path}")
    return path


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/e2e.sh does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[e2e]' (scripts/e2e.sh does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, method: str = "GET"):
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
        body = r.read()
    return json.loads(body) if body else None


def _shutdown_kernels(url: str, token: str):
    """Shut down every kernel of the server at ``url`` (through its REST API)."""
    try:
        for kernel in _api(f"{url}/api/kernels?token={token}") or []:
            _api(f"{url}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
    except OSError:
        pass


@pytest.fixture(scope="session")
def lab(artifacts):
    """A JupyterLab serving copies of notebooks/ and tests/fixtures/ under ARTIFACTS/lab.
    Yields {"url", "token", "root", "shutdown_kernels"}; at the end its kernels are shut down and
    the server is stopped by its PID."""
    root = artifacts / "lab"
    for folder in ("notebooks", "tests/fixtures"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, root / Path(folder).name, dirs_exist_ok=True)
    settings = artifacts / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    jupyter = {name: str(ROOT / ".jupyter" / sub) for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "matplotlib"))}
    env = {**os.environ, **jupyter, "OMP_NUM_THREADS": "1"}
    for name in ("MPLBACKEND", "PLOTLY_RENDERER", "DIFFVIZ_HANDOUT"):
        env.pop(name, None)
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={artifacts / 'lab-workspaces'}", *(["--allow-root"] if os.geteuid() == 0 else [])]
    log = open(artifacts / "jupyterlab.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _api(f"{url}/api/status?token={token}")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: see {artifacts / 'jupyterlab.log'}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "root": root, "shutdown_kernels": lambda: _shutdown_kernels(url, token)}
    finally:
        _shutdown_kernels(url, token)
        server.send_signal(signal.SIGTERM)  # this PID only: the server we started
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def page(browser, artifacts, request):
    """A fresh 1400×1000 page; JavaScript errors are collected in ``page.js_errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda err: page.js_errors.append(str(err)))
    yield page
    context.close()

