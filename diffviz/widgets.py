"""Interactive explorers: thin ipywidgets wiring over ``diffviz.viz`` (numbers) and ``diffviz.plots``.

    control ──observe(names="value")──► update() ──► viz: numpy arrays ──► plots: PNG / traces ──► view

Every helper returns an ``Explorer``, an ``ipywidgets.VBox`` (it never calls ``display()``):
  * its controls are attributes (``.t_slider``, ``.step_slider``, ...): set ``.value`` to move them;
  * ``.current`` holds the arrays on show, so tests can compare them with the compute functions;
  * an exception in a callback is shown in red inside the widget (``.error``, ``.last_error``),
    never raised into the kernel;
  * ``.to_static()`` returns a plotly ``go.Figure`` with frames and its own slider (works in an
    exported HTML, no kernel) and ``.filmstrip()`` a matplotlib Figure for paper; both call the same
    compute functions as the widget.
  * in a kernel started by ``diffviz handout`` (environment variable ``DIFFVIZ_HANDOUT=1``), an
    Explorer shown as a cell's result is its static twins instead of a live widget (see
    ``diffviz.handout.explorer_html``); everywhere else it is the ordinary widget.
Views update in place: ``ipywidgets.Image`` gets new PNG bytes, plotly ``FigureWidget`` traces get new
data. What a slider scrubs is cheap or precomputed (≤ 30 ms per move, see benchmarks/widget_latency.py).
Timesteps are 0-based: code t = k is the paper's t = k + 1. Noise comes from seeded generators.
"""
from __future__ import annotations

import html
import os
import time
from collections import OrderedDict

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure

from . import plots, viz
from .schedules import NoiseSchedule, get_schedule, sampling_timesteps

T_HELP = "t is 0-based: code t = k is the paper's t = k + 1"
HANDOUT_ENV = "DIFFVIZ_HANDOUT"  # set to 1 by `diffviz handout` in the kernels it runs
_WIDE = {"description_width": "initial"}


def _figure_widget(fig: go.Figure) -> go.FigureWidget:
    try:
        return go.FigureWidget(fig)
    except ImportError as err:  # plotly ≥ 6 builds FigureWidget on anywidget
        raise ImportError("plotly's FigureWidget needs anywidget: pip install anywidget") from err


def _panel(title: str, view: W.Widget) -> W.VBox:
    return W.VBox([W.HTML(f"<div style='font-size:12px;max-width:300px'>{title}</div>"), view])


def _t_label(t: int) -> str:
    return "x_0 (data or final sample)" if t < 0 else f"t = {t} (paper {t + 1})"


class Explorer(W.VBox):
    """Base of every helper: a title, controls, views and an error line, plus the update loop."""

    def __init__(self):
        super().__init__()
        self.current: dict = {}
        self.last_error: str | None = None
        self.error = W.HTML()
        self._busy = False

    def _assemble(self, title: str, controls: list, views: list, note: str = T_HELP):
        header = W.HTML(f"<b>{title}</b> <span style='color:#777;font-size:12px'>{note}</span>")
        self.children = [header, W.HBox(controls, layout=W.Layout(flex_flow="row wrap")), *views, self.error]
        for control in controls:  # readouts (Label, HTML) are ValueWidgets too, but only ever shown
            if isinstance(control, W.ValueWidget) and not isinstance(control, (W.Label, W.HTML)):
                control.observe(self._on_change, names="value")
        self.update()

    def _on_change(self, change=None):
        self.update()

    def update(self) -> bool:
        """Redraw from the controls' values. Errors are shown in the widget, never raised."""
        if self._busy:  # a control changed while we adjust another one: the outer call redraws
            return True
        self._busy = True
        try:
            self._render()
        except Exception as err:  # noqa: BLE001 — a callback must never raise into the kernel
            self.last_error = f"{type(err).__name__}: {err}"
            self.error.value = f"<pre style='color:#c00;white-space:pre-wrap'>⚠ {html.escape(self.last_error)}</pre>"
            return False
        finally:
            self._busy = False
        self.last_error, self.error.value = None, ""
        return True

    def _render(self):
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs):
        """The live widget; in a handout kernel (``DIFFVIZ_HANDOUT=1``) its static twins as HTML."""
        if os.environ.get(HANDOUT_ENV, "") not in ("", "0"):
            from .handout import explorer_html

            return {"text/plain": f"<{type(self).__name__}: static handout view>", "text/html": explorer_html(self)}
        return super()._repr_mimebundle_(**kwargs)


def _cache_put(cache: OrderedDict, key, value, max_items: int = 256):
    cache[key] = value
    while len(cache) > max_items:
        cache.popitem(last=False)
    return value


# ============================================================================ forward process
class ForwardExplorer(Explorer):
    """x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε for several schedules with the SAME ε, the pixel histogram
    against N(0, 1), and the two weights against t. See ``forward_explorer``."""

    def __init__(self, image, schedules=("linear", "cosine"), num_timesteps=1000, t=None, seed=0, nrow=None,
                 bins=60):
        super().__init__()
        self.x0 = viz.as_image_batch(image)  # (N, C, H, W)
        self.schedules = viz.named_schedules(schedules, num_timesteps)
        self.T = viz.common_num_timesteps(self.schedules)
        self.noise = torch.randn(self.x0.shape, generator=viz.generator(seed))  # one ε for every schedule
        self.nrow, self.bins = nrow, bins
        self.coefficients = {k: viz.forward_coefficients(s) for k, s in self.schedules.items()}
        t = self.T // 4 if t is None else t
        self.t_slider = W.IntSlider(t, min=0, max=self.T - 1, description="t", style=_WIDE,
                                    layout=W.Layout(width="420px"), tooltip=T_HELP)
        self.readout = W.Label()
        self.images = {k: W.Image(format="png") for k in self.schedules}
        self.captions = {k: W.HTML() for k in self.schedules}
        self.panel = W.Image(format="png")
        self._renderer = self._build_panel()
        row = W.HBox([W.VBox([self.captions[k], self.images[k]]) for k in self.schedules])
        self._assemble("Forward process q(x_t | x_0)", [self.t_slider, self.readout], [row, self.panel])

    def _build_panel(self) -> plots.BlitRenderer:
        fig = Figure(figsize=(9.5, 2.8), dpi=80, layout="constrained")
        ax_hist, ax_coef = fig.subplots(1, 2)
        clean = {k: viz.pixel_histogram(self.x0, self.bins) for k in self.schedules}
        self._steps = plots.plot_pixel_histogram(ax_hist, clean)
        peak = max(float(d.max()) for d, _ in clean.values())
        ax_hist.set_ylim(0, 1.05 * min(max(peak, 0.5), 1.5))  # fixed: it is part of the blitted background
        self._markers = plots.plot_forward_coefficients(ax_coef, self.coefficients, 0)
        return plots.BlitRenderer(fig, [*self._steps.values(), *(m for pair in self._markers for m in pair)])

    def frame(self, t: int) -> dict:
        """Everything shown at t: x_t, histograms and PNGs per schedule (used by widget and twins)."""
        x_t = {k: viz.forward_sample(s, self.x0, t, self.noise) for k, s in self.schedules.items()}
        return {"t": t, "x_t": x_t, "histogram": {k: viz.pixel_histogram(x, self.bins) for k, x in x_t.items()},
                "png": {k: plots.image_png(x, self.nrow) for k, x in x_t.items()}}

    def _render(self):
        t = self.t_slider.value
        self.current = frame = self.frame(t)
        for k, c in self.coefficients.items():
            self.images[k].value = frame["png"][k]
            a, b = c["sqrt_alpha_bar"][t], c["sqrt_one_minus_alpha_bar"][t]
            self.captions[k].value = f"<b>{k}</b>: √ᾱ_t = {a:.3f}, √(1−ᾱ_t) = {b:.3f}, SNR = {a * a / (b * b):.3g}"
            self._steps[k].set_data(values=frame["histogram"][k][0])
        plots.set_forward_markers(self._markers, self.coefficients, t)
        self.panel.value = self._renderer.png()
        self.readout.value = f"{_t_label(t)} of T = {self.T}; x_t shown clipped to [−1, 1]"

    def to_static(self, timesteps=None, max_frames: int = 20) -> go.Figure:
        """Plotly figure with one frame per t (default: ≤ max_frames evenly spaced over [0, T−1])."""
        ts = viz.chosen_or_spaced(range(self.T), timesteps, max_frames)
        frames = [self.frame(t) for t in ts]
        fig = plots.forward_figure(frames[0]["png"], frames[0]["histogram"], self.coefficients, ts[0])
        n = len(self.schedules)
        idx = [*range(2 * n), *range(4 * n + 1, 5 * n + 1)]
        traces = [(t, sum(plots.forward_frame_traces(f["png"], f["histogram"], self.coefficients, t), []))
                  for t, f in zip(ts, frames)]
        return plots.add_slider_frames(fig, traces, idx, prefix="t (code; paper t + 1) = ")

    def filmstrip(self, timesteps=None, num: int = 6) -> Figure:
        """Rows: schedules; columns: x_t at ``timesteps`` (default ``num`` evenly spaced)."""
        ts = viz.chosen_or_spaced(range(self.T), timesteps, num)
        frames = [self.frame(t) for t in ts]
        rows = [[plots.png_to_array(f["png"][k]) for f in frames] for k in self.schedules]
        return plots.image_filmstrip(rows, list(self.schedules), [_t_label(t) for t in ts],
                                     title=f"x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, same ε ({plots.T_NOTE})")


def forward_explorer(image, schedules=("linear", "cosine"), num_timesteps=1000, t=None, seed=0,
                     nrow=None) -> ForwardExplorer:
    """Slider over t: x_t for each schedule side by side (same ε, drawn with ``seed``), the pixel
    histogram against N(0, 1), and √ᾱ_t, √(1−ᾱ_t) with markers at t (Ho et al. 2020, Eq. 4).
    Args: image (C, H, W) or (N, C, H, W) in [-1, 1]; schedules: names / NoiseSchedules / {label: ...}
          sharing one T (names use ``num_timesteps``); t: start value (code t, paper t + 1)."""
    return ForwardExplorer(image, schedules, num_timesteps, t, seed, nrow)


# ============================================================================ schedules
T_CHOICES = (10, 20, 50, 100, 200, 500, 1000, 2000, 4000)


class ScheduleExplorer(Explorer):
    """β_t, ᾱ_t and log SNR(t) of several schedules, terminal SNR, and the timesteps a sampler visits."""

    def __init__(self, schedules=("linear", "cosine"), num_timesteps=1000, num_steps=10, spacing="trailing",
                 warn_alpha_bar=1e-3):
        super().__init__()
        self.specs = list(schedules.items()) if isinstance(schedules, dict) else \
            [(None, s) for s in ([schedules] if isinstance(schedules, (str, NoiseSchedule)) else schedules)]
        self.warn_alpha_bar = warn_alpha_bar
        by_name = any(isinstance(s, str) for _, s in self.specs)
        self.T_slider = W.SelectionSlider(options=sorted({*T_CHOICES, num_timesteps}), value=num_timesteps,
                                          description="T (names)", disabled=not by_name, style=_WIDE)
        self.steps_slider = W.IntSlider(num_steps, min=1, max=num_timesteps, description="sampling steps", style=_WIDE)
        self.spacing = W.Dropdown(options=["trailing", "leading", "linspace"], value=spacing,
                                  description="spacing", layout=W.Layout(width="200px"))
        self.summary = W.HTML()
        schedules_now = self.schedules(num_timesteps)
        curves = {k: viz.schedule_curves(s) for k, s in schedules_now.items()}
        self.figure = _figure_widget(plots.schedule_figure(curves))
        self._assemble("Noise schedules", [self.T_slider, self.steps_slider, self.spacing],
                       [self.figure, self.summary])

    def schedules(self, T: int) -> dict:
        """{label: NoiseSchedule}: names built with T steps, NoiseSchedule objects as given."""
        out = {}
        for label, s in self.specs:
            s = get_schedule(s, T)
            label = label or s.name
            out[label if label not in out else f"{label} ({len(out) + 1})"] = s
        return out

    def state(self, T: int, num_steps: int, spacing: str) -> dict:
        """Curves, terminal SNRs, visited timesteps and warnings for these control values."""
        scheds = self.schedules(T)
        terminal = {k: viz.terminal_snr(s) for k, s in scheds.items()}
        return {"num_timesteps": T, "num_steps": num_steps, "spacing": spacing,
                "curves": {k: viz.schedule_curves(s) for k, s in scheds.items()}, "terminal": terminal,
                "visited": {k: sampling_timesteps(s.num_timesteps, min(num_steps, s.num_timesteps), spacing).numpy()
                            for k, s in scheds.items()},
                "warnings": [k for k, v in terminal.items() if v["alpha_bar_T"] > self.warn_alpha_bar]}

    def _render(self):
        T = self.T_slider.value
        self.steps_slider.max = min(s.num_timesteps for s in self.schedules(T).values())
        self.current = st = self.state(T, self.steps_slider.value, self.spacing.value)
        n = len(st["curves"])
        with self.figure.batch_update():
            for i, (k, c) in enumerate(st["curves"].items()):
                for j, key in enumerate(("beta", "alpha_bar", "log_snr")):
                    self.figure.data[3 * i + j].x, self.figure.data[3 * i + j].y = c["t"], c[key]
                v = st["visited"][k]
                self.figure.data[3 * n + i].x, self.figure.data[3 * n + i].y = v, c["alpha_bar"][v]
        self.summary.value = self._summary_html(st)

    def _summary_html(self, st) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{len(st['curves'][k]['t'])}</td><td>{v['alpha_bar_T']:.3g}</td>"
            f"<td>{v['sqrt_alpha_bar_T']:.3g}</td><td>{v['snr_T']:.3g}</td></tr>" for k, v in st["terminal"].items())
        text = (f"<table style='font-size:12px'><tr><th>schedule</th><th>T</th><th>ᾱ_T</th><th>√ᾱ_T</th>"
                f"<th>SNR(T)</th></tr>{rows}</table>")
        for k in st["warnings"]:
            v = st["terminal"][k]
            text += (f"<div style='color:#b45309'>⚠ <b>{html.escape(k)}</b>: ᾱ_T = {v['alpha_bar_T']:.3g} is far "
                     f"from 0 — x_T still holds √ᾱ_T = {100 * v['sqrt_alpha_bar_T']:.1f}% of the image, but "
                     f"sampling starts from pure N(0, I). Use more steps T, a cosine schedule, or zero terminal "
                     f"SNR (Lin et al. 2023).</div>")
        for k, v in st["visited"].items():
            shown = ", ".join(map(str, v[:12])) + (", …" if len(v) > 12 else "")
            text += (f"<div style='font-size:12px'>{html.escape(k)}: {len(v)} steps visit t = {shown} "
                     f"({plots.T_NOTE})</div>")
        return text

    def to_static(self, T_values=None) -> go.Figure:
        """Plotly figure with one frame per T (names only), visited markers for the current steps."""
        Ts = list(T_values or (self.T_slider.options if not self.T_slider.disabled else [self.T_slider.value]))
        states = [self.state(T, self.steps_slider.value, self.spacing.value) for T in Ts]
        active = Ts.index(self.T_slider.value) if self.T_slider.value in Ts else 0
        n = len(states[0]["curves"])
        frames = []
        for T, st in zip(Ts, states):
            traces = [go.Scatter(x=c["t"], y=c[key])
                      for c in st["curves"].values() for key in ("beta", "alpha_bar", "log_snr")]
            traces += [go.Scatter(x=v, y=st["curves"][k]["alpha_bar"][v]) for k, v in st["visited"].items()]
            terminal = ", ".join(f"{k}: ᾱ_T = {v['alpha_bar_T']:.2g}{' ⚠' if k in st['warnings'] else ''}"
                                 for k, v in st["terminal"].items())
            frames.append((T, traces, go.Layout(title=dict(text=f"T = {T} · {terminal}", font=dict(size=13)))))
        fig = plots.schedule_figure(states[active]["curves"], states[active]["visited"])
        fig.update_layout(frames[active][2], margin=dict(t=80))
        return plots.add_slider_frames(fig, frames, range(4 * n), prefix="T = ", active=active)

    def filmstrip(self) -> Figure:
        """The three curves at the current controls, for paper."""
        st = self.current or self.state(self.T_slider.value, self.steps_slider.value, self.spacing.value)
        fig = Figure(figsize=(11, 3), layout="constrained")
        plots.plot_schedules(fig.subplots(1, 3), st["curves"], st["visited"])
        return fig


def schedule_explorer(schedules=("linear", "cosine", "quadratic", "sigmoid"), num_timesteps=1000, num_steps=10,
                      spacing="trailing", warn_alpha_bar=1e-3) -> ScheduleExplorer:
    """β_t, ᾱ_t and log SNR(t) for several schedules (plotly); ᾱ_T printed per schedule with a
    warning when ᾱ_T > ``warn_alpha_bar``; markers at the timesteps ``num_steps`` sampling steps
    visit. Names are rebuilt when the T slider moves; NoiseSchedule objects stay as given."""
    return ScheduleExplorer(schedules, num_timesteps, num_steps, spacing, warn_alpha_bar)


# ============================================================================ one sampling run
TRAJECTORY_PANELS = {"x_t": "x_t (input of this step)",
                     "eps": f"predicted noise ε̂ (shown ÷{viz.EPS_DISPLAY_RANGE:g})",
                     "x0_hat": "x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t: full noise removal"}


class TrajectoryExplorer(Explorer):
    """Scrub the steps of ONE cached ``Trajectory``: x_t | ε̂ | x̂_0. Nothing is re-sampled."""

    def __init__(self, trajectory, max_images: int = 16, nrow=None):
        super().__init__()
        if trajectory.x_t is None or trajectory.x_t.ndim != 5:
            got = None if trajectory.x_t is None else tuple(trajectory.x_t.shape)
            raise ValueError(f"trajectory must be recorded (record=True) images of shape (S, N, C, H, W), "
                             f"got x_t {got}")
        self.trajectory, self.max_images, self.nrow = trajectory, max_images, nrow
        S = len(trajectory)
        self.step_slider = W.IntSlider(0, min=0, max=S - 1, description="sampling step", style=_WIDE,
                                       layout=W.Layout(width="420px"))
        self.readout = W.Label()
        self.images = {k: W.Image(format="png") for k in TRAJECTORY_PANELS}
        final = W.Image(value=plots.image_png(trajectory.sample[:max_images], nrow), format="png")
        row = W.HBox([*(_panel(title, self.images[k]) for k, title in TRAJECTORY_PANELS.items()),
                      _panel("final sample x_0 (after the last step)", final)])
        self._pngs = OrderedDict()
        self._assemble(f"Sampling trajectory ({trajectory.sampler.upper()}, {S} steps)",
                       [self.step_slider, self.readout], [row])

    def frame(self, step: int) -> dict:
        """Arrays and PNGs of ``step`` (cached PNGs: scrubbing back is free)."""
        arrays = viz.trajectory_step(self.trajectory, step)
        arrays = {k: (v[: self.max_images] if k != "t" else v) for k, v in arrays.items()}
        if step not in self._pngs:
            shown = {"x_t": arrays["x_t"], "eps": viz.noise_for_display(arrays["eps"]), "x0_hat": arrays["x0_hat"]}
            _cache_put(self._pngs, step, {k: plots.image_png(v, self.nrow) for k, v in shown.items()})
        return {"step": step, **arrays, "png": self._pngs[step]}

    def _render(self):
        step = self.step_slider.value
        self.current = f = self.frame(step)
        for k, view in self.images.items():
            view.value = f["png"][k]
        self.readout.value = f"step {step + 1} of {len(self.trajectory)} · {_t_label(f['t'])}"

    def _steps(self, steps, count):
        return viz.chosen_or_spaced(range(len(self.trajectory)), steps, count)

    def to_static(self, steps=None, max_frames: int = 20) -> go.Figure:
        steps = self._steps(steps, max_frames)
        frames = [self.frame(s) for s in steps]
        fig = plots.image_panels_figure(list(TRAJECTORY_PANELS.values()), list(frames[0]["png"].values()))
        traces = [(f"{s + 1}: t={f['t']}", [go.Image(source=plots.data_uri(p)) for p in f["png"].values()])
                  for s, f in zip(steps, frames)]
        return plots.add_slider_frames(fig, traces, range(3), prefix="step: ")

    def filmstrip(self, steps=None, num: int = 6) -> Figure:
        steps = self._steps(steps, num)
        frames = [self.frame(s) for s in steps]
        rows = [[plots.png_to_array(f["png"][k]) for f in frames] for k in TRAJECTORY_PANELS]
        return plots.image_filmstrip(rows, ["x_t", "ε̂ (÷3)", "x̂_0"], [_t_label(f["t"]) for f in frames])


def trajectory_explorer(trajectory, max_images: int = 16, nrow=None) -> TrajectoryExplorer:
    """Slider over the sampling steps of a recorded ``Trajectory`` (``sample(..., record=True)``):
    x_t | predicted noise ε̂ | x̂_0 ("full noise removal") for the first ``max_images`` samples."""
    return TrajectoryExplorer(trajectory, max_images, nrow)


# ============================================================================ what the network predicts
NOISE_PANELS = {"x_t": "x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε", "noise": "true noise ε (÷3)",
                "eps_pred": "predicted noise ε̂ = ε_θ(x_t, t) (÷3)", "eps_error": "error ε̂ − ε (same scale)",
                "x0_pred": "one-shot x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t"}


class NoisePredictionExplorer(Explorer):
    """A real image noised to t with a known ε: the model's ε̂, the error, and x̂_0 in one jump."""

    def __init__(self, model, image, schedule, timesteps=None, num_frames=50, seed=0, y=None, nrow=None,
                 precompute=True):
        super().__init__()
        self.model, self.schedule, self.y, self.nrow = model, schedule, y, nrow
        self.x0 = viz.as_image_batch(image)
        self.noise = torch.randn(self.x0.shape, generator=viz.generator(seed))
        T = schedule.num_timesteps
        ts = sorted({int(t) for t in (viz.evenly_spaced(range(T), num_frames) if timesteps is None else timesteps)})
        if not ts or ts[0] < 0 or ts[-1] >= T:
            raise ValueError(f"timesteps must lie in [0, {T - 1}], got {timesteps!r}")
        self.timesteps, self.precompute = ts, precompute
        self.t_slider = W.SelectionSlider(options=[(str(t), t) for t in ts], value=ts[len(ts) // 2],
                                          description="t", style=_WIDE, layout=W.Layout(width="420px"))
        self.readout = W.HTML()
        self.images = {k: W.Image(format="png") for k in NOISE_PANELS}
        clean = _panel("x_0 (clean image)", W.Image(value=plots.image_png(self.x0, nrow), format="png"))
        row = W.HBox([clean, *(_panel(title, self.images[k]) for k, title in NOISE_PANELS.items())],
                     layout=W.Layout(flex_flow="row wrap"))
        self._frames = {}
        self._assemble("What the network predicts: the WHOLE noise ε, not the next step",
                       [self.t_slider], [self.readout, row])

    def frame(self, t: int) -> dict:
        """``viz.noise_prediction`` at t plus PNGs (computed once per t, then cached)."""
        if t not in self._frames:
            f = viz.noise_prediction(self.model, self.schedule, self.x0, self.noise, t, self.y)
            shown = {k: (viz.noise_for_display(f[k]) if k in ("noise", "eps_pred", "eps_error") else f[k])
                     for k in NOISE_PANELS}
            self._frames[t] = {"t": t, **f, "png": {k: plots.image_png(v, self.nrow) for k, v in shown.items()}}
        return self._frames[t]

    def _render(self):
        if self.precompute:  # every slider position at once, so that moving the slider is cheap
            for t in self.timesteps:
                self.frame(t)
        t = self.t_slider.value
        self.current = f = self.frame(t)
        for k, view in self.images.items():
            view.value = f["png"][k]
        self.readout.value = (
            f"{_t_label(t)} · MSE(ε̂, ε) = {f['mse']:.4f} · the target ε has std {float(self.noise.std()):.2f}; "
            f"one forward step only adds noise of std √β_t = {f['step_noise_std']:.3f}")

    def to_static(self, timesteps=None, max_frames: int = 20) -> go.Figure:
        ts = viz.chosen_or_spaced(self.timesteps, timesteps, max_frames)
        frames = [self.frame(t) for t in ts]
        fig = plots.image_panels_figure(list(NOISE_PANELS.values()), list(frames[0]["png"].values()), height=260)
        traces = [(t, [go.Image(source=plots.data_uri(p)) for p in f["png"].values()]) for t, f in zip(ts, frames)]
        return plots.add_slider_frames(fig, traces, range(len(NOISE_PANELS)), prefix="t (code; paper t + 1) = ")

    def filmstrip(self, timesteps=None, num: int = 5) -> Figure:
        ts = viz.chosen_or_spaced(self.timesteps, timesteps, num)
        frames = [self.frame(t) for t in ts]
        rows = [[plots.png_to_array(f["png"][k]) for f in frames] for k in NOISE_PANELS]
        return plots.image_filmstrip(rows, ["x_t", "ε", "ε̂", "ε̂ − ε", "x̂_0"], [_t_label(t) for t in ts])


def noise_prediction_explorer(model, image, schedule, timesteps=None, num_frames=50, seed=0, y=None, nrow=None,
                              precompute=True) -> NoisePredictionExplorer:
    """A real image noised to t (slider over ``timesteps``, default ``num_frames`` evenly spaced):
    true ε, predicted ε̂ = model(x_t, t[, y]), ε̂ − ε, and the one-shot x̂_0. ``precompute`` runs the
    model for every t when the widget is built so the slider only swaps cached pictures."""
    return NoisePredictionExplorer(model, image, schedule, timesteps, num_frames, seed, y, nrow, precompute)


# ============================================================================ training
class TrainingMonitor(Explorer):
    """A live loss curve (log scale) and sample grid, fed by ``Trainer.fit(callback=monitor)``.

    Call it (or ``.callback``) with each ``TrainEvent`` (step, loss, images_seen, elapsed, and
    sometimes samples (B, C, H, W), or (B, 2) points for toy data). The readout always updates;
    the loss curve is redrawn at most every ``min_interval`` seconds (``flush()`` draws the rest),
    sample grids whenever they arrive.
    """

    def __init__(self, min_interval: float = 0.2, max_points: int = 2000, nrow=None):
        super().__init__()
        self.min_interval, self.max_points, self.nrow = min_interval, max_points, nrow
        self.steps, self.losses, self.samples = [], [], None
        self._last_draw, self._dirty, self._event = -float("inf"), False, None
        self.figure = _figure_widget(plots.loss_figure())
        self.readout = W.Label("waiting for the first training event…")
        self.image = W.Image(format="png")
        self._assemble("Training monitor", [self.readout], [W.HBox([self.figure, _panel("EMA samples", self.image)])],
                       note="loss = L_simple, the mean squared error of ε̂")

    def callback(self, event):
        """Record one event and redraw what is due; never raises (errors show in the widget)."""
        self._event = event
        self.update()

    __call__ = callback

    def flush(self):
        """Draw the loss curve now, whatever the throttle says (call after ``fit`` returns)."""
        self._last_draw = -float("inf")
        self.update()

    def _render(self):
        e, self._event = self._event, None
        if e is not None:
            self.steps.append(int(e.step))
            self.losses.append(float(e.loss))
            rate = e.step / e.elapsed if e.elapsed > 0 else float("nan")
            self.readout.value = (f"step {e.step} · loss {e.loss:.4f} · {e.images_seen:,} images · "
                                  f"{e.elapsed:.1f} s ({rate:.1f} steps/s)")
            if getattr(e, "samples", None) is not None:
                self.samples = np.asarray(e.samples)
                is_points = self.samples.ndim == 2 and self.samples.shape[1] == 2  # 2-D toy data
                self.image.value = (plots.scatter_png(self.samples) if is_points
                                    else plots.image_png(self.samples, self.nrow))
            self._dirty = True
        if self._dirty and time.perf_counter() - self._last_draw >= self.min_interval:
            stride = max(1, -(-len(self.steps) // self.max_points))  # show at most max_points points
            with self.figure.batch_update():
                self.figure.data[0].x, self.figure.data[0].y = self.steps[::stride], self.losses[::stride]
            self._last_draw, self._dirty = time.perf_counter(), False
        self.current = {"steps": self.steps, "losses": self.losses, "samples": self.samples}

    def to_static(self) -> go.Figure:
        """The loss curve so far as a plain plotly Figure."""
        fig = plots.loss_figure()
        fig.data[0].x, fig.data[0].y = self.steps, self.losses
        return fig


def training_monitor(min_interval: float = 0.2, max_points: int = 2000, nrow=None) -> TrainingMonitor:
    """A live loss curve (log scale) and EMA-sample grid. Use: ``mon = training_monitor(); mon``
    in one cell, then ``trainer.fit(callback=mon)`` (the monitor is callable) and ``mon.flush()``."""
    return TrainingMonitor(min_interval, max_points, nrow)


# ============================================================================ 2-D toy data
class Toy2DExplorer(Explorer):
    """A 2-D point cloud through the forward process, and the reverse process run by the exact
    denoiser ε* and a learned one from the SAME x_T, side by side at the same t."""

    def __init__(self, data, schedule, oracle=None, model=None, n=1000, sampler="ddpm", num_steps=100, eta=0.0,
                 seed=0):
        super().__init__()
        x0 = torch.as_tensor(getattr(data, "x", data)).float()
        if x0.ndim != 2 or x0.shape[1] != 2:
            raise ValueError(f"data must be 2-D points (N, 2) (or a Dataset of them), got {tuple(x0.shape)}")
        self.x0, self.schedule = x0[:n], schedule
        self.noise = torch.randn(self.x0.shape, generator=viz.generator(seed))
        self.x_T = torch.randn(self.x0.shape, generator=viz.generator(seed + 1))
        self.denoisers = {k: m for k, m in (("exact ε* (oracle)", oracle), ("learned ε_θ", model)) if m is not None}
        self.run_args = dict(sampler=sampler, num_steps=min(num_steps, schedule.num_timesteps), eta=eta, seed=seed)
        ts = sampling_timesteps(schedule.num_timesteps, self.run_args["num_steps"]).tolist()[::-1]  # ascending
        self.t_slider = W.SelectionSlider(options=[("x_0", -1)] + [(str(t), t) for t in ts], value=ts[len(ts) // 2],
                                          description="t (← reverse · forward →)", style=_WIDE,
                                          layout=W.Layout(width="520px"))
        self.readout = W.Label()
        self.titles = ["forward q(x_t | x_0)", *(f"reverse, {k}" for k in self.denoisers)]
        self.lim = float(min(6.0, max(3.0, 1.05 * float(torch.cat([self.x0, self.x_T]).abs().max()))))
        empty = [np.zeros((0, 2))] * len(self.titles)
        self.figure = _figure_widget(plots.scatter_panels_figure(self.titles, empty, self.x0.numpy(), self.lim))
        self.trajectories = {}
        self._assemble(f"2-D toy data: forward and reverse ({sampler.upper()}, {self.run_args['num_steps']} steps)",
                       [self.t_slider, self.readout], [self.figure])

    def _trajectories(self) -> dict:
        """Run every denoiser once (cached) from the same x_T with the same seeded generator."""
        for k, m in self.denoisers.items():
            if k not in self.trajectories:
                self.trajectories[k] = viz.run_sampler(m, self.schedule, self.x_T, record=True, **self.run_args)
        return self.trajectories

    def frame(self, t: int) -> dict:
        """{"t", "forward": x_t = q_sample(x_0, t, ε) (x_0 at t = −1), label: reverse x_t per denoiser}."""
        forward = self.x0.numpy() if t < 0 else viz.forward_sample(self.schedule, self.x0, t, self.noise)
        return {"t": t, "forward": forward, **{k: viz.points_at(tr, t) for k, tr in self._trajectories().items()}}

    def _render(self):
        t = self.t_slider.value
        self.current = f = self.frame(t)
        with self.figure.batch_update():
            for i, points in enumerate(list(f.values())[1:]):
                self.figure.data[i].x, self.figure.data[i].y = points[:, 0], points[:, 1]
        extra = "" if t < 0 else f" · ᾱ_t = {float(self.schedule.alphas_cumprod[t]):.3g}"
        self.readout.value = _t_label(t) + extra

    def _timesteps(self, timesteps, count):
        return viz.chosen_or_spaced([v for _, v in self.t_slider.options], timesteps, count)

    def to_static(self, timesteps=None, max_frames: int = 25) -> go.Figure:
        ts = self._timesteps(timesteps, max_frames)
        frames = [self.frame(t) for t in ts]
        fig = plots.scatter_panels_figure(self.titles, list(frames[0].values())[1:], self.x0.numpy(), self.lim)
        traces = [("x_0" if t < 0 else t, [go.Scatter(x=p[:, 0], y=p[:, 1]) for p in list(f.values())[1:]])
                  for t, f in zip(ts, frames)]
        return plots.add_slider_frames(fig, traces, range(len(self.titles)), prefix="t (code; paper t + 1) = ")

    def filmstrip(self, timesteps=None, num: int = 6) -> Figure:
        ts = self._timesteps(timesteps, num)
        frames = [self.frame(t) for t in ts]
        rows = [[list(f.values())[1 + r] for f in frames] for r in range(len(self.titles))]
        return plots.scatter_filmstrip(rows, self.titles, [_t_label(t) for t in ts], self.lim, self.x0.numpy())


def toy2d_explorer(data, schedule, oracle=None, model=None, n=1000, sampler="ddpm", num_steps=100, eta=0.0,
                   seed=0) -> Toy2DExplorer:
    """2-D point clouds (plotly), one t slider: the forward process on ``data`` (N, 2) and the reverse
    process run by ``oracle`` (e.g. a GaussianMixtureDenoiser) and ``model`` (a learned ε-model) from
    the same x_T. Both reverse runs are computed once, when the widget is built."""
    return Toy2DExplorer(data, schedule, oracle, model, n, sampler, num_steps, eta, seed)


# ============================================================================ samplers
STEP_CHOICES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class SamplerExplorer(Explorer):
    """Sampler, steps, η, class and guidance, with x_T and the seed fixed: only the knob changes."""

    def __init__(self, model, schedule, shape=None, num_classes=None, seed=0, sampler="ddim", num_steps=20,
                 eta=0.0, guidance_scale=1.0, nrow=None):
        super().__init__()
        config = getattr(model, "config", None)
        if shape is None and hasattr(config, "image_size"):
            shape = (16, config.in_channels, config.image_size, config.image_size)
        if shape is None or len(shape) != 4:
            raise ValueError(f"shape must be (N, C, H, W) (or a model with a UNetConfig), got {shape!r}")
        num_classes = num_classes if num_classes is not None else getattr(config, "num_classes", None)
        self.model, self.schedule, self.seed, self.nrow = model, schedule, seed, nrow
        self.num_classes = num_classes
        self.x_T = torch.randn(tuple(shape), generator=viz.generator(seed))
        T = schedule.num_timesteps
        steps = sorted({s for s in STEP_CHOICES if s <= T} | {min(num_steps, T), T})
        self.sampler = W.ToggleButtons(options=[("DDPM", "ddpm"), ("DDIM", "ddim")], value=sampler,
                                       style={"button_width": "60px"})
        self.steps_slider = W.SelectionSlider(options=steps, value=min(num_steps, T), description="steps",
                                              continuous_update=False)
        self.eta_slider = W.FloatSlider(eta, min=0, max=1, step=0.1, description="η (DDIM)", continuous_update=False)
        labels = [("mixed (0, 1, 2, …)", "mixed"), ("unconditional ∅", "none")] + \
            [(str(k), k) for k in range(num_classes or 0)]
        self.class_dropdown = W.Dropdown(options=labels, value="mixed" if num_classes else "none", description="class",
                                         disabled=not num_classes, layout=W.Layout(width="220px"))
        self.guidance_slider = W.FloatSlider(guidance_scale, min=0, max=8, step=0.5, description="guidance w",
                                             continuous_update=False, disabled=not num_classes)
        self.image, self.readout = W.Image(format="png"), W.HTML()
        self._results = OrderedDict()
        self._assemble("Samplers (fixed x_T and seed: only the knob changes)",
                       [self.sampler, self.steps_slider, self.eta_slider, self.class_dropdown, self.guidance_slider],
                       [self.readout, self.image], note="guidance: w = 0 unconditional, 1 conditional, > 1 stronger")

    def knobs(self) -> dict:
        """The sample() arguments the controls select."""
        cls, ddim = self.class_dropdown.value, self.sampler.value == "ddim"
        y = None if cls == "none" else (torch.arange(self.x_T.shape[0]) % self.num_classes
                                        if cls == "mixed" else int(cls))
        return {"sampler": self.sampler.value, "num_steps": self.steps_slider.value,
                "eta": self.eta_slider.value if ddim else 0.0, "y": y,
                "guidance_scale": None if y is None else self.guidance_slider.value}

    def result(self, **knobs) -> dict:
        """Sample for these knobs (cached): {"sample" (N, C, H, W), "timesteps", "seconds", "png"}."""
        key = repr(sorted((k, v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in knobs.items()))
        if key not in self._results:
            start = time.perf_counter()
            traj = viz.run_sampler(self.model, self.schedule, self.x_T, seed=self.seed, **knobs)
            sample = traj.sample.numpy()
            _cache_put(self._results, key, {"sample": sample, "timesteps": traj.timesteps.numpy(),
                                            "seconds": time.perf_counter() - start,
                                            "png": plots.image_png(sample, self.nrow)}, max_items=64)
        return self._results[key]

    def _render(self):
        self.eta_slider.disabled = self.sampler.value != "ddim"
        self.guidance_slider.disabled = self.class_dropdown.value == "none"
        knobs = self.knobs()
        r = self.result(**knobs)
        self.current = {**knobs, **r}
        self.image.value = r["png"]
        visits = ", ".join(map(str, r["timesteps"][:10])) + (", …" if len(r["timesteps"]) > 10 else "")
        self.readout.value = (f"{knobs['sampler'].upper()} · {knobs['num_steps']} steps visiting t = {visits} "
                              f"({plots.T_NOTE}) · sampled in {r['seconds']:.2f} s")

    def to_static(self, num_steps_values=None) -> go.Figure:
        """Frames over the number of steps, the other knobs as set now."""
        values = [s for s in (num_steps_values or (1, 2, 5, 10, 20, 50)) if s <= self.schedule.num_timesteps]
        knobs = self.knobs()
        pngs = [self.result(**{**knobs, "num_steps": s})["png"] for s in values]
        fig = plots.image_panels_figure([f"{knobs['sampler'].upper()} samples"], pngs[:1], height=360)
        traces = [(s, [go.Image(source=plots.data_uri(p))]) for s, p in zip(values, pngs)]
        return plots.add_slider_frames(fig, traces, [0], prefix="steps = ")

    def filmstrip(self, num_steps_values=(1, 5, 10, 50)) -> Figure:
        """Rows DDPM and DDIM, columns numbers of steps (other knobs as set now)."""
        values = [s for s in num_steps_values if s <= self.schedule.num_timesteps]
        knobs = self.knobs()
        rows = [[plots.png_to_array(self.result(**{**knobs, "sampler": name, "num_steps": s})["png"]) for s in values]
                for name in ("ddpm", "ddim")]
        return plots.image_filmstrip(rows, ["DDPM", f"DDIM η={knobs['eta']:g}"], [f"{s} steps" for s in values])


def sampler_explorer(model, schedule, shape=None, num_classes=None, seed=0, sampler="ddim", num_steps=20, eta=0.0,
                     guidance_scale=1.0, nrow=None) -> SamplerExplorer:
    """Sample with the chosen sampler (DDPM / DDIM), number of steps, η and, for a class-conditional
    model (``num_classes`` or ``model.config.num_classes``), class and guidance scale. x_T and the
    sampler's generator are fixed by ``seed``; results are cached per setting. Sliders act on release."""
    return SamplerExplorer(model, schedule, shape, num_classes, seed, sampler, num_steps, eta, guidance_scale, nrow)
