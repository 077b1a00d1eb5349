"""The one widget class: an ``ipywidgets.VBox`` that wires controls to a render function.

    control ──observe(names="value")──► render(explorer) ──► compute: arrays ──► figure ──► views

Each explorer module (``forward``, ``schedule``, ...) builds its controls and views, writes a
``render`` that reads the controls, calls its pure compute function and puts the result in the
views, and hands all of it to ``Explorer``. So an explorer is:
  * its controls and views as attributes (``.t_slider``, ``.images``, ``.figure``, ...): tests set
    ``slider.value`` and check the data shown;
  * ``.current``: the arrays on show (what ``render`` returned);
  * ``.error`` / ``.last_error``: an exception in a callback is shown in red, never raised into the kernel;
  * ``.to_static()`` / ``.filmstrip()``: the module's plain functions at the current control values;
  * in a handout kernel (``DIFFVIZ_HANDOUT=1``) it displays as those static twins (``explorers.html``).
Only the explorer modules' factory functions import this module (inside the function), so the
compute and figure functions never need ipywidgets.
"""
from __future__ import annotations

import html

import ipywidgets as W
import plotly.graph_objects as go

from .common import T_HELP
from .html import in_handout_kernel, static_html

WIDE = {"description_width": "initial"}  # slider labels at their natural width


def figure_widget(fig: go.Figure) -> go.FigureWidget:
    """``fig`` as a plotly FigureWidget (traces keep their indices, so a figure's handles still apply)."""
    try:
        return go.FigureWidget(fig)
    except ImportError as err:  # plotly ≥ 6 builds FigureWidget on anywidget
        raise ImportError("plotly's FigureWidget needs anywidget: pip install anywidget") from err


def caption_html(title: str, width: int = 240) -> str:
    """``title`` in small type, wrapped within ``width`` pixels (the value of a ``titled`` caption)."""
    return f"<div style='font-size:12px;line-height:16px;width:{width - 12}px;white-space:normal'>{title}</div>"


def titled(title: str, view: W.Widget, width: int = 240, lines: int = 2) -> W.VBox:
    """A view with a small caption above it. The caption wraps within ``width`` pixels and is always
    ``lines`` lines high, so that pictures side by side start at the same height whatever their titles;
    the view keeps its own size (it is not stretched to the caption's width)."""
    caption = W.HTML(caption_html(title, width),
                     layout=W.Layout(width=f"{width}px", height=f"{16 * lines + 2}px", overflow="hidden"))
    return W.VBox([caption, view], layout=W.Layout(align_items="flex-start", margin="0 10px 0 0"))


class Explorer(W.VBox):
    """A title, controls, views and an error line; any control's change calls ``render(self)``.

    Args: kind: the explorer's name in its repr ("ForwardExplorer"); title / note: the header;
          controls: widgets shown in one row (value widgets among them are observed; Label and
          HTML readouts only shown); views: widgets below them; render(explorer) → dict, the new
          ``.current``; parts: attributes to set before the first render (controls, views, inputs);
          static(explorer, ...) → go.Figure and filmstrip(explorer, ...) → matplotlib Figure.
    """

    def __init__(self, kind: str, title: str, controls: list, views: list, render, *, parts: dict,
                 static, filmstrip=None, note: str = T_HELP):
        super().__init__()
        self.kind, self.current, self.last_error, self.error = kind, {}, None, W.HTML()
        self._render, self._static, self._filmstrip, self._busy = render, static, filmstrip, False
        for name, value in parts.items():
            setattr(self, name, value)
        header = W.HTML(f"<b>{title}</b> <span style='color:#777;font-size:12px'>{note}</span>")
        self.children = [header, W.HBox(controls, layout=W.Layout(flex_flow="row wrap")), *views, self.error]
        for control in controls:
            if isinstance(control, W.ValueWidget) and not isinstance(control, (W.Label, W.HTML)):
                control.observe(lambda change: self.update(), names="value")
        self.update()

    def update(self) -> bool:
        """Redraw from the controls' values. Errors are shown in the widget, never raised. A render that
        returns None hands the drawing to a background worker, which sets ``.current`` and the error line."""
        if self._busy:  # a control changed while render adjusts another one: the outer call redraws
            return True
        self._busy = True
        try:
            current = self._render(self)
        except Exception as err:  # noqa: BLE001 — a callback must never raise into the kernel
            self.show_error(err)
            return False
        finally:
            self._busy = False
        if current is not None:
            self.current = current
            self.show_error(None)
        return True

    def show_error(self, err: Exception | None):
        """Show ``err`` in red below the views (None clears the line); ``.last_error`` names it."""
        self.last_error = None if err is None else f"{type(err).__name__}: {err}"
        self.error.value = "" if err is None else \
            f"<pre style='color:#c00;white-space:pre-wrap'>⚠ {html.escape(self.last_error)}</pre>"

    def to_static(self, *args, **kwargs) -> go.Figure:
        """The static twin: a plotly figure with precomputed frames and its own slider (no kernel needed)."""
        return self._static(self, *args, **kwargs)

    def filmstrip(self, *args, **kwargs):
        """The paper twin: a matplotlib Figure of chosen frames."""
        if self._filmstrip is None:
            raise TypeError(f"{self.kind} has no filmstrip; use .to_static()")
        return self._filmstrip(self, *args, **kwargs)

    def __call__(self, *args, **kwargs):
        """Explorers fed by a loop (``training_monitor``) are callables: this calls their ``.callback``."""
        callback = getattr(self, "callback", None)
        if callback is None:
            raise TypeError(f"{self.kind} is not fed by events; move its controls instead")
        return callback(*args, **kwargs)

    def __repr__(self):  # "ForwardExplorer(children=…)": names the explorer, not this shared class
        return self.kind + super().__repr__()[len(type(self).__name__):]

    def _repr_mimebundle_(self, **kwargs):
        """The live widget; in a handout kernel (``DIFFVIZ_HANDOUT=1``) its static twins as HTML."""
        if in_handout_kernel():
            strip = self.filmstrip() if self._filmstrip is not None else None
            return {"text/plain": f"<{self.kind}: static handout view>",
                    "text/html": static_html(self.children[0].value, self.to_static(), strip)}
        return super()._repr_mimebundle_(**kwargs)
