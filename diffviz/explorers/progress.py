"""Training-progress explorer: scrub through a finished training run. One slider over its snapshots
moves, together, the samples of that snapshot (all drawn from ONE fixed x_T, so they differ only by
training), the loss curve with a marker at that step (the rest greyed out), and the sample-quality
metrics measured so far: feature-FID against the real-digit baseline, and class accuracy.

    load_progress(...) ──► frame(progress, index): arrays + PNG ──► to_static / filmstrip / the widget

Nothing is sampled here: the samples were stored when the run was exported, so the widget is instant.
"""
from __future__ import annotations

import html
import numbers
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator
from plotly.subplots import make_subplots

from .. import plots, viz
from ..progress import TrainingProgress, load_progress
from ..validate import positive_int

GREY = "#c8c8c8"  # the part of the loss curve after the snapshot's step
ACCURACY_BARS = (0.9, 1.0)  # drawn across the accuracy panel: "good" and perfect
FRAME_PREFIX = "snapshot: "  # the label of the static twin's slider


def as_progress(progress) -> TrainingProgress:
    """A TrainingProgress as is; a folder or a shipped name ("mnist") loaded with ``load_progress``."""
    if isinstance(progress, TrainingProgress):
        return progress
    if isinstance(progress, (str, Path)):
        return load_progress(progress)
    raise TypeError(f"progress must be a TrainingProgress, a folder or a shipped name such as 'mnist', "
                    f"got {type(progress).__name__}")


def check_index(progress: TrainingProgress, index) -> int:
    """A snapshot index: an int in [0, S − 1]."""
    S = len(progress.snapshots)
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"index must be an int (a snapshot number in [0, {S - 1}]), got {type(index).__name__} {index!r}")
    if not 0 <= index < S:
        raise ValueError(f"index must be in [0, {S - 1}] (this run has {S} snapshots), got {index}")
    return int(index)


def duration(seconds: float) -> str:
    """"45 s", "4.1 min" or "2.3 h"."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def number(value: float, spec: str = ".1f") -> str:
    """``value`` formatted, or "—" (not measured) for NaN."""
    return "—" if np.isnan(value) else format(value, spec)


def samples_png(samples: np.ndarray, nrow: int | None = None) -> bytes:
    """(N, H, W) uint8 samples as one PNG grid, ``nrow`` per row (default: up to 10, one per digit)."""
    x = samples[:, None].astype(np.float32) / 127.5 - 1  # back to [-1, 1]: make_grid rounds to the same pixels
    return plots.image_png(x, nrow or min(len(samples), 10))


# ----------------------------------------------------------------------------- compute
def frame(progress: TrainingProgress, index: int, nrow: int | None = None) -> dict:
    """Everything shown at snapshot ``index``: {"index", "step", "images_seen", "wall_time", "samples"
    (N, H, W) uint8, "labels", "png", "loss_steps"/"losses" (the loss up to the step), "metric_steps"
    (≤ index + 1,) with "fid", "fid_real", "accuracy" up to the step, "values" {metric: value at the step}}."""
    i = check_index(progress, index)
    snap = progress.snapshots[i]
    done = progress.loss_steps <= snap.step
    names = ("fid", "fid_real", "accuracy", "w0_confidence", "w0_entropy")
    curves = {name: progress.metric(name) for name in names}
    return {"index": i, "step": snap.step, "images_seen": snap.images_seen, "wall_time": snap.wall_time,
            "samples": progress.samples[i], "labels": list(progress.sample_labels),
            "png": samples_png(progress.samples[i], nrow),
            "loss_steps": progress.loss_steps[done], "losses": progress.losses[done],
            "metric_steps": progress.steps[:i + 1], **{k: curves[k][:i + 1] for k in ("fid", "fid_real", "accuracy")},
            "values": {k: float(v[i]) for k, v in curves.items()}}


def readout(f: dict) -> str:
    """"step 2,000 · 64,000 images · 4.1 min"."""
    return f"step {f['step']:,} · {f['images_seen']:,} images · {duration(f['wall_time'])}"


def caption_lines(progress: TrainingProgress, f: dict) -> list:
    """Three lines: the step, the metrics at it, and what the samples were asked for."""
    v, n = f["values"], progress.metric_info.get("n")
    on = f" on {n:,} samples" if isinstance(n, int) else ""
    return [f"snapshot {f['index'] + 1} of {len(progress.snapshots)}: {readout(f)}",
            f"feature-FID{on} {number(v['fid'])} (real digits: {number(v['fid_real'])}) · "
            f"class accuracy {number(v['accuracy'], '.3f')} · w₀ confidence {number(v['w0_confidence'], '.2f')}",
            "samples from one fixed x_T, asked for digits " + " ".join(str(y) for y in f["labels"])]


def title(progress: TrainingProgress, f: dict) -> str:
    """The caption as HTML: the widget's caption and the plotly title (lines joined by <br>)."""
    return "<br>".join(html.escape(line) for line in caption_lines(progress, f))


def axis_limits(progress: TrainingProgress) -> dict:
    """Fixed limits for the plots (the same at every snapshot): {"step", "loss", "fid"} as (low, high)."""
    def spread(values, default):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        return (values.min() / 1.3, values.max() * 1.3) if len(values) else default

    last = max(int(progress.steps.max()), int(progress.loss_steps.max(initial=0)))
    fid = np.concatenate([progress.metric("fid"), progress.metric("fid_real")])
    return {"step": (0, last * 1.03), "loss": spread(progress.losses, (1e-2, 1.0)), "fid": spread(fid, (1.0, 100.0))}


# ----------------------------------------------------------------------------- the widget's panel
def panel(progress: TrainingProgress):
    """The widget's matplotlib panel (loss | FID | accuracy), drawn once and then blitted.
    Returns (BlitRenderer, artists {"loss", "marker", "fid", "accuracy"}) to move with ``set_panel``."""
    fig = Figure(figsize=(11, 2.8), dpi=80, layout="constrained")
    ax_loss, ax_fid, ax_acc = fig.subplots(1, 3)
    lim = axis_limits(progress)
    ax_loss.plot(progress.loss_steps, progress.losses, color=GREY, lw=1)
    (loss,) = ax_loss.plot([], [], color=plots.color(0), lw=1.2)
    marker = ax_loss.axvline(0, color="black", lw=1)
    ax_loss.set(yscale="log", ylim=lim["loss"], title="training loss (log scale)", xlabel="optimizer step")
    ax_fid.plot(progress.steps, progress.metric("fid_real"), color="black", ls="--", lw=1, label="real digits")
    (fid,) = ax_fid.plot([], [], "o-", color=plots.color(1), ms=3, label="samples")
    ax_fid.set(yscale="log", ylim=lim["fid"], title="feature-FID (lower is better)", xlabel="optimizer step")
    ax_fid.legend(fontsize=8, loc="upper right")
    for bar in ACCURACY_BARS:
        ax_acc.axhline(bar, color="black", ls=":" if bar < 1 else "-", lw=0.8)
    (accuracy,) = ax_acc.plot([], [], "o-", color=plots.color(2), ms=3)
    ax_acc.set(ylim=(0, 1.05), title="class accuracy (0.9 dotted)", xlabel="optimizer step")
    for ax in (ax_loss, ax_fid, ax_acc):
        ax.set_xlim(lim["step"])
    for ax in (ax_loss, ax_fid):  # log axes labelled 0.05, 0.1, 0.2, ... rather than 5×10⁻²
        ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
        for axis_ticks in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_ticks(FuncFormatter(lambda v, _: f"{v:g}"))
    artists = {"loss": loss, "marker": marker, "fid": fid, "accuracy": accuracy}
    return plots.BlitRenderer(fig, artists.values()), artists


def set_panel(artists: dict, f: dict) -> None:
    """Move the panel's artists to frame ``f``."""
    artists["loss"].set_data(f["loss_steps"], f["losses"])
    artists["marker"].set_xdata([f["step"], f["step"]])
    artists["fid"].set_data(f["metric_steps"], f["fid"])
    artists["accuracy"].set_data(f["metric_steps"], f["accuracy"])


# ----------------------------------------------------------------------------- plotly twin
def frame_traces(progress: TrainingProgress, f: dict) -> dict:
    """The traces of ``figure`` that change with the snapshot: {"image", "loss", "marker", "fid", "accuracy"}."""
    low, high = axis_limits(progress)["loss"]
    return {"image": go.Image(source=plots.data_uri(f["png"]), name="samples"),
            "loss": go.Scatter(x=f["loss_steps"], y=f["losses"], mode="lines", line=dict(color=plots.color(0)),
                               name="loss up to the step"),
            "marker": go.Scatter(x=[f["step"], f["step"]], y=[low, high], mode="lines",
                                 line=dict(color="black", width=1), name=f"step {f['step']:,}"),
            "fid": go.Scatter(x=f["metric_steps"], y=f["fid"], mode="lines+markers", line=dict(color=plots.color(1)),
                              name="feature-FID"),
            "accuracy": go.Scatter(x=f["metric_steps"], y=f["accuracy"], mode="lines+markers",
                                   line=dict(color=plots.color(2)), name="class accuracy")}


def figure(progress: TrainingProgress, f: dict, height: int = 380):
    """Plotly picture of frame ``f``: samples | loss (log y, greyed after the step) | feature-FID with the
    real-digit baseline (dashed) | class accuracy with the 0.9 and 1.0 lines; the title is the caption.
    Returns (fig, handles): handles[kind] is the trace index of ``frame_traces(...)[kind]``."""
    fig = make_subplots(1, 4, column_widths=[0.31, 0.23, 0.23, 0.23], horizontal_spacing=0.06,
                        subplot_titles=["samples (one fixed x_T)", "training loss (log)", "feature-FID (log)",
                                        "class accuracy"])
    changing, handles, lim = frame_traces(progress, f), {}, axis_limits(progress)

    def add(kind, trace, col):
        handles[kind] = len(fig.data)
        fig.add_trace(trace, row=1, col=col)

    add("image", changing["image"], 1)
    add("loss_all", go.Scatter(x=progress.loss_steps, y=progress.losses, mode="lines", line=dict(color=GREY),
                               name="loss (whole run)"), 2)
    for kind in ("loss", "marker"):
        add(kind, changing[kind], 2)
    add("fid_real", go.Scatter(x=progress.steps, y=progress.metric("fid_real"), mode="lines",
                               line=dict(color="black", dash="dash"), name="FID of real digits"), 3)
    add("fid", changing["fid"], 3)
    for bar in ACCURACY_BARS:
        add(f"accuracy_{bar}", go.Scatter(x=list(lim["step"]), y=[bar, bar], mode="lines", showlegend=False,
                                          line=dict(color="black", width=1, dash="dot" if bar < 1 else "solid")), 4)
    add("accuracy", changing["accuracy"], 4)
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, row=1, col=1)
    for col in (2, 3, 4):
        fig.update_xaxes(range=list(lim["step"]), title_text="optimizer step", row=1, col=col)
    fig.update_yaxes(type="log", range=np.log10(lim["loss"]).tolist(), row=1, col=2)
    fig.update_yaxes(type="log", range=np.log10(lim["fid"]).tolist(), row=1, col=3)
    fig.update_yaxes(range=[0, 1.05], row=1, col=4)
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=110, b=40), showlegend=False,
                      title=dict(text=title(progress, f), font=dict(size=13), y=0.97, yanchor="top"))
    return fig, handles


def to_static(progress, index: int = 0, indices=None, max_frames: int = 20, nrow: int | None = None) -> go.Figure:
    """Plotly figure with one frame per snapshot (``indices``, default ≤ max_frames evenly spaced,
    ``index`` always among them), starting at ``index``; each frame's title states its step and metrics."""
    progress = as_progress(progress)
    index = check_index(progress, index)
    chosen = viz.chosen_or_spaced(range(len(progress.snapshots)), indices, positive_int("max_frames", max_frames))
    chosen = sorted({check_index(progress, i) for i in chosen} | {index})
    frames = [frame(progress, i, nrow) for i in chosen]
    fig, handles = figure(progress, frames[chosen.index(index)])
    kinds = ("image", "loss", "marker", "fid", "accuracy")
    traces = [(f"step {f['step']:,}", [frame_traces(progress, f)[k] for k in kinds],
               dict(title=dict(text=title(progress, f)))) for f in frames]
    return plots.add_slider_frames(fig, traces, [handles[k] for k in kinds], prefix=FRAME_PREFIX,
                                   active=chosen.index(index))


def filmstrip(progress, indices=None, num: int = 6, max_samples: int = 9, nrow: int | None = None) -> Figure:
    """One row of sample grids at ``indices`` (default ``num`` evenly spaced snapshots), each titled
    with its step, feature-FID and class accuracy. Each grid holds the first ``max_samples`` samples,
    ``nrow`` per row (default: a square grid), so that the digits stay legible on paper."""
    progress = as_progress(progress)
    chosen = viz.chosen_or_spaced(range(len(progress.snapshots)), indices, positive_int("num", num))
    chosen = [check_index(progress, i) for i in chosen]
    shown = progress.samples[:, :positive_int("max_samples", max_samples)]  # (S, n, H, W)
    nrow = nrow or int(np.ceil(np.sqrt(shown.shape[1])))
    fid, accuracy = progress.metric("fid"), progress.metric("accuracy")
    labels = [f"step {progress.snapshots[i].step:,}\nFID {number(fid[i])}\nacc {number(accuracy[i], '.2f')}"
              for i in chosen]
    grids = [plots.png_to_array(samples_png(shown[i], nrow)) for i in chosen]
    return plots.image_filmstrip([grids], ["samples"], labels,
                                 title="the same x_T through training (FID: lower is better; acc: class accuracy)")


# ----------------------------------------------------------------------------- the widget
def training_progress_explorer(progress="mnist", index: int = 0, nrow: int | None = None):
    """Slider over a run's snapshots: their samples (one fixed x_T), the loss curve with a marker at
    the step (the rest greyed), and feature-FID / class accuracy up to the step; a caption states them.
    Args: progress: a TrainingProgress, a progress folder or a shipped name ("mnist"); index: the
          snapshot to start at; nrow: samples per grid row (default up to 10).
    Returns an ``Explorer`` (attributes slider, readout, image, caption, panel, artists, progress)."""
    import ipywidgets as W

    from .base import WIDE, Explorer

    progress = as_progress(progress)
    index = check_index(progress, index)
    options = [(f"step {s.step:,}", i) for i, s in enumerate(progress.snapshots)]
    slider = W.SelectionSlider(options=options, value=index, description="snapshot", style=WIDE,
                               layout=W.Layout(width="460px"))
    readout_label, image, caption = W.Label(), W.Image(format="png"), W.HTML()
    panel_view = W.Image(format="png")
    renderer, artists = panel(progress)

    def render(w) -> dict:
        f = frame(progress, slider.value, nrow)
        readout_label.value = readout(f)
        image.value = f["png"]
        caption.value = "<div style='font-size:12px'>" + title(progress, f) + "</div>"
        set_panel(artists, f)
        panel_view.value = renderer.png()
        return f

    return Explorer("TrainingProgressExplorer", "Training progress", [slider, readout_label],
                    [caption, image, panel_view], render,
                    static=lambda w, **kw: to_static(progress, slider.value, nrow=nrow, **kw),
                    filmstrip=lambda w, *a, **kw: filmstrip(progress, *a, **kw),
                    note="EMA snapshots of one run; samples stored, nothing is sampled here",
                    parts=dict(slider=slider, readout=readout_label, image=image, caption=caption,
                               panel=panel_view, artists=artists, progress=progress))
