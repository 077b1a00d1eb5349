"""An explorer as a static page: what a handout shows where a live widget would be.

No kernel runs behind a handout, so a slider cannot call Python. Instead a cell that shows an
explorer renders, in a kernel started by ``diffviz handout`` (environment ``DIFFVIZ_HANDOUT=1``),
  * on screen its static twin: a plotly figure with precomputed frames and its own slider;
  * in print (CSS ``@media print``, defined by ``diffviz.handout``) its filmstrip as a PNG.
Both ``diffviz.explorers.base`` (the widget's display hook) and ``diffviz.handout`` (which sets the
variable) import from here, so neither imports the other. Nothing here needs ipywidgets.
"""
from __future__ import annotations

import base64
import io
import os

HANDOUT_ENV = "DIFFVIZ_HANDOUT"  # set to 1 by `diffviz handout` in the kernels it runs
STATIC_NOTE = "<div class='diffviz-note'>Static copy of a widget: its slider moves through precomputed frames.</div>"


def in_handout_kernel() -> bool:
    """True in a kernel started by ``diffviz handout`` (``DIFFVIZ_HANDOUT`` set and not "0")."""
    return os.environ.get(HANDOUT_ENV, "") not in ("", "0")


def static_html(header: str, figure, filmstrip=None) -> str:
    """A handout block: the ``header`` HTML, the plotly ``figure`` without plotly.js (the page loads it
    once) for the screen and, when given, the matplotlib ``filmstrip`` as a PNG for print."""
    plot = figure.to_html(include_plotlyjs=False, full_html=False, auto_play=False, config={"displaylogo": False})
    if filmstrip is None:
        return f"<div class='diffviz-handout'>{header}{STATIC_NOTE}{plot}</div>"
    buf = io.BytesIO()
    filmstrip.savefig(buf, format="png", dpi=150)
    png = base64.b64encode(buf.getvalue()).decode()
    width = round(96 * filmstrip.get_size_inches()[0])  # CSS px (96 per inch): printed at the figure's size,
    # so its 9 pt labels print at 9 pt (a width attribute: the handout's HTML sanitizer drops style="...")
    return (f"<div class='diffviz-handout'>{header}<div class='diffviz-screen'>{STATIC_NOTE}{plot}</div>"
            f"<div class='diffviz-print'><img alt='filmstrip' width='{width}' src='data:image/png;base64,{png}'></div></div>")
