"""Score explorer: the arrow field of the score ∇ log q_t(x) of 2-D data at a chosen t, exact and learned.

    inputs(oracle, model, ...) ──► frame(inputs, t): arrows on a grid, noised data ──► to_static / filmstrip / widget

The exact score comes from the mixture's ε* (``score.score_from_eps``: ∇ log q_t = −ε*/√(1 − ᾱ_t)),
the learned one from the model's ε̂ the same way: a denoiser that predicts the noise is a scaled
score. Arrows point where the density of x_t grows fastest. Their length grows with √|score|, scaled per
frame (``display_arrows``; the readout gives the sizes), because |∇ log q_t| spans orders of magnitude: near
a mode it is 0, far from narrow data at small t it is huge, and at t = T − 1 it is about |x|.
Code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from .. import plots, viz
from ..score import score_from_eps
from ..validate import finite_number, positive_int
from ..variances import split_model_output
from .common import T_FRAME_PREFIX, check_t, t_label

DEFAULT_TIMESTEPS = (0, 10, 25, 50, 100, 200, 300, 500, 700, 999)


@dataclass
class ScoreInputs:
    """What stays fixed while t moves: the grid, the data and its noise, the denoisers."""

    denoisers: dict  # {"exact (ε* of the mixture)" / "learned (ε̂ of the model)": ε-model}
    schedule: object  # NoiseSchedule
    grid: torch.Tensor  # (G², 2) float32 arrow tails
    cell: float  # grid spacing
    x0: torch.Tensor  # (N, 2) data points, noised to x_t behind the arrows
    noise: torch.Tensor  # (N, 2) their ε
    timesteps: list  # the slider's stops, ascending
    lim: float  # the axes show [−lim, lim]²


def inputs(oracle, model=None, data=None, n=400, grid=21, lim=2.5, timesteps=None, seed=0) -> ScoreInputs:
    """Check the arguments and fix the grid and the data's noise (``seed``). oracle: the exact
    denoiser (e.g. ``GaussianMixtureDenoiser``), whose ``schedule`` is used; model: a learned ε-model
    of the same data, or None; data: (N, 2) points (default: ``n`` draws from the oracle)."""
    schedule = oracle.schedule
    T = schedule.num_timesteps
    stops = sorted({check_t(int(t), T) for t in (timesteps or [t for t in DEFAULT_TIMESTEPS if t < T])})
    lim = finite_number("lim", lim, low=0, low_open=True)
    axis = torch.linspace(-lim, lim, positive_int("grid", grid))
    grid_points = torch.cartesian_prod(axis, axis)  # (G², 2)
    x0 = oracle.sample_data(positive_int("n", n), generator=viz.generator(seed)) if data is None else getattr(data, "x", data)
    x0 = torch.as_tensor(x0).float()[:n]
    if x0.ndim != 2 or x0.shape[1] != 2:
        raise ValueError(f"data must be 2-D points (N, 2), got {tuple(x0.shape)}")
    noise = torch.randn(x0.shape, generator=viz.generator(seed + 1))
    denoisers = {"exact score (from ε* of the mixture)": oracle}
    if model is not None:
        denoisers["learned score (from the model's ε̂)"] = model
    return ScoreInputs(denoisers, schedule, grid_points, 2 * lim / max(1, grid - 1), x0, noise, stops, lim)


@torch.no_grad()
def frame(inp: ScoreInputs, t: int) -> dict:
    """{"t", "points": x_t of the data (N, 2), "scores": [(G², 2) per denoiser], "arrows": as drawn
    (``display_arrows``), "scale": the |score| drawn one cell long, "sigma": √(1 − ᾱ_t)}."""
    if t not in inp.timesteps:
        raise ValueError(f"t must be one of the explorer's timesteps {inp.timesteps}, got {t!r}")
    t_batch = torch.full((inp.grid.shape[0],), t, dtype=torch.long)
    scores = []
    for model in inp.denoisers.values():
        eps = split_model_output(model(inp.grid, t_batch), inp.grid)[0]
        scores.append(score_from_eps(inp.schedule, eps.double(), t_batch).numpy())
    reference = max(float(np.percentile(np.linalg.norm(s, axis=1), 95)) for s in scores)
    return {"t": t, "points": viz.forward_sample(inp.schedule, inp.x0, t, inp.noise), "scores": scores,
            "arrows": [display_arrows(s, reference, 0.9 * inp.cell) for s in scores], "scale": reference,
            "sigma": float((1 - inp.schedule.alphas_cumprod[t]).sqrt())}


def display_arrows(scores: np.ndarray, reference: float, longest: float) -> np.ndarray:
    """The arrows as drawn: each score's direction, with length ``longest`` · min(1, √(|s| / reference)).
    The square root keeps short arrows near the modes visible beside the long ones far from the data."""
    norm = np.linalg.norm(scores, axis=1, keepdims=True)
    length = longest * np.minimum(1.0, np.sqrt(norm / max(reference, 1e-300)))
    return scores / np.maximum(norm, 1e-300) * length


def arrow_segments(tails: np.ndarray, vectors: np.ndarray):
    """Line segments tail → tail + vector as x, y arrays with None between segments, and the heads (M, 2)."""
    heads = tails + vectors
    xs = np.stack([tails[:, 0], heads[:, 0], np.full(len(tails), np.nan)], 1).ravel()
    ys = np.stack([tails[:, 1], heads[:, 1], np.full(len(tails), np.nan)], 1).ravel()
    return xs, ys, heads


def figure(inp: ScoreInputs, f: dict, height: int = 380):
    """One panel per denoiser: the noised data in grey, the arrows in colour with a dot at each head.
    Returns (fig, handles): handles["points"][i], ["arrows"][i], ["heads"][i] are panel i's traces."""
    titles = list(inp.denoisers)
    fig = make_subplots(1, len(titles), subplot_titles=titles)
    handles = {"points": [], "arrows": [], "heads": []}
    tails = inp.grid.numpy()
    for i, arrows in enumerate(f["arrows"]):
        xs, ys, heads = arrow_segments(tails, arrows)
        for key, trace in (("points", go.Scatter(x=f["points"][:, 0], y=f["points"][:, 1], mode="markers",
                                                 marker=dict(size=3, color="rgba(0,0,0,0.18)"), hoverinfo="skip")),
                           ("arrows", go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=1.2, color=plots.color(i)))),
                           ("heads", go.Scatter(x=heads[:, 0], y=heads[:, 1], mode="markers",
                                                marker=dict(size=3, color=plots.color(i))))):
            handles[key].append(len(fig.data))
            fig.add_trace(trace.update(showlegend=False), row=1, col=i + 1)
    fig.update_xaxes(range=[-inp.lim, inp.lim], zeroline=False)
    fig.update_yaxes(range=[-inp.lim, inp.lim], zeroline=False)
    for i in range(len(titles)):
        fig.update_yaxes(scaleanchor=f"x{'' if i == 0 else i + 1}", row=1, col=i + 1)
    fig.update_layout(height=height, margin=dict(l=30, r=10, t=40, b=30))
    return fig, handles


def frame_traces(inp: ScoreInputs, f: dict) -> list:
    """The traces of ``figure`` for frame ``f``, in the order of its handles (points, arrows, heads per panel)."""
    traces = []
    for arrows in f["arrows"]:
        xs, ys, heads = arrow_segments(inp.grid.numpy(), arrows)
        traces += [go.Scatter(x=f["points"][:, 0], y=f["points"][:, 1]), go.Scatter(x=xs, y=ys),
                   go.Scatter(x=heads[:, 0], y=heads[:, 1])]
    return traces


def to_static(inp: ScoreInputs, timesteps=None, max_frames: int = 12) -> go.Figure:
    """Plotly figure with one frame per t (default: the slider's stops, at most ``max_frames``)."""
    ts = viz.chosen_or_spaced(inp.timesteps, timesteps, max_frames)
    frames = [frame(inp, t) for t in ts]
    fig, handles = figure(inp, frames[0])
    order = [i for p in range(len(inp.denoisers)) for i in (handles["points"][p], handles["arrows"][p], handles["heads"][p])]
    return plots.add_slider_frames(fig, [(f["t"], frame_traces(inp, f)) for f in frames], order, prefix=T_FRAME_PREFIX)


def filmstrip(inp: ScoreInputs, timesteps=None, num: int = 5) -> Figure:
    """Rows: the denoisers; columns: the chosen t (default ``num`` of the slider's stops); matplotlib quiver."""
    ts = viz.chosen_or_spaced(inp.timesteps, timesteps, num)
    frames = [frame(inp, t) for t in ts]
    rows = len(inp.denoisers)
    fig = Figure(figsize=(2.4 * len(ts), 2.5 * rows))
    axes = fig.subplots(rows, len(ts), squeeze=False)
    tails = inp.grid.numpy()
    for c, f in enumerate(frames):
        for r, (name, arrows) in enumerate(zip(inp.denoisers, f["arrows"])):
            ax = axes[r][c]
            ax.scatter(f["points"][:, 0], f["points"][:, 1], s=1, color="0.75")
            ax.quiver(tails[:, 0], tails[:, 1], arrows[:, 0], arrows[:, 1], angles="xy", scale_units="xy", scale=1,
                      color=plots.color(r), width=0.006)
            ax.set_xlim(-inp.lim, inp.lim); ax.set_ylim(-inp.lim, inp.lim); ax.set_aspect("equal")
            ax.set_xticks([]); ax.set_yticks([])
            ax.set_title(t_label(f["t"]) if r == 0 else "", fontsize=8)
            if c == 0:
                ax.set_ylabel(name.split(" (")[0], fontsize=8)
    fig.tight_layout()
    return fig


def readout(inp: ScoreInputs, f: dict) -> str:
    """The caption under the slider: t, σ_t, the largest score, and the arrow scale."""
    largest = max(float(np.linalg.norm(s, axis=1).max()) for s in f["scores"])
    return (f"{t_label(f['t'])} · σ_t = √(1 − ᾱ_t) = {f['sigma']:.3g} · largest |∇ log q_t| on the grid = {largest:.3g}"
            f" · a full-cell arrow: |score| ≥ {f['scale']:.3g} (length ∝ √|score|) · ε = −σ_t · score")


def score_explorer(oracle, model=None, data=None, n=400, grid=21, lim=2.5, timesteps=None, seed=0):
    """Arrow fields of the score ∇ log q_t on a grid (plotly), one t slider: exact (from the mixture's
    ε*) and, with ``model``, learned (from its ε̂), over the data noised to x_t. Returns an ``Explorer``
    (t_slider, readout, figure, handles, inputs)."""
    import ipywidgets as W

    from .base import WIDE, Explorer, figure_widget

    inp = inputs(oracle, model, data, n, grid, lim, timesteps, seed)
    t_slider = W.SelectionSlider(options=[(str(t), t) for t in inp.timesteps], value=inp.timesteps[len(inp.timesteps) // 2],
                                 description="t", style=WIDE, layout=W.Layout(width="420px"))
    line = W.Label()
    fig, handles = figure(inp, frame(inp, t_slider.value))
    view = figure_widget(fig)

    def render(w) -> dict:
        f = frame(inp, t_slider.value)
        with view.batch_update():
            for p, arrows in enumerate(f["arrows"]):
                xs, ys, heads = arrow_segments(inp.grid.numpy(), arrows)
                view.data[handles["points"][p]].x, view.data[handles["points"][p]].y = f["points"][:, 0], f["points"][:, 1]
                view.data[handles["arrows"][p]].x, view.data[handles["arrows"][p]].y = xs, ys
                view.data[handles["heads"][p]].x, view.data[handles["heads"][p]].y = heads[:, 0], heads[:, 1]
        line.value = readout(inp, f)
        return f

    return Explorer("ScoreExplorer", "The score ∇ log q_t: where the density of x_t grows fastest", [t_slider, line],
                    [view], render, static=lambda w, *a, **kw: to_static(inp, *a, **kw),
                    filmstrip=lambda w, *a, **kw: filmstrip(inp, *a, **kw),
                    parts=dict(t_slider=t_slider, readout=line, figure=view, handles=handles, inputs=inp))
