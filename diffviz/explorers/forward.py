"""Forward-process explorer: x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε for several schedules with the SAME ε
(Ho et al. 2020, Eq. 4), the pixel histogram against N(0, 1), and the two weights against t.

    inputs(image, ...) ──► frame(inputs, t): arrays + PNGs ──► to_static / filmstrip / the widget

Timesteps are 0-based: code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from .. import plots, viz
from ..validate import positive_int
from .common import T_FRAME_PREFIX, T_HELP, check_t, t_label


@dataclass
class ForwardInputs:
    """What stays fixed while t moves."""

    x0: torch.Tensor  # (N, C, H, W) in [-1, 1]
    noise: torch.Tensor  # (N, C, H, W): the one ε every schedule uses
    schedules: dict  # {label: NoiseSchedule}, all with the same T
    coefficients: dict  # {label: viz.forward_coefficients(schedule)}
    T: int  # num_timesteps shared by the schedules
    nrow: int | None = None  # images per row in the PNG grids
    bins: int = 60  # pixel-histogram bins


def inputs(image, schedules=("linear", "cosine"), num_timesteps=1000, seed=0, nrow=None, bins=60) -> ForwardInputs:
    """Check the arguments and draw ε once with ``seed``. image: (C, H, W) or (N, C, H, W) in [-1, 1]."""
    x0 = viz.as_image_batch(image)
    named = viz.named_schedules(schedules, positive_int("num_timesteps", num_timesteps))
    noise = torch.randn(x0.shape, generator=viz.generator(seed))
    coefficients = {k: viz.forward_coefficients(s) for k, s in named.items()}
    T = viz.common_num_timesteps(named)
    return ForwardInputs(x0, noise, named, coefficients, T, nrow, positive_int("bins", bins))


def frame(inp: ForwardInputs, t: int) -> dict:
    """Everything shown at t: {"t", "x_t": {label: (N, C, H, W)}, "histogram": {label: (density, edges)},
    "png": {label: PNG bytes}}."""
    x_t = {k: viz.forward_sample(s, inp.x0, t, inp.noise) for k, s in inp.schedules.items()}
    return {"t": t, "x_t": x_t, "histogram": {k: viz.pixel_histogram(x, inp.bins) for k, x in x_t.items()},
            "png": {k: plots.image_png(x, inp.nrow) for k, x in x_t.items()}}


def caption(inp: ForwardInputs, label: str, t: int) -> str:
    """The title above one schedule's x_t, three short lines: "<b>linear</b> · t = 249 (paper 250)",
    "√ᾱ_t = …, √(1−ᾱ_t) = …", "SNR = ᾱ_t/(1−ᾱ_t) = …"."""
    c = inp.coefficients[label]
    a, b = c["sqrt_alpha_bar"][t], c["sqrt_one_minus_alpha_bar"][t]
    return (f"<b>{html.escape(label)}</b> · {t_label(t)}<br>√ᾱ_t = {a:.3f}, √(1−ᾱ_t) = {b:.3f}<br>"
            f"SNR = ᾱ_t/(1−ᾱ_t) = {a * a / (b * b):.3g}")


# ----------------------------------------------------------------------------- figures
def panel(inp: ForwardInputs):
    """The widget's matplotlib panel (histogram | weights against t), drawn once and then blitted.
    Returns (BlitRenderer, {label: histogram StepPatch}, [(signal, noise) markers per label])."""
    fig = Figure(figsize=(9.5, 2.8), dpi=80, layout="constrained")
    ax_hist, ax_coef = fig.subplots(1, 2)
    clean = {k: viz.pixel_histogram(inp.x0, inp.bins) for k in inp.schedules}
    steps = plots.plot_pixel_histogram(ax_hist, clean)
    peak = max(float(d.max()) for d, _ in clean.values())
    ax_hist.set_ylim(0, 1.05 * min(max(peak, 0.5), 1.5))  # fixed: it is part of the blitted background
    markers = plots.plot_forward_coefficients(ax_coef, inp.coefficients, 0)
    renderer = plots.BlitRenderer(fig, [*steps.values(), *(m for pair in markers for m in pair)])
    return renderer, steps, markers


def frame_traces(inp: ForwardInputs, f: dict) -> dict:
    """The traces of ``figure`` that change with t: {"images": [...], "histograms": [...], "markers": [...]},
    one per schedule."""
    t = f["t"]
    images = [go.Image(source=plots.data_uri(png), name=k) for k, png in f["png"].items()]
    hists = [go.Scatter(x=edges, y=np.append(density, density[-1]), line=dict(shape="hv", color=plots.color(i)),
                        name=f"x_t pixels ({k})") for i, (k, (density, edges)) in enumerate(f["histogram"].items())]
    markers = [go.Scatter(x=[t, t], y=[c["sqrt_alpha_bar"][t], c["sqrt_one_minus_alpha_bar"][t]], mode="markers",
                          marker=dict(color=plots.color(i), size=9), name=f"t ({k})", showlegend=False)
               for i, (k, c) in enumerate(inp.coefficients.items())]
    return {"images": images, "histograms": hists, "markers": markers}


def figure(inp: ForwardInputs, f: dict, height: int = 560):
    """Plotly picture of frame ``f``: x_t per schedule (row 1), the pixel histogram against N(0, 1) and
    the √ᾱ_t, √(1−ᾱ_t) curves with markers at t (row 2).
    Returns (fig, handles): handles[kind] lists the trace indices of ``frame_traces(...)[kind]``."""
    n = len(inp.schedules)
    cols = max(n, 2)
    specs = [[{}] * cols, [{}, {"colspan": cols - 1}] + [None] * (cols - 2)]
    fig = make_subplots(2, cols, specs=specs, row_heights=[0.55, 0.45], vertical_spacing=0.12,
                        subplot_titles=[*inp.schedules, *[""] * (cols - n), "pixels of x_t vs N(0, 1)",
                                        "√ᾱ_t (solid) and √(1−ᾱ_t) (dashed)"])
    changing, handles = frame_traces(inp, f), {}

    def add(kind, traces, row, col):
        handles[kind] = list(range(len(fig.data), len(fig.data) + len(traces)))
        for i, trace in enumerate(traces):
            fig.add_trace(trace, row=row, col=col(i))

    add("images", changing["images"], 1, lambda i: i + 1)
    add("histograms", changing["histograms"], 2, lambda i: 1)
    xs = np.linspace(-4, 4, 200)
    add("normal_pdf", [go.Scatter(x=xs, y=viz.standard_normal_pdf(xs), name="N(0, 1)",
                                  line=dict(color="black", dash="dash"))], 2, lambda i: 1)
    weights = (("sqrt_alpha_bar", "√ᾱ_t", None), ("sqrt_one_minus_alpha_bar", "√(1−ᾱ_t)", "dash"))  # solid, dashed
    curves = [go.Scatter(x=c["t"], y=c[key], name=f"{name} {k}", line=dict(color=plots.color(i), dash=dash))
              for i, (k, c) in enumerate(inp.coefficients.items()) for key, name, dash in weights]
    add("curves", curves, 2, lambda i: 2)
    add("markers", changing["markers"], 2, lambda i: 2)
    fig.update_xaxes(visible=False, row=1)
    fig.update_yaxes(visible=False, row=1)
    fig.update_xaxes(title_text="pixel value", range=[-4, 4], row=2, col=1)
    fig.update_xaxes(title_text=f"t ({plots.T_NOTE})", row=2, col=2)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40))
    return fig, handles


def to_static(inp: ForwardInputs, timesteps=None, max_frames: int = 20) -> go.Figure:
    """Plotly figure with one frame per t (default: ≤ max_frames evenly spaced over [0, T−1])."""
    ts = viz.chosen_or_spaced(range(inp.T), timesteps, max_frames)
    frames = [frame(inp, t) for t in ts]
    fig, handles = figure(inp, frames[0])
    kinds = ("images", "histograms", "markers")
    traces = [(f["t"], [tr for kind in kinds for tr in frame_traces(inp, f)[kind]]) for f in frames]
    return plots.add_slider_frames(fig, traces, [i for kind in kinds for i in handles[kind]], prefix=T_FRAME_PREFIX)


def filmstrip(inp: ForwardInputs, timesteps=None, num: int = 6) -> Figure:
    """Rows: schedules; columns: x_t at ``timesteps`` (default ``num`` evenly spaced over [0, T−1])."""
    ts = viz.chosen_or_spaced(range(inp.T), timesteps, num)
    frames = [frame(inp, t) for t in ts]
    rows = [[plots.png_to_array(f["png"][k]) for f in frames] for k in inp.schedules]
    return plots.image_filmstrip(rows, list(inp.schedules), [t_label(t) for t in ts],
                                 title=f"x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, same ε ({plots.T_NOTE})")


# ----------------------------------------------------------------------------- the widget
def forward_explorer(image, schedules=("linear", "cosine"), num_timesteps=1000, t=None, seed=0, nrow=None):
    """Slider over t: x_t for each schedule side by side (same ε, drawn with ``seed``), the pixel
    histogram against N(0, 1), and √ᾱ_t, √(1−ᾱ_t) with markers at t (Ho et al. 2020, Eq. 4).
    Args: image (C, H, W) or (N, C, H, W) in [-1, 1]; schedules: names / NoiseSchedules / {label: ...}
          sharing one T (names use ``num_timesteps``); t: start value in [0, T−1] (code t, paper t + 1).
    Returns an ``Explorer`` (attributes t_slider, readout, images, captions, panel, inputs)."""
    import ipywidgets as W

    from .base import WIDE, Explorer, caption_html, titled

    inp = inputs(image, schedules, num_timesteps, seed, nrow)
    t = check_t(inp.T // 4 if t is None else t, inp.T)
    t_slider = W.IntSlider(t, min=0, max=inp.T - 1, description="t", style=WIDE, layout=W.Layout(width="420px"),
                           tooltip=T_HELP)
    readout, panel_view = W.Label(), W.Image(format="png")
    images = {k: W.Image(format="png", layout=W.Layout(width="280px")) for k in inp.schedules}
    columns = {k: titled("", images[k], width=300, lines=3) for k in inp.schedules}
    captions = {k: columns[k].children[0] for k in inp.schedules}  # each picture's title
    renderer, steps, markers = panel(inp)

    def render(w) -> dict:
        t = t_slider.value
        f = frame(inp, t)
        for k in inp.schedules:
            images[k].value = f["png"][k]
            captions[k].value = caption_html(caption(inp, k, t), width=300)
            steps[k].set_data(values=f["histogram"][k][0])
        plots.set_forward_markers(markers, inp.coefficients, t)
        panel_view.value = renderer.png()
        readout.value = f"{t_label(t)} of T = {inp.T}; x_t shown clipped to [−1, 1]"
        return f

    row = W.HBox(list(columns.values()), layout=W.Layout(flex_flow="row wrap"))
    return Explorer("ForwardExplorer", "Forward process q(x_t | x_0)", [t_slider, readout], [row, panel_view],
                    render, static=lambda w, *a, **kw: to_static(inp, *a, **kw),
                    filmstrip=lambda w, *a, **kw: filmstrip(inp, *a, **kw),
                    parts=dict(t_slider=t_slider, readout=readout, images=images, captions=captions,
                               panel=panel_view, inputs=inp, x0=inp.x0, noise=inp.noise, T=inp.T))
