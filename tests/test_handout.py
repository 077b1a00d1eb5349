"""diffviz.handout and `diffviz handout`: build the fixture notebook's handout once (a real kernel,
nbconvert, and Chromium when installed) and check it needs no network and keeps its figures working."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from plotly.offline import get_plotlyjs

from diffviz import handout, widgets
from diffviz.explorers.html import static_html
from diffviz.plots import image_filmstrip
from diffviz.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "handout_demo.ipynb"
HAS_CHROMIUM = any(map(shutil.which, handout.CHROMIUM_NAMES))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`diffviz handout` on the fixture: {"html": text, "pdf": Path or None}."""
    out = tmp_path_factory.mktemp("handouts")
    assert main(["handout", str(FIXTURE), "--out", str(out), *([] if HAS_CHROMIUM else ["--no-pdf"])]) == 0
    pdf = out / "handout_demo.pdf"
    return {"html": (out / "handout_demo.html").read_text(encoding="utf-8"), "pdf": pdf if HAS_CHROMIUM else None}


def frames_of(page: str) -> list[list]:
    """The frames of every plotly figure on the page (the JSON passed to Plotly.addFrames)."""
    decoder, found = json.JSONDecoder(), []
    for m in re.finditer(r"Plotly\.addFrames\('[^']+',\s*", page):
        found.append(decoder.raw_decode(page, m.end())[0])
    return found


def test_html_needs_no_network(built):
    page = built["html"]
    assert not re.search(r"<script[^>]*\bsrc=", page), "every script is inline"
    assert not re.search(r"<(link|img|iframe)[^>]*\b(src|href)=[\"']?(https?:)?//", page)
    assert page.count(get_plotlyjs()[:200]) == 1, "exactly one copy of plotly.js"
    assert not re.search(r"<script[^>]*widget-state", page), "no widget state: no kernel behind the page"


def test_explorers_become_plotly_twins_with_frames_and_filmstrips(built):
    page = built["html"]
    frames = frames_of(page)
    assert [len(f) for f in frames] == [20, 9, 10]  # forward (20 of T = 50), schedule (9 T values), trajectory
    assert frames[0][0]["name"] == "0" and frames[0][-1]["name"] == "49"
    assert page.count("Plotly.newPlot(") == 4  # the three twins and the plain figure
    assert len(re.findall(r"class=.diffviz-print.><img alt=.filmstrip. src=.data:image/png;base64,[^'\"]+. width=.\d+.", page)) == 3
    assert "application/vnd.jupyter.widget-view+json" not in page


def test_markdown_math_becomes_pictures(built):
    pictures = re.findall(r"<img [^>]*diffviz-math-display[^>]*>", built["html"])
    assert len(pictures) == 1 and "src=\"data:image/svg+xml;base64," in pictures[0]
    assert "cost = $5" in built["html"]  # code is left alone
    text = handout.render_math(r"at $t$, `$x$`, and $\notacommand{x}$")
    assert "class='diffviz-math'" in text and "`$x$`" in text and r"$\notacommand{x}$" in text


@pytest.mark.skipif(not HAS_CHROMIUM, reason="no chromium on PATH (apt-get install chromium); "
                                              "scripts/e2e.sh installs it and checks the PDF again")
def test_pdf_has_pages(built):
    data = built["pdf"].read_bytes()
    assert data.startswith(b"%PDF") and handout.pdf_page_count(built["pdf"]) >= 1


def test_explorer_repr_is_static_only_in_a_handout_kernel(monkeypatch):
    w = widgets.forward_explorer(torch.zeros(1, 4, 4), num_timesteps=20)
    monkeypatch.delenv(widgets.HANDOUT_ENV, raising=False)
    assert "application/vnd.jupyter.widget-view+json" in w._repr_mimebundle_()
    monkeypatch.setenv(widgets.HANDOUT_ENV, "1")
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    assert "Plotly.addFrames(" in bundle["text/html"] and "diffviz-print" in bundle["text/html"]


def test_missing_chromium_is_a_clear_error_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DIFFVIZ_CHROMIUM", str(tmp_path / "no-such-chromium"))
    assert main(["handout", str(FIXTURE), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "apt-get install chromium" in err and "--no-pdf" in err
    assert not list(tmp_path.glob("*.html"))


def test_bad_paths_are_rejected(tmp_path, capsys):
    assert main(["handout", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path)]) == 2
    assert "missing.ipynb" in capsys.readouterr().err


def test_output_lines_wrap_between_words_not_inside_numbers(built):
    """JupyterLab's own CSS, later in the page, sets ``word-break: break-all`` on output <pre>, which
    wraps "0.00635" as "0.00" / "635" on paper; ours must come with a more specific selector."""
    page = built["html"]
    ours = re.search(r"([.\w\- ]+)\{ word-break: normal; overflow-wrap: break-word; \}", page)
    lab = re.search(r"\n(\.jp-OutputArea-output pre) \{[^}]*word-break: break-all", page)
    assert ours and lab, "the override or JupyterLab's rule is missing"
    assert ours.group(1).count(".") > lab.group(1).count("."), "the override must outrank JupyterLab's rule"


def test_filmstrip_prints_at_its_own_size():
    """Its labels are LABEL_PT (≥ 8 pt) at the figure's size, which is at most the page's text column."""
    strip = image_filmstrip([[np.zeros((8, 8), np.uint8)] * 6], ["x_t"], [f"t = {t} (paper {t + 1})" for t in range(6)])
    block = static_html("<b>x</b>", go.Figure(), strip)
    assert f"width='{round(96 * strip.get_size_inches()[0])}'" in block  # CSS px: 96 per inch
