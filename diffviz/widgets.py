"""The explorers' public names, where notebooks have always imported them from:

    from diffviz.widgets import forward_explorer, trajectory_explorer

Each explorer lives in its own module of ``diffviz.explorers`` (compute, figures, static twin,
filmstrip and the thin widget); see that package's docstring for the layout. This module only
re-exports, so importing it costs nothing until a factory is called (which imports ipywidgets).
"""
from .explorers import (
    forward_explorer,
    noise_prediction_explorer,
    sampler_explorer,
    score_explorer,
    schedule_explorer,
    toy2d_explorer,
    trajectory_explorer,
    training_monitor,
    training_progress_explorer,
)
from .explorers.common import T_HELP
from .explorers.html import HANDOUT_ENV

__all__ = ["forward_explorer", "schedule_explorer", "trajectory_explorer", "noise_prediction_explorer",
           "training_monitor", "toy2d_explorer", "sampler_explorer", "score_explorer", "training_progress_explorer", "T_HELP", "HANDOUT_ENV"]
