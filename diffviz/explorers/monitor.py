"""Training monitor: a live loss curve (log scale) and the latest sample grid, fed by
``Trainer.fit(callback=monitor)`` with ``TrainEvent``s (step, loss, images_seen, elapsed, and
sometimes samples: (B, C, H, W) images or (B, 2) points of toy data).

    record(history, event) ──► figure / samples_png / readout ──► to_static / the widget
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from .. import plots
from ..validate import finite_number, positive_int


@dataclass
class LossHistory:
    """Everything the monitor has been fed."""

    steps: list = field(default_factory=list)  # optimizer step of each event
    losses: list = field(default_factory=list)  # L_simple at that step
    samples: np.ndarray | None = None  # the latest samples: (B, C, H, W) images or (B, 2) points


def record(history: LossHistory, event) -> bool:
    """Append ``event``'s step and loss; keep its samples when it has some. Returns True if it had samples."""
    history.steps.append(int(event.step))
    history.losses.append(float(event.loss))
    if getattr(event, "samples", None) is None:
        return False
    history.samples = np.asarray(event.samples)
    return True


def samples_png(samples: np.ndarray, nrow=None) -> bytes:
    """A PNG of the samples: a scatter plot for (B, 2) points, an image grid for (B, C, H, W) images."""
    is_points = samples.ndim == 2 and samples.shape[1] == 2
    return plots.scatter_png(samples) if is_points else plots.image_png(samples, nrow)


def readout(event) -> str:
    """"step 50 · loss 0.2000 · 3,200 images · 2.5 s (20.0 steps/s)"."""
    rate = event.step / event.elapsed if event.elapsed > 0 else float("nan")
    return (f"step {event.step} · loss {event.loss:.4f} · {event.images_seen:,} images · "
            f"{event.elapsed:.1f} s ({rate:.1f} steps/s)")


def thinned(history: LossHistory, max_points: int):
    """(steps, losses) with at most ``max_points`` points (every k-th), for drawing."""
    stride = max(1, -(-len(history.steps) // max_points))
    return history.steps[::stride], history.losses[::stride]


def figure(steps=(), losses=(), height: int = 300):
    """The training-loss plot with a log-scale y axis. Returns (fig, handles): handles["loss"] is the curve's index."""
    fig = go.Figure(go.Scatter(x=list(steps), y=list(losses), mode="lines", name="L_simple"))
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=30, b=40), title="training loss",
                      xaxis_title="optimizer step", yaxis_title="L_simple = mean ‖ε − ε̂‖² (log scale)")
    fig.update_yaxes(type="log")
    return fig, {"loss": 0}


def loss_png(steps, losses, size=(5.5, 3.0), dpi: int = 80) -> bytes:
    """The training-loss plot (log-scale y) as a PNG: what the widget shows. A picture rather than a
    plotly FigureWidget, whose stored widget state (≈ 5 MB of JavaScript) a notebook would carry."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    ax = fig.subplots()
    if len(steps):
        ax.plot(steps, losses, color=plots.color(0), lw=1.2)
        ax.set_yscale("log")
    ax.set(title="training loss", xlabel="optimizer step", ylabel="L_simple (log scale)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def to_static(history: LossHistory) -> go.Figure:
    """The loss curve so far as a plain plotly Figure."""
    return figure(history.steps, history.losses)[0]


def training_monitor(min_interval: float = 0.2, max_points: int = 2000, nrow=None):
    """A live loss curve (log scale) and EMA-sample grid. Use: ``mon = training_monitor(); mon``
    in one cell, then ``trainer.fit(callback=mon)`` (the monitor is callable) and ``mon.flush()``.
    The readout always updates; the curve is redrawn at most every ``min_interval`` seconds
    (``flush()`` draws the rest); sample grids whenever they arrive. Never raises: errors show in
    the widget. Returns an ``Explorer`` (figure: the loss-plot Image, shown: the (steps, losses) it
    draws, readout, image, history, callback, flush)."""
    import ipywidgets as W

    from .base import Explorer, titled

    min_interval = finite_number("min_interval", min_interval, low=0)
    max_points = positive_int("max_points", max_points)
    history, pending = LossHistory(), []
    clock = {"last_draw": -float("inf"), "dirty": False}
    view = W.Image(value=loss_png([], []), format="png")
    shown = {"steps": [], "losses": []}  # what the loss plot draws now
    line = W.Label("waiting for the first training event…")
    image = W.Image(format="png")

    def render(w) -> dict:
        while pending:
            event = pending.pop(0)
            line.value = readout(event)
            if record(history, event):
                image.value = samples_png(history.samples, nrow)
            clock["dirty"] = True
        if clock["dirty"] and time.perf_counter() - clock["last_draw"] >= min_interval:
            shown["steps"], shown["losses"] = thinned(history, max_points)
            view.value = loss_png(shown["steps"], shown["losses"])
            clock.update(last_draw=time.perf_counter(), dirty=False)
        return {"steps": history.steps, "losses": history.losses, "samples": history.samples}

    def callback(event):
        """Record one event and redraw what is due; never raises (errors show in the widget)."""
        pending.append(event)
        monitor.update()

    def flush():
        """Draw the loss curve now, whatever the throttle says (call after ``fit`` returns)."""
        clock["last_draw"] = -float("inf")
        monitor.update()

    monitor = Explorer("TrainingMonitor", "Training monitor", [line], [W.HBox([view, titled("EMA samples", image)])],
                       render, static=lambda w: to_static(history),
                       note="loss = L_simple, the mean squared error of ε̂",
                       parts=dict(figure=view, shown=shown, readout=line, image=image, history=history,
                                  callback=callback, flush=flush))
    return monitor
