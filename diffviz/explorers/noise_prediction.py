"""Noise-prediction explorer: a real image noised to t with a known ε, the model's ε̂, the error ε̂ − ε,
and x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t in one jump. The network predicts the WHOLE noise, not the next step.

    inputs(model, image, schedule, ...) ──► frame(inputs, t) ──► to_static / filmstrip / the widget

Timesteps are 0-based: code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure

from .. import plots, viz
from ..validate import positive_int
from .common import T_FRAME_PREFIX, check_t, t_label

PANELS = {"x_t": "x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε", "noise": "true noise ε (÷3)",
          "eps_pred": "predicted noise ε̂ = ε_θ(x_t, t) (÷3)", "eps_error": "error ε̂ − ε (same scale)",
          "x0_pred": "one-shot x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t"}
ROW_LABELS = ["x_t", "ε", "ε̂", "ε̂ − ε", "x̂_0"]  # the filmstrip's rows, in PANELS order
NOISE_PANELS = ("noise", "eps_pred", "eps_error")  # shown as ε / 3 (±3σ → black / white)


@dataclass
class NoiseInputs:
    """What stays fixed while t moves, and the frames computed so far (one model call per t)."""

    model: object  # ε_θ(x_t, t[, y])
    schedule: object  # NoiseSchedule
    x0: torch.Tensor  # (N, C, H, W) in [-1, 1]
    noise: torch.Tensor  # (N, C, H, W): the ε added at every t
    timesteps: list  # the t values offered, ascending
    y: object = None  # class label(s) for a conditional model
    nrow: int | None = None
    frames: dict = field(default_factory=dict)  # {t: frame}


def inputs(model, image, schedule, timesteps=None, num_frames=50, seed=0, y=None, nrow=None) -> NoiseInputs:
    """Check the arguments and draw ε with ``seed``; ``timesteps`` default to ``num_frames`` evenly spaced."""
    x0 = viz.as_image_batch(image)
    T = schedule.num_timesteps
    chosen = viz.evenly_spaced(range(T), positive_int("num_frames", num_frames)) if timesteps is None else timesteps
    ts = sorted({check_t(t, T, "timesteps") for t in chosen})
    if not ts:
        raise ValueError(f"timesteps must hold at least one t in [0, {T - 1}], got {timesteps!r}")
    noise = torch.randn(x0.shape, generator=viz.generator(seed))
    return NoiseInputs(model, schedule, x0, noise, ts, y, nrow)


def frame(inp: NoiseInputs, t: int) -> dict:
    """``viz.noise_prediction`` at t plus a PNG per panel (computed once per t, then kept in ``inp.frames``)."""
    if t not in inp.frames:
        f = viz.noise_prediction(inp.model, inp.schedule, inp.x0, inp.noise, t, inp.y)
        shown = {k: viz.noise_for_display(f[k]) if k in NOISE_PANELS else f[k] for k in PANELS}
        inp.frames[t] = {"t": t, **f, "png": {k: plots.image_png(v, inp.nrow) for k, v in shown.items()}}
    return inp.frames[t]


def readout(inp: NoiseInputs, f: dict) -> str:
    """The line above the pictures: t, MSE(ε̂, ε), and how small one forward step's noise is."""
    return (f"{t_label(f['t'])} · MSE(ε̂, ε) = {f['mse']:.4f} · the target ε has std {float(inp.noise.std()):.2f}; "
            f"one forward step only adds noise of std √β_t = {f['step_noise_std']:.3f}")


def to_static(inp: NoiseInputs, timesteps=None, max_frames: int = 20) -> go.Figure:
    """Plotly figure with the five panels and one frame per t (default ≤ ``max_frames`` of ``inp.timesteps``)."""
    ts = viz.chosen_or_spaced(inp.timesteps, timesteps, max_frames)
    frames = [frame(inp, t) for t in ts]
    fig = plots.image_panels_figure(list(PANELS.values()), [frames[0]["png"][k] for k in PANELS], height=260)
    traces = [(t, [go.Image(source=plots.data_uri(f["png"][k])) for k in PANELS]) for t, f in zip(ts, frames)]
    return plots.add_slider_frames(fig, traces, range(len(PANELS)), prefix=T_FRAME_PREFIX)


def filmstrip(inp: NoiseInputs, timesteps=None, num: int = 5) -> Figure:
    """Rows x_t, ε, ε̂, ε̂ − ε, x̂_0; columns the chosen t (default ``num`` of ``inp.timesteps``)."""
    ts = viz.chosen_or_spaced(inp.timesteps, timesteps, num)
    frames = [frame(inp, t) for t in ts]
    rows = [[plots.png_to_array(f["png"][k]) for f in frames] for k in PANELS]
    return plots.image_filmstrip(rows, ROW_LABELS, [t_label(t) for t in ts])


def noise_prediction_explorer(model, image, schedule, timesteps=None, num_frames=50, seed=0, y=None, nrow=None,
                              precompute=True):
    """A real image noised to t (slider over ``timesteps``, default ``num_frames`` evenly spaced):
    true ε, predicted ε̂ = model(x_t, t[, y]), ε̂ − ε, and the one-shot x̂_0. ``precompute`` runs the
    model for every t when the widget is built so the slider only swaps cached pictures.
    Returns an ``Explorer`` (t_slider, readout, images, inputs, noise, timesteps)."""
    import ipywidgets as W

    from .base import WIDE, Explorer, titled

    inp = inputs(model, image, schedule, timesteps, num_frames, seed, y, nrow)
    ts = inp.timesteps
    t_slider = W.SelectionSlider(options=[(str(t), t) for t in ts], value=ts[len(ts) // 2], description="t",
                                 style=WIDE, layout=W.Layout(width="420px"))
    line = W.HTML()
    images = {k: W.Image(format="png") for k in PANELS}

    def render(w) -> dict:
        if precompute:  # every slider position at once, so that moving the slider is cheap
            for t in ts:
                frame(inp, t)
        f = frame(inp, t_slider.value)
        for k, view in images.items():
            view.value = f["png"][k]
        line.value = readout(inp, f)
        return f

    clean = titled("x_0 (clean image)", W.Image(value=plots.image_png(inp.x0, nrow), format="png"))
    row = W.HBox([clean, *(titled(title, images[k]) for k, title in PANELS.items())],
                 layout=W.Layout(flex_flow="row wrap"))
    return Explorer("NoisePredictionExplorer", "What the network predicts: the WHOLE noise ε, not the next step",
                    [t_slider], [line, row], render,
                    static=lambda w, *a, **kw: to_static(inp, *a, **kw),
                    filmstrip=lambda w, *a, **kw: filmstrip(inp, *a, **kw),
                    parts=dict(t_slider=t_slider, readout=line, images=images, inputs=inp, noise=inp.noise,
                               timesteps=ts))
