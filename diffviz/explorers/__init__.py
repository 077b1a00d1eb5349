"""Interactive explorers, one module per explorer, each in four layers:

    compute (arrays in, arrays out) ──► figure (plotly / matplotlib) ──► to_static, filmstrip ──► the widget

  module               factory                      compute          static twin / paper twin
  forward.py           forward_explorer             frame            to_static / filmstrip
  schedule.py          schedule_explorer            state            to_static / filmstrip
  trajectory.py        trajectory_explorer          frame            to_static / filmstrip
  noise_prediction.py  noise_prediction_explorer    frame            to_static / filmstrip
  monitor.py           training_monitor             record           to_static
  toy2d.py             toy2d_explorer               frame            to_static / filmstrip
  sampler.py           sampler_explorer             result           to_static / filmstrip
  progress.py          training_progress_explorer   frame            to_static / filmstrip
  score.py             score_explorer               frame            to_static / filmstrip

Shared: ``common.py`` (labels, caches, the spacing names), ``sampler_captions.py`` (the sampler
explorer's captions), ``html.py`` (an explorer as a static
handout block, and the ``DIFFVIZ_HANDOUT`` switch), ``base.py`` (``Explorer``, the one widget class),
``background.py`` (slow work in a worker thread where the newest request wins: the sampler explorer's).

Everything but the factories works without ipywidgets, e.g.
``diffviz.explorers.trajectory.filmstrip(traj, num=6)`` or
``forward.to_static(forward.inputs(image))``. A factory imports ipywidgets (and ``base``) when it
is called and returns an ``Explorer``: its controls and views as attributes, ``.current`` (the
arrays on show), ``.error`` / ``.last_error``, and ``.to_static()`` / ``.filmstrip()`` at the
controls' current values. A figure function returns (figure, handles): the trace indices that a
widget or a test updates or reads are named there, never counted elsewhere.
Timesteps are 0-based: code t = k is the paper's t = k + 1.
"""
from . import forward, monitor, noise_prediction, progress, sampler, schedule, score, toy2d, trajectory
from .forward import forward_explorer
from .noise_prediction import noise_prediction_explorer
from .progress import training_progress_explorer
from .sampler import sampler_explorer
from .score import score_explorer
from .schedule import schedule_explorer
from .toy2d import toy2d_explorer
from .monitor import training_monitor
from .trajectory import trajectory_explorer
