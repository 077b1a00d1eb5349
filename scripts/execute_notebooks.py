"""Execute notebooks in place (as CI's nbval will re-run them) and drop stored widget state.

    .venv/bin/python scripts/execute_notebooks.py notebooks/01_forward_process.ipynb [...]

Run it from scripts/env.sh's environment (bash -c 'source scripts/env.sh && ...') so Jupyter's
state stays inside the checkout. Prints the wall time of each notebook.
"""
import sys
import time

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor


def execute(path, timeout=900):
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": "notebooks"}})
    nb.metadata.pop("widgets", None)  # ≈5 MB of widget JS per FigureWidget; nbval does not compare it
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"{path}: executed in {execute(path):.1f} s", flush=True)
