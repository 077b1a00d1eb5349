"""Execute notebooks in place (as CI's nbval will re-run them), storing the widgets' state.

    .venv/bin/python scripts/execute_notebooks.py notebooks/01_forward_process.ipynb [...]

The state of every widget on show is saved in the notebook's ``metadata.widgets``, so a notebook
opened before it is run (and a static viewer such as GitHub or nbviewer) draws the explorers'
pictures instead of ``ForwardExplorer(children=(HTML(…`` text. nbval does not compare metadata.
Run it from scripts/env.sh's environment (bash -c 'source scripts/env.sh && ...') so Jupyter's
state stays inside the checkout. Prints the wall time and file size of each notebook.
"""
import os
import sys
import time

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

MAX_MB = 10  # a committed notebook larger than this is an error: find the widget that stores so much


def execute(path, timeout=900):
    """Run ``path`` in place with its widget state stored; returns (seconds, megabytes)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    runner = ExecutePreprocessor(timeout=timeout, kernel_name="python3", store_widget_state=True,
                                 record_timing=False)  # no timestamps: a re-run only changes what changed
    runner.preprocess(nb, {"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return seconds, os.path.getsize(path) / 1e6


if __name__ == "__main__":
    too_big = []
    for path in sys.argv[1:]:
        seconds, mb = execute(path)
        print(f"{path}: executed in {seconds:.1f} s, {mb:.1f} MB", flush=True)
        if mb > MAX_MB:
            too_big.append(f"{path} ({mb:.1f} MB)")
    if too_big:
        sys.exit(f"notebooks over {MAX_MB} MB: {', '.join(too_big)}")
