"""2-D toy explorer: a point cloud through the forward process, and the reverse process run by the
exact denoiser ε* and a learned one from the SAME x_T, side by side at the same t.

    inputs(data, schedule, oracle, model, ...) ──► frame(inputs, t): point clouds ──► to_static / filmstrip / widget

The t slider offers the timesteps the reverse runs visited (``Trajectory.timesteps``), ascending,
and t = −1 for x_0 (the data on the left, the final samples on the right). Code t = k is the
paper's t = k + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from .. import plots, viz
from ..sampling import SAMPLERS
from ..schedules import sampling_timesteps
from ..validate import check_num_steps, finite_number, one_of, positive_int
from .common import T_FRAME_PREFIX, t_label


@dataclass
class Toy2DInputs:
    """What stays fixed while t moves: the data, the two noises and the reverse runs."""

    x0: torch.Tensor  # (N, 2) data points
    schedule: object  # NoiseSchedule
    noise: torch.Tensor  # (N, 2): the ε of the forward process
    x_T: torch.Tensor  # (N, 2): where every reverse run starts
    trajectories: dict  # {"exact ε* (oracle)" / "learned ε_θ": Trajectory}
    timesteps: list  # the slider's stops: −1 (x_0), then the visited t ascending
    titles: list  # panel titles: forward, then one per trajectory
    lim: float  # the axes show [−lim, lim]²
    sampler: str
    num_steps: int


def inputs(data, schedule, oracle=None, model=None, n=1000, sampler="ddpm", num_steps=100, eta=0.0,
           seed=0) -> Toy2DInputs:
    """Check the arguments, draw ε and x_T with ``seed`` and ``seed + 1``, and run every denoiser once
    from x_T (``viz.run_sampler``). data: (N, 2) points or a Dataset of them; the first ``n`` are used."""
    x0 = torch.as_tensor(getattr(data, "x", data)).float()
    if x0.ndim != 2 or x0.shape[1] != 2:
        raise ValueError(f"data must be 2-D points (N, 2) (or a Dataset of them), got {tuple(x0.shape)}")
    x0 = x0[: positive_int("n", n)]
    num_steps = check_num_steps(num_steps, schedule.num_timesteps)
    run = dict(sampler=one_of("sampler", sampler, SAMPLERS), num_steps=num_steps,
               eta=finite_number("eta", eta, low=0), seed=seed)
    noise = torch.randn(x0.shape, generator=viz.generator(seed))
    x_T = torch.randn(x0.shape, generator=viz.generator(seed + 1))
    denoisers = {k: m for k, m in (("exact ε* (oracle)", oracle), ("learned ε_θ", model)) if m is not None}
    trajectories = {k: viz.run_sampler(m, schedule, x_T, record=True, **run) for k, m in denoisers.items()}
    if trajectories:  # the runs share sampler and steps, so they visit the same t
        visited = next(iter(trajectories.values())).timesteps
    else:  # forward only: the t the sampler would visit
        visited = sampling_timesteps(schedule.num_timesteps, num_steps)
    timesteps = [-1, *sorted(int(t) for t in visited)]
    lim = float(min(6.0, max(3.0, 1.05 * float(torch.cat([x0, x_T]).abs().max()))))
    titles = ["forward q(x_t | x_0)", *(f"reverse, {k}" for k in trajectories)]
    return Toy2DInputs(x0, schedule, noise, x_T, trajectories, timesteps, titles, lim, sampler, num_steps)


def frame(inp: Toy2DInputs, t: int) -> dict:
    """{"t", "clouds": [forward x_t = q_sample(x_0, t, ε) (x_0 at t = −1), then reverse x_t per run]}, each (N, 2)."""
    if t not in inp.timesteps:
        raise ValueError(f"t must be −1 (x_0) or a timestep the runs visited, got {t!r}")
    forward = inp.x0.numpy() if t < 0 else viz.forward_sample(inp.schedule, inp.x0, t, inp.noise)
    return {"t": t, "clouds": [forward, *(viz.points_at(tr, t) for tr in inp.trajectories.values())]}


def figure(inp: Toy2DInputs, f: dict, height: int = 360):
    """Point clouds side by side, square axes fixed to [−lim, lim], the data in grey behind each.
    Returns (fig, handles): handles["clouds"][i] is panel i's cloud, handles["data"][i] its background."""
    fig = make_subplots(1, len(inp.titles), subplot_titles=list(inp.titles))
    handles = {"clouds": [], "data": []}
    for i, p in enumerate(f["clouds"]):
        handles["clouds"].append(len(fig.data))
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=inp.titles[i], showlegend=False,
                                 marker=dict(size=3, color=plots.color(i))), row=1, col=i + 1)
    background = inp.x0.numpy()
    for i in range(len(inp.titles)):
        handles["data"].append(len(fig.data))
        fig.add_trace(go.Scatter(x=background[:, 0], y=background[:, 1], mode="markers", name="data",
                                 showlegend=False, hoverinfo="skip", marker=dict(size=2, color="rgba(0,0,0,0.12)")),
                      row=1, col=i + 1)
    fig.update_xaxes(range=[-inp.lim, inp.lim], zeroline=False)
    fig.update_yaxes(range=[-inp.lim, inp.lim], zeroline=False)
    for i in range(len(inp.titles)):
        fig.update_yaxes(scaleanchor=f"x{'' if i == 0 else i + 1}", row=1, col=i + 1)
    fig.update_layout(height=height, margin=dict(l=30, r=10, t=40, b=30))
    return fig, handles


def to_static(inp: Toy2DInputs, timesteps=None, max_frames: int = 25) -> go.Figure:
    """Plotly figure with one frame per t (default ≤ ``max_frames`` of the slider's stops)."""
    ts = viz.chosen_or_spaced(inp.timesteps, timesteps, max_frames)
    frames = [frame(inp, t) for t in ts]
    fig, handles = figure(inp, frames[0])
    traces = [("x_0" if f["t"] < 0 else f["t"], [go.Scatter(x=p[:, 0], y=p[:, 1]) for p in f["clouds"]])
              for f in frames]
    return plots.add_slider_frames(fig, traces, handles["clouds"], prefix=T_FRAME_PREFIX)


def filmstrip(inp: Toy2DInputs, timesteps=None, num: int = 6) -> Figure:
    """Rows: the panels; columns: the chosen t (default ``num`` of the slider's stops)."""
    ts = viz.chosen_or_spaced(inp.timesteps, timesteps, num)
    frames = [frame(inp, t) for t in ts]
    rows = [[f["clouds"][r] for f in frames] for r in range(len(inp.titles))]
    return plots.scatter_filmstrip(rows, inp.titles, [t_label(t) for t in ts], inp.lim, inp.x0.numpy())


def toy2d_explorer(data, schedule, oracle=None, model=None, n=1000, sampler="ddpm", num_steps=100, eta=0.0, seed=0):
    """2-D point clouds (plotly), one t slider: the forward process on ``data`` (N, 2) and the reverse
    process run by ``oracle`` (e.g. a GaussianMixtureDenoiser) and ``model`` (a learned ε-model) from
    the same x_T. Both reverse runs are computed once, when the widget is built.
    Returns an ``Explorer`` (t_slider, readout, figure, handles, inputs, x_T, noise, trajectories)."""
    import ipywidgets as W

    from .base import WIDE, Explorer, figure_widget

    inp = inputs(data, schedule, oracle, model, n, sampler, num_steps, eta, seed)
    ts = inp.timesteps
    t_slider = W.SelectionSlider(options=[("x_0", -1)] + [(str(t), t) for t in ts[1:]], value=ts[1:][len(ts[1:]) // 2],
                                 description="t (← reverse · forward →)", style=WIDE, layout=W.Layout(width="520px"))
    line = W.Label()
    fig, handles = figure(inp, {"clouds": [np.zeros((0, 2))] * len(inp.titles)})
    view = figure_widget(fig)

    def render(w) -> dict:
        t = t_slider.value
        f = frame(inp, t)
        with view.batch_update():
            for i, points in zip(handles["clouds"], f["clouds"]):
                view.data[i].x, view.data[i].y = points[:, 0], points[:, 1]
        line.value = t_label(t) + ("" if t < 0 else f" · ᾱ_t = {float(schedule.alphas_cumprod[t]):.3g}")
        return f

    title = f"2-D toy data: forward and reverse ({inp.sampler.upper()}, {inp.num_steps} steps)"
    return Explorer("Toy2DExplorer", title, [t_slider, line], [view], render,
                    static=lambda w, *a, **kw: to_static(inp, *a, **kw),
                    filmstrip=lambda w, *a, **kw: filmstrip(inp, *a, **kw),
                    parts=dict(t_slider=t_slider, readout=line, figure=view, handles=handles, inputs=inp,
                               x_T=inp.x_T, noise=inp.noise, trajectories=inp.trajectories))
