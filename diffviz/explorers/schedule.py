"""Schedule explorer: β_t, ᾱ_t and log SNR(t) of several schedules, their terminal SNR, and the
timesteps a sampler with ``num_steps`` steps visits.

    state(schedules, T, num_steps, spacing): arrays ──► figure / summary_html ──► to_static / filmstrip / widget

Timesteps are 0-based: code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

import html

import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from .. import plots, viz
from ..schedules import NoiseSchedule, sampling_timesteps
from ..validate import check_num_steps, finite_number, one_of, positive_int
from .common import SPACINGS

T_CHOICES = (10, 20, 50, 100, 200, 500, 1000, 2000, 4000)  # the T slider's stops (names are rebuilt)
CURVES = ("beta", "alpha_bar", "log_snr")  # the three panels, left to right


def state(schedules, T: int, num_steps: int, spacing: str = "trailing", warn_alpha_bar: float = 1e-3) -> dict:
    """Curves, terminal SNRs, visited timesteps and warnings. ``schedules``: names (built with T steps),
    NoiseSchedules (kept as given) or {label: either}; ``num_steps`` ≤ every schedule's T."""
    named = viz.named_schedules(schedules, T)
    terminal = {k: viz.terminal_snr(s) for k, s in named.items()}
    return {"num_timesteps": T, "num_steps": num_steps, "spacing": spacing,
            "curves": {k: viz.schedule_curves(s) for k, s in named.items()}, "terminal": terminal,
            "visited": {k: sampling_timesteps(s.num_timesteps, check_num_steps(num_steps, s.num_timesteps),
                                              spacing).numpy() for k, s in named.items()},
            "warnings": [k for k, v in terminal.items() if v["alpha_bar_T"] > warn_alpha_bar]}


def summary_html(st: dict) -> str:
    """The table of ᾱ_T, √ᾱ_T, SNR(T), a warning per schedule whose ᾱ_T is far from 0, and the visited t."""
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


def trace_data(st: dict) -> list:
    """(x, y) of every trace in ``figure``'s handle order: each label's three curves, then each label's markers."""
    out = [(c["t"], c[key]) for c in st["curves"].values() for key in CURVES]
    return out + [(v, st["curves"][k]["alpha_bar"][v]) for k, v in st["visited"].items()]


def figure(st: dict, height: int = 340):
    """β_t (log axis), ᾱ_t and log SNR(t) side by side, with markers on ᾱ_t at the visited t.
    Returns (fig, handles): handles["curves"][label][key] and handles["visited"][label] are trace
    indices; ``handles["order"]`` lists all of them in the order of ``trace_data(st)``."""
    fig = make_subplots(1, 3, horizontal_spacing=0.09,
                        subplot_titles=("β_t (log scale)", "ᾱ_t · dots: t the sampler visits", "log SNR(t)"))
    handles = {"curves": {}, "visited": {}}
    for i, (label, c) in enumerate(st["curves"].items()):
        handles["curves"][label] = {}
        for col, key in enumerate(CURVES, start=1):
            handles["curves"][label][key] = len(fig.data)
            fig.add_trace(go.Scatter(x=c["t"], y=c[key], mode="lines", name=label, legendgroup=label,
                                     showlegend=col == 1, line=dict(color=plots.color(i))), row=1, col=col)
    for i, (label, c) in enumerate(st["curves"].items()):
        v = st["visited"][label]
        handles["visited"][label] = len(fig.data)
        fig.add_trace(go.Scatter(x=v, y=c["alpha_bar"][v], mode="markers", name=f"visited ({label})",
                                 legendgroup=label, showlegend=False, marker=dict(color=plots.color(i), size=6)),
                      row=1, col=2)
    curve_indices = [h[key] for h in handles["curves"].values() for key in CURVES]
    handles["order"] = curve_indices + list(handles["visited"].values())
    fig.update_yaxes(type="log", dtick=1, row=1, col=1)  # labels at powers of 10 only
    fig.update_xaxes(title_text="t (code, 0-based)", title_font_size=12)  # short: three share one row
    fig.update_annotations(font_size=13)  # the subplot titles
    fig.update_layout(height=height, margin=dict(l=40, r=20, t=40, b=50))
    return fig, handles


def to_static(schedules, T_values, num_steps: int, spacing: str = "trailing", active_T=None,
              warn_alpha_bar: float = 1e-3) -> go.Figure:
    """Plotly figure with one frame per T in ``T_values`` (each ≥ num_steps), titled with ᾱ_T per schedule;
    the slider starts at ``active_T`` (default the first)."""
    Ts = list(T_values)
    states = [state(schedules, T, num_steps, spacing, warn_alpha_bar) for T in Ts]
    active = Ts.index(active_T) if active_T in Ts else 0
    frames = []
    for T, st in zip(Ts, states):
        terminal = ", ".join(f"{k}: ᾱ_T = {v['alpha_bar_T']:.2g}{' ⚠' if k in st['warnings'] else ''}"
                             for k, v in st["terminal"].items())
        traces = [go.Scatter(x=x, y=y) for x, y in trace_data(st)]
        frames.append((T, traces, go.Layout(title=dict(text=f"T = {T} · {terminal}", font=dict(size=13)))))
    fig, handles = figure(states[active])
    fig.update_layout(frames[active][2], margin=dict(t=80))
    return plots.add_slider_frames(fig, frames, handles["order"], prefix="T = ", active=active)


def filmstrip(st: dict) -> Figure:
    """The three curves of one ``state``, for paper (as wide as a handout's text column)."""
    fig = Figure(figsize=(plots.PRINT_WIDTH_INCHES, 2.6), layout="constrained")
    plots.plot_schedules(fig.subplots(1, 3), st["curves"], st["visited"])
    fig.suptitle(f"{plots.T_NOTE}; dots: the t that {st['num_steps']} {st['spacing']} sampling steps visit",
                 fontsize=plots.LABEL_PT)
    return fig


def schedule_explorer(schedules=("linear", "cosine", "quadratic", "sigmoid"), num_timesteps=1000, num_steps=10,
                      spacing="trailing", warn_alpha_bar=1e-3):
    """β_t, ᾱ_t and log SNR(t) for several schedules (plotly); ᾱ_T printed per schedule with a
    warning when ᾱ_T > ``warn_alpha_bar``; markers at the timesteps ``num_steps`` sampling steps
    visit with ``spacing`` ("trailing", "leading", "linspace"). Names are rebuilt when the T slider
    moves; NoiseSchedule objects stay as given. Returns an ``Explorer`` (T_slider, steps_slider,
    spacing, figure, summary, handles); ``.to_static(T_values=None)`` has one frame per T."""
    import ipywidgets as W

    from .base import WIDE, Explorer, figure_widget

    num_timesteps = positive_int("num_timesteps", num_timesteps)
    one_of("spacing", spacing, SPACINGS)
    warn_alpha_bar = finite_number("warn_alpha_bar", warn_alpha_bar, low=0, high=1)

    def smallest_T(T):  # the steps slider's maximum: every schedule must be able to run it
        return min(s.num_timesteps for s in viz.named_schedules(schedules, T).values())

    check_num_steps(num_steps, smallest_T(num_timesteps))
    first = state(schedules, num_timesteps, num_steps, spacing, warn_alpha_bar)
    given = [schedules] if isinstance(schedules, (str, NoiseSchedule)) else \
        list(schedules.values() if isinstance(schedules, dict) else schedules)
    by_name = any(isinstance(s, str) for s in given)  # only names are rebuilt when T moves
    T_slider = W.SelectionSlider(options=sorted({*T_CHOICES, num_timesteps}), value=num_timesteps,
                                 description="T (steps of named schedules)", disabled=not by_name, style=WIDE,
                                 layout=W.Layout(width="460px"))
    steps_slider = W.IntSlider(num_steps, min=1, max=num_timesteps, description="sampling steps", style=WIDE)
    spacing_menu = W.Dropdown(options=list(SPACINGS), value=spacing, description="spacing",
                              layout=W.Layout(width="200px"))
    summary = W.HTML()
    fig, handles = figure(first)
    view = figure_widget(fig)

    def render(w) -> dict:
        T = T_slider.value
        steps_slider.max = smallest_T(T)  # may lower steps_slider.value: shown as it is used
        st = now()
        with view.batch_update():
            for (x, y), i in zip(trace_data(st), handles["order"]):
                view.data[i].x, view.data[i].y = x, y
        summary.value = summary_html(st)
        return st

    def now() -> dict:
        return state(schedules, T_slider.value, steps_slider.value, spacing_menu.value, warn_alpha_bar)

    def static(w, T_values=None):
        default = [T for T in T_slider.options if T >= steps_slider.value] if by_name else [T_slider.value]
        return to_static(schedules, T_values or default, steps_slider.value, spacing_menu.value,
                         T_slider.value, warn_alpha_bar)

    return Explorer("ScheduleExplorer", "Noise schedules", [T_slider, steps_slider, spacing_menu], [view, summary],
                    render, static=static, filmstrip=lambda w: filmstrip(now()),
                    parts=dict(T_slider=T_slider, steps_slider=steps_slider, spacing=spacing_menu, figure=view,
                               summary=summary, handles=handles))
