"""`diffviz handout` with notebooks that fail: every notebook that can be built is built, and each
failure is one line naming the notebook and the cell (a cell past --timeout, a dead kernel)."""
import nbformat
import pytest

from diffviz.cli import main


def notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a test notebook")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


@pytest.mark.slow
def test_failures_are_summarised_and_the_rest_is_built(tmp_path, capsys):
    notebook(tmp_path / "a_dies.ipynb", "x = 1", "import os\nos._exit(1)")
    notebook(tmp_path / "b_good.ipynb", "print('fine')")
    notebook(tmp_path / "c_slow.ipynb", "y = 2", "import time\ntime.sleep(30)")
    out = tmp_path / "out"
    assert main(["handout", str(tmp_path), "--out", str(out), "--no-pdf", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert (out / "b_good.html").is_file() and not (out / "a_dies.html").exists()
    assert "2 of 3 handouts failed" in err and "Traceback" not in err
    assert f"{tmp_path / 'a_dies.ipynb'}: cell 3 (`import os`) killed the kernel" in err
    assert f"{tmp_path / 'c_slow.ipynb'}: cell 3 (`import time`) ran longer than --timeout 2 s" in err
