"""Trajectory explorer: scrub the steps of ONE recorded sampling run, x_t | ε̂ | x̂_0. Nothing is re-sampled.

    frame(trajectory, step): arrays + PNGs ──► to_static / filmstrip / the widget

Step 0 is the first (noisiest) step; ``trajectory.timesteps[step]`` is its code t (paper t + 1).
"""
from __future__ import annotations

from collections import OrderedDict

import plotly.graph_objects as go
from matplotlib.figure import Figure

from .. import plots, viz
from ..validate import positive_int
from .common import cache_put, t_label

PANELS = {"x_t": "x_t (input of this step)",
          "eps": f"predicted noise ε̂ (shown ÷{viz.EPS_DISPLAY_RANGE:g})",
          "x0_hat": "x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t: full noise removal"}
ROW_LABELS = ["x_t", "ε̂ (÷3)", "x̂_0"]  # the filmstrip's rows, in PANELS order


def check_trajectory(trajectory):
    """A Trajectory recorded with ``record=True`` whose steps are images (S, N, C, H, W)."""
    x_t = getattr(trajectory, "x_t", None)
    if x_t is None or x_t.ndim != 5:
        got = None if x_t is None else tuple(x_t.shape)
        raise ValueError(f"trajectory must be recorded (record=True) images of shape (S, N, C, H, W), got x_t {got}")
    return trajectory


def frame(trajectory, step: int, max_images: int = 16, nrow=None, cache=None) -> dict:
    """Step ``step`` of the first ``max_images`` samples: {"step", "t", "x_t", "eps", "x0_hat", "png": {panel: PNG}}.
    ``cache`` (an OrderedDict) keeps PNGs per step, so scrubbing back is free."""
    arrays = viz.trajectory_step(trajectory, step)
    arrays = {k: (v[:max_images] if k != "t" else v) for k, v in arrays.items()}
    if cache is None or step not in cache:
        shown = {"x_t": arrays["x_t"], "eps": viz.noise_for_display(arrays["eps"]), "x0_hat": arrays["x0_hat"]}
        pngs = {k: plots.image_png(v, nrow) for k, v in shown.items()}
        if cache is None:
            return {"step": step, **arrays, "png": pngs}
        cache_put(cache, step, pngs)
    return {"step": step, **arrays, "png": cache[step]}


def to_static(trajectory, steps=None, max_frames: int = 20, max_images: int = 16, nrow=None, cache=None) -> go.Figure:
    """Plotly figure with the three panels and one frame per step (default ≤ ``max_frames`` evenly spaced)."""
    check_trajectory(trajectory)
    steps = viz.chosen_or_spaced(range(len(trajectory)), steps, max_frames)
    frames = [frame(trajectory, s, max_images, nrow, cache) for s in steps]
    fig = plots.image_panels_figure(list(PANELS.values()), [frames[0]["png"][k] for k in PANELS])
    traces = [(f"{s + 1}: t={f['t']}", [go.Image(source=plots.data_uri(f["png"][k])) for k in PANELS])
              for s, f in zip(steps, frames)]
    return plots.add_slider_frames(fig, traces, range(len(PANELS)), prefix="step: ")


def filmstrip(trajectory, steps=None, num: int = 6, max_images: int = 16, nrow=None, cache=None) -> Figure:
    """Rows x_t, ε̂, x̂_0; columns the chosen steps (default ``num`` evenly spaced), titled by their t."""
    check_trajectory(trajectory)
    steps = viz.chosen_or_spaced(range(len(trajectory)), steps, num)
    frames = [frame(trajectory, s, max_images, nrow, cache) for s in steps]
    rows = [[plots.png_to_array(f["png"][k]) for f in frames] for k in PANELS]
    return plots.image_filmstrip(rows, ROW_LABELS, [t_label(f["t"]) for f in frames])


def trajectory_explorer(trajectory, max_images: int = 16, nrow=None):
    """Slider over the sampling steps of a recorded ``Trajectory`` (``sample(..., record=True)``):
    x_t | predicted noise ε̂ | x̂_0 ("full noise removal") for the first ``max_images`` samples.
    Returns an ``Explorer`` (step_slider, readout, images, trajectory)."""
    import ipywidgets as W

    from .base import WIDE, Explorer, titled

    check_trajectory(trajectory)
    max_images = positive_int("max_images", max_images)
    S, cache = len(trajectory), OrderedDict()
    step_slider = W.IntSlider(0, min=0, max=S - 1, description="sampling step", style=WIDE,
                              layout=W.Layout(width="420px"))
    readout = W.Label()
    images = {k: W.Image(format="png") for k in PANELS}
    final = W.Image(value=plots.image_png(trajectory.sample[:max_images], nrow), format="png")

    def render(w) -> dict:
        f = frame(trajectory, step_slider.value, max_images, nrow, cache)
        for k, view in images.items():
            view.value = f["png"][k]
        readout.value = f"step {f['step'] + 1} of {S} · {t_label(f['t'])}"
        return f

    row = W.HBox([*(titled(title, images[k]) for k, title in PANELS.items()),
                  titled("final sample x_0 (after the last step)", final)])
    options = dict(max_images=max_images, nrow=nrow, cache=cache)
    return Explorer("TrajectoryExplorer", f"Sampling trajectory ({trajectory.sampler.upper()}, {S} steps)",
                    [step_slider, readout], [row], render,
                    static=lambda w, steps=None, max_frames=20: to_static(trajectory, steps, max_frames, **options),
                    filmstrip=lambda w, steps=None, num=6: filmstrip(trajectory, steps, num, **options),
                    parts=dict(step_slider=step_slider, readout=readout, images=images, trajectory=trajectory))
