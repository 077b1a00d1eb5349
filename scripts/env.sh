# Sourced by the scripts: keep Jupyter's and matplotlib's state inside the checkout, and make
# outputs reproducible (see ../shared/TOOLCHAIN.md).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export JUPYTER_CONFIG_DIR="$ROOT/.jupyter/config" JUPYTER_DATA_DIR="$ROOT/.jupyter/data"
export JUPYTER_RUNTIME_DIR="$ROOT/.jupyter/runtime" IPYTHONDIR="$ROOT/.jupyter/ipython"
export MPLCONFIGDIR="$ROOT/.jupyter/matplotlib"
unset MPLBACKEND PLOTLY_RENDERER
export PYTHONHASHSEED=0
