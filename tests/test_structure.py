"""The shape of the package: what imports what, and how long its files are.

  * ``import diffviz``, ``python -m diffviz.demo`` and the handout's explorer → HTML / filmstrip
    path run with ipywidgets made unimportable (a folder first on PYTHONPATH whose ``ipywidgets``
    raises ImportError);
  * no import cycle between modules of ``diffviz/``, imports inside functions included;
  * no private helper (``_name``) imported from another module;
  * every ``diffviz/**/*.py`` has at most MAX_LINES lines.
"""
import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "diffviz"
MAX_LINES = 300
FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.fixture(scope="module")
def no_ipywidgets(tmp_path_factory):
    """An environment in which ``import ipywidgets`` raises ImportError."""
    blocker = tmp_path_factory.mktemp("blocker")
    (blocker / "ipywidgets").mkdir()
    (blocker / "ipywidgets" / "__init__.py").write_text("raise ImportError('ipywidgets is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    env.pop("DIFFVIZ_HANDOUT", None)
    return env


def run_python(args, env, cwd):
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_blocker_blocks(no_ipywidgets, tmp_path):
    proc = run_python(["-c", "import ipywidgets"], no_ipywidgets, tmp_path)
    assert proc.returncode != 0 and "ipywidgets is blocked" in proc.stderr


def test_import_diffviz_and_the_static_explorers_need_no_ipywidgets(no_ipywidgets, tmp_path):
    code = textwrap.dedent("""
        import sys
        import torch
        import diffviz, diffviz.widgets, diffviz.handout, diffviz.cli
        from diffviz.explorers import forward, html, schedule
        inp = forward.inputs(torch.zeros(1, 4, 4), num_timesteps=20)
        page = html.static_html("<b>forward</b>", forward.to_static(inp, max_frames=3), forward.filmstrip(inp, num=2))
        assert "Plotly.addFrames(" in page and "diffviz-print" in page
        st = schedule.state(["linear"], 20, 4)
        assert len(schedule.filmstrip(st).axes) == 3 and len(schedule.to_static(["linear"], [10, 20], 4).frames) == 2
        assert "ipywidgets" not in sys.modules or sys.modules["ipywidgets"] is None
        print("ok")
    """)
    proc = run_python(["-c", code], no_ipywidgets, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_demo_runs_without_ipywidgets(no_ipywidgets, tmp_path):
    out = tmp_path / "outputs" / "demo.png"  # a folder that does not exist yet, as on a fresh checkout
    proc = run_python(["-m", "diffviz.demo", "--out", str(out), "--steps", "2", "--threads", "1"],
                      no_ipywidgets, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sampled 10 digits in" in proc.stdout and "on 1 thread;" in proc.stdout
    assert out.stat().st_size > 0 and out.with_name("demo_samples.png").stat().st_size > 0


def test_demo_refuses_bad_arguments(tmp_path):
    proc = run_python(["-m", "diffviz.demo", "--out", str(tmp_path / "d.png"), "--threads", "0"],
                      {**os.environ, "OMP_NUM_THREADS": "1"}, tmp_path)
    assert proc.returncode == 2 and "threads must be a positive int, got 0" in proc.stderr
    for bad_out in (tmp_path / "d.jpg", tmp_path):  # not a PNG; a folder
        proc = run_python(["-m", "diffviz.demo", "--out", str(bad_out), "--steps", "2"],
                          {**os.environ, "OMP_NUM_THREADS": "1"}, tmp_path)
        assert proc.returncode == 2 and "out must be a .png file path" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- the import graph
def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in FILES}


def imports_of(path: Path):
    """(imported diffviz module, names taken from it) for every import statement in ``path``, at any depth."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from . import plots` imports the module diffviz.plots
                sub = f"{base}.{alias.name}"
                yield (sub, []) if sub in MODULES else (base, [alias.name])


def import_graph() -> dict:
    """{module: set of diffviz modules it imports}. Importing a.b.c also runs the packages above it
    (except the root ``diffviz`` and the packages that contain the importer, already running)."""
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target, _ in imports_of(path):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != name and not name.startswith(prefix + "."):
                    edges.add(prefix)
        graph[name] = edges
    return graph


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    graph = import_graph()
    assert "diffviz.explorers.html" in graph["diffviz.handout"] and "diffviz.viz" in graph["diffviz.explorers.forward"]
    assert "diffviz.explorers.base" in graph["diffviz.explorers.trajectory"]  # imported inside the factory


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_widgets_and_handout_do_not_import_each_other():
    graph = import_graph()
    assert "diffviz.handout" not in graph["diffviz.widgets"] and "diffviz.widgets" not in graph["diffviz.handout"]


def test_no_private_names_imported_across_modules():
    private = [f"{module_name(p)}: {target}.{n}" for p in FILES for target, names in imports_of(p)
               if target.startswith("diffviz") for n in names if n.startswith("_") and not n.endswith("__")]
    assert not private, "private helpers imported from another module:\n" + "\n".join(private)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_file_is_short(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES}): split it by purpose"
