"""Plot functions: numpy arrays in, pictures out. No torch, no widgets, no global pyplot state.

Three kinds, all pure (same arrays → same picture):
  * images → PNG bytes (pillow, nearest-neighbour upscaling so 28×28 digits stay crisp);
  * matplotlib: functions that draw into an ``ax`` you pass (and return the artists a widget may
    update in place), plus filmstrips that return a ``matplotlib.figure.Figure`` (never pyplot, so
    nothing is shown twice in Jupyter);
  * plotly: ``image_panels_figure`` (trace i is panel i) and ``add_slider_frames``, which turns a
    figure into a self-contained animation with its own slider (the "static twin" of a widget).
    The plotly figures of one explorer live in its module, ``diffviz.explorers.<name>.figure``,
    which returns the figure and the trace indices ("handles") of what changes.
Timesteps are 0-based: code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from plotly.subplots import make_subplots

from .images import make_grid
from .validate import finite_array

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")  # the same in mpl and plotly
T_NOTE = "code t = k is the paper's t = k + 1"


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


# ----------------------------------------------------------------------------- images → PNG
def display_scale(size: int, target: int = 256) -> int:
    """Integer upscaling that brings a small image (side ``size`` px) near ``target`` px; 1 for ≥ 128."""
    return 1 if size >= 128 else max(1, target // max(size, 1))


def to_png(pixels: np.ndarray, scale: int = 1) -> bytes:
    """uint8 (H, W), (H, W, 1) or (H, W, 3) → PNG bytes, enlarged ``scale``× by nearest neighbour."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"pixels must be uint8 (H, W[, C]), got {pixels.dtype} {pixels.shape}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_png(x, nrow: int | None = None, scale: int | None = None) -> bytes:
    """Images in [-1, 1], (C, H, W) or (N, C, H, W), as one PNG grid (``images.make_grid``; values
    outside [-1, 1] are clipped, NaN or ±inf are a ValueError). ``scale`` None picks ``display_scale`` of the grid."""
    x = finite_array("x", x)
    grid = make_grid(x[None] if x.ndim == 3 else x, nrow=nrow)  # (H_grid, W_grid, C) uint8
    return to_png(grid, scale or display_scale(max(grid.shape[:2])))


def png_to_array(png: bytes) -> np.ndarray:
    """PNG bytes → uint8 array (H, W[, C]) (for tests and filmstrips)."""
    return np.asarray(Image.open(io.BytesIO(png)))


def scatter_png(points: np.ndarray, lim: float = 3.5, size_px: int = 256) -> bytes:
    """A 2-D point cloud (N, 2) as a square PNG with axes fixed to [−lim, lim] (a full matplotlib draw)."""
    fig = Figure(figsize=(size_px / 80, size_px / 80), dpi=80, layout="constrained")
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], s=2, color=color(0))
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return to_png(np.asarray(canvas.buffer_rgba())[..., :3])


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI, the ``source`` of a plotly ``go.Image`` (keeps HTML self-contained)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ----------------------------------------------------------------------------- matplotlib panels
def plot_pixel_histogram(ax, histograms: dict, normal_range=(-4.0, 4.0)) -> dict:
    """Pixel-value densities of x_t (one step line per label) against the N(0, 1) density.
    Args: histograms {label: (density (B,), edges (B+1,))}. Returns {label: StepPatch} to update."""
    xs = np.linspace(*normal_range, 200)
    ax.plot(xs, np.exp(-0.5 * xs**2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    steps = {label: ax.stairs(density, edges, color=color(i), lw=1.5, label=label)
             for i, (label, (density, edges)) in enumerate(histograms.items())}
    ax.set(xlabel="pixel value of x_t", ylabel="density", xlim=normal_range, title="pixels of x_t vs N(0, 1)")
    ax.legend(fontsize=8, loc="upper right")
    return steps


def plot_forward_coefficients(ax, coefficients: dict, t: int | None = None) -> list:
    """√ᾱ_t (signal, solid) and √(1 − ᾱ_t) (noise, dashed) against t, one colour per schedule,
    with markers at ``t``. Args: coefficients {label: viz.forward_coefficients(...)}.
    Returns the marker artists [(signal, noise) per label] for ``set_forward_markers``."""
    markers = []
    for i, (label, c) in enumerate(coefficients.items()):
        ax.plot(c["t"], c["sqrt_alpha_bar"], color=color(i), lw=1.5, label=f"√ᾱ_t {label}")
        ax.plot(c["t"], c["sqrt_one_minus_alpha_bar"], color=color(i), lw=1.5, ls="--", label=f"√(1−ᾱ_t) {label}")
        markers.append((ax.plot([], [], "o", color=color(i), ms=6)[0], ax.plot([], [], "s", color=color(i), ms=5)[0]))
    ax.set(xlabel=f"t ({T_NOTE})", ylabel="weight in x_t", ylim=(-0.03, 1.03), title="x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε")
    ax.legend(fontsize=7, loc="center right")
    if t is not None:
        set_forward_markers(markers, coefficients, t)
    return markers


def set_forward_markers(markers: list, coefficients: dict, t: int) -> None:
    """Move the markers of ``plot_forward_coefficients`` to timestep t."""
    for (signal, noise), c in zip(markers, coefficients.values()):
        signal.set_data([t], [c["sqrt_alpha_bar"][t]])
        noise.set_data([t], [c["sqrt_one_minus_alpha_bar"][t]])


def plot_schedules(axes, curves: dict, visited=None) -> None:
    """β_t, ᾱ_t and log SNR(t) on three axes, one colour per schedule; ``visited`` (timesteps a
    sampler visits) are marked on the ᾱ_t curves. Args: curves {label: viz.schedule_curves(...)}."""
    for i, (label, c) in enumerate(curves.items()):
        for ax, key in zip(axes, ("beta", "alpha_bar", "log_snr")):
            ax.plot(c["t"], c[key], color=color(i), lw=1.5, label=label)
        if visited is not None:
            v = _visited_for(visited, label, len(c["t"]))
            axes[1].plot(v, c["alpha_bar"][v], "o", color=color(i), ms=3)
    for ax, name in zip(axes, ("β_t (log scale)", "ᾱ_t", "log SNR(t) = log(ᾱ_t/(1−ᾱ_t))")):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("t (code, 0-based)", fontsize=9)  # short: three share one row (T_NOTE says the rest)
        ax.tick_params(labelsize=8)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)


def _visited_for(visited, label, T) -> np.ndarray:
    """``visited`` is None, one array of timesteps, or {label: array}; keep those in [0, T−1]."""
    v = visited.get(label) if isinstance(visited, dict) else visited
    v = np.asarray([] if v is None else v, dtype=int)
    return v[(v >= 0) & (v < T)]


class BlitRenderer:
    """Fast PNG rendering of a matplotlib Figure whose only changing parts are ``artists``.

    The static parts (axes, labels, curves) are drawn once; ``png()`` restores that background and
    draws just the animated artists (blitting), ~10 ms instead of ~30–90 ms for a full draw.
    Keep the axes limits fixed: they are part of the background.
    """

    def __init__(self, fig: Figure, artists):
        self.fig, self.artists = fig, list(artists)
        for artist in self.artists:
            artist.set_animated(True)
        self.canvas = FigureCanvasAgg(fig)
        self.canvas.draw()
        fig.set_layout_engine("none")  # the layout is fixed from now on
        self.background = self.canvas.copy_from_bbox(fig.bbox)

    def png(self) -> bytes:
        self.canvas.restore_region(self.background)
        for artist in self.artists:
            artist.axes.draw_artist(artist)
        return to_png(np.asarray(self.canvas.buffer_rgba())[..., :3])


# ----------------------------------------------------------------------------- filmstrips (paper / PDF)
PRINT_WIDTH_INCHES = 6.5  # a handout page's text column: filmstrips are at most this wide, printed 1:1
LABEL_PT = 9  # filmstrip labels (≥ 8 pt on paper since the figure prints at its own size)


def _filmstrip_grid(rows, row_labels, col_labels, title, cell_inches, cell_height, **subplot_kw):
    """An empty grid of len(rows) × len(col_labels) axes, titled by column and labelled by row, no
    wider than ``PRINT_WIDTH_INCHES`` (cells shrink to fit). Column labels break before "(" onto a
    second line ("t = 9\n(paper 10)") so that narrow cells' titles do not run into each other.
    Returns (fig, axes (n_rows, n_cols))."""
    n_rows, n_cols = len(rows), len(col_labels)
    fit = min(1.0, (PRINT_WIDTH_INCHES - 0.8) / (cell_inches * n_cols))
    fig = Figure(figsize=(fit * cell_inches * n_cols + 0.8, fit * cell_height * n_rows + 0.9), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False, **subplot_kw))
    for c, label in enumerate(col_labels):
        axes[0, c].set_title(label.replace(" (", "\n("), fontsize=LABEL_PT)
    for r, label in enumerate(row_labels):
        axes[r, 0].set_ylabel(label, fontsize=LABEL_PT)
    if title:
        fig.suptitle(title, fontsize=LABEL_PT + 1)
    return fig, axes


def image_filmstrip(rows, row_labels, col_labels, title=None, cell_inches: float = 1.6) -> Figure:
    """A grid of pictures: rows[r][c] is a uint8 (H, W[, C]) array (e.g. ``png_to_array(image_png(x))``).
    Rows are quantities or schedules, columns usually timesteps. Cells keep the pictures' aspect
    ratio (e.g. 2×4 grids of samples). Returns a matplotlib Figure."""
    height, width = rows[0][0].shape[:2]
    fig, axes = _filmstrip_grid(rows, row_labels, col_labels, title, cell_inches, cell_inches * height / width)
    for r, row in enumerate(rows):
        for c, pixels in enumerate(row):
            axes[r, c].imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255,
                              interpolation="nearest")
            axes[r, c].set(xticks=[], yticks=[])
    return fig


def scatter_filmstrip(rows, row_labels, col_labels, lim: float = 3.5, background=None,
                      title=None, cell_inches: float = 1.8) -> Figure:
    """Like ``image_filmstrip`` for 2-D point clouds in square cells: rows[r][c] is (N, 2);
    ``background`` (M, 2) (e.g. the data) is drawn faintly in every cell. Returns a matplotlib Figure."""
    fig, axes = _filmstrip_grid(rows, row_labels, col_labels, title, cell_inches, cell_inches,
                                sharex=True, sharey=True)
    for r, row in enumerate(rows):
        for c, points in enumerate(row):
            ax = axes[r, c]
            if background is not None:
                ax.scatter(background[:, 0], background[:, 1], s=1, color="0.85")
            ax.scatter(points[:, 0], points[:, 1], s=1.5, color=color(r))
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    return fig


# ----------------------------------------------------------------------------- plotly figures
def image_panels_figure(titles, pngs, height: int = 300) -> go.Figure:
    """One ``go.Image`` per panel, side by side (trace i is panel i); pngs are PNG bytes."""
    fig = make_subplots(1, len(titles), subplot_titles=list(titles))
    for i, png in enumerate(pngs, start=1):
        fig.add_trace(go.Image(source=data_uri(png)), row=1, col=i)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def add_slider_frames(fig: go.Figure, frames, trace_indices, prefix: str = "t = ", active: int = 0) -> go.Figure:
    """Make ``fig`` a self-contained animation: frames is a list of (name, [traces]) or
    (name, [traces], layout), each trace replacing ``fig.data[trace_indices[j]]``. Adds a plotly
    slider (one step per frame) and a play button, which keep working in an exported HTML without a
    kernel. ``fig`` should show frame ``active`` (where the slider starts). Returns ``fig``."""
    animate = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    fig.frames = [go.Frame(name=str(f[0]), data=list(f[1]), traces=list(trace_indices),
                           layout=f[2] if len(f) > 2 else None) for f in frames]
    steps = [dict(method="animate", label=str(f[0]), args=[[str(f[0])], animate]) for f in frames]
    play = dict(label="▶", method="animate",
                args=[None, dict(mode="immediate", frame=dict(duration=300, redraw=True), fromcurrent=True)])
    fig.update_layout(
        sliders=[dict(active=active, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=55), len=0.9, x=0.1)],
        updatemenus=[dict(type="buttons", buttons=[play], x=0.0, y=0, xanchor="left", yanchor="top",
                          pad=dict(t=55, r=10), showactive=False)])
    extra = 110  # room below the x-axis titles for the slider
    fig.update_layout(height=(fig.layout.height or 300) + extra, margin=dict(b=(fig.layout.margin.b or 40) + extra))
    return fig
