"""Handouts: run notebooks and write, for each, one self-contained HTML file and a PDF.

    diffviz handout notebooks/ --out handouts/            # HTML + PDF per notebook
    diffviz handout notebooks/01_forward_process.ipynb --out handouts/ --no-pdf

    notebook ──nbclient, kernel env DIFFVIZ_HANDOUT=1──► outputs ──HandoutPreprocessor──► HTMLExporter
             ──► NAME.html (plotly.js inlined ONCE in <head>) ──Chromium --print-to-pdf──► NAME.pdf

Nothing needs the internet. No kernel runs behind a handout, so a widget cannot react; instead:
  * an explorer (``diffviz.explorers``) shown as a cell's result renders as its static twins
    (``diffviz.explorers.html.static_html``): on screen ``to_static()``, a plotly figure with
    precomputed frames and its own slider; in print (CSS ``@media print`` below) ``filmstrip()``,
    a picture of chosen t;
  * plain plotly figures (``plotly_mimetype`` outputs) become HTML that uses the page's plotly.js;
  * other widgets become a one-line note; markdown ``$...$`` / ``$$...$$`` become SVG pictures
    drawn by matplotlib's mathtext (TeX it cannot parse stays as written), so MathJax is not needed.
The PDF is the same HTML printed by the system Chromium (Debian: ``apt-get install chromium``).
"""
from __future__ import annotations

import base64
import html
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .explorers.html import HANDOUT_ENV

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw")
CSS = """
.diffviz-print { display: none; }
.diffviz-note { color: #777; font-size: 12px; }
.jp-RenderedHTMLCommon img.diffviz-math { display: inline; margin: 0; }
.jp-RenderedHTMLCommon img.diffviz-math-display { display: block; margin: 0.6em auto; }
/* JupyterLab's CSS (loaded after this) breaks output lines anywhere (word-break: break-all), e.g. "0.00|635":
   wrap between words instead; the extra class outranks its rule */
.jp-OutputArea .jp-OutputArea-output pre { word-break: normal; overflow-wrap: break-word; }
@media print {
  :root { --jp-code-font-size: 11px !important; }  /* ~95 characters of code or output per line on paper */
  .diffviz-screen { display: none; }
  .diffviz-print { display: block; }
  .diffviz-print img { max-width: 100%; }
  .jp-Cell, .jp-OutputArea-output img { break-inside: avoid; }
  .modebar-container { display: none; }
  .jp-InputArea-editor pre { white-space: pre-wrap; }
}
"""
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">{{ resources.diffviz_css }}</style>
<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script type="text/javascript">{{ resources.diffviz_plotlyjs }}</script>
{%- endblock extra_css -%}
"""


class HandoutError(RuntimeError):
    """A handout could not be built (a cell failed, Chromium failed or is missing)."""


@dataclass
class HandoutFiles:
    notebook: Path
    html: Path
    pdf: Path | None  # None with pdf=False
    pages: int  # pages of the PDF (0 without one)
    seconds: float  # wall time: execute + export + print


# ----------------------------------------------------------------------------- what a cell shows
TEX_FIXES = [  # (regex, replacement): TeX that mathtext lacks, rewritten to TeX it knows
    (r"\\[bB]igg?[lr]?(?![A-Za-z])", ""), (r"\\[lr]Vert(?![A-Za-z])", r"\\Vert"),
    (r"\\(le|ge)(?![A-Za-z])", r"\\\1q"), (r"\\[td]frac(?![A-Za-z])", r"\\frac"),
    (r"\\(boldsymbol|bm)(?![A-Za-z])", r"\\mathbf"), (r"\\(math[a-z]+)(?![a-z])\s*([A-Za-z0-9])", r"\\\1{\2}"),
]
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^\s$](?:[^$\n]*?[^\s$\\])?)\$(?!\$)", re.S)


def tex_image(tex: str, display: bool = False) -> str | None:
    """``<img>`` of the TeX ``tex`` (no dollars) drawn by matplotlib's mathtext as an SVG data URI,
    or None when mathtext cannot parse it."""
    import matplotlib
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    source = " ".join(tex.split())
    for pattern, replacement in TEX_FIXES:
        source = re.sub(pattern, replacement, source)
    buf = io.BytesIO()
    try:
        with matplotlib.rc_context({"mathtext.fontset": "cm", "svg.hashsalt": "diffviz"}):
            depth = mathtext.math_to_image(f"${source}$", buf, prop=FontProperties(size=13 if display else 11),
                                           format="svg")
    except (ValueError, RuntimeError):
        return None
    uri = "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()
    kind, align = ("diffviz-math-display", "") if display else ("diffviz-math", f" style='vertical-align:-{depth:.1f}pt'")
    return f"<img class='{kind}' alt='{html.escape(tex, quote=True)}' src='{uri}'{align}>"


def render_math(markdown: str) -> str:
    """Markdown with each ``$$...$$`` and ``$...$`` outside code replaced by ``tex_image``."""
    def picture(m):
        display = m.group(1) is not None
        return tex_image(m.group(1) if display else m.group(2), display) or m.group(0)

    parts = _CODE.split(markdown)  # odd items are code: left alone
    return "".join(p if i % 2 else _MATH.sub(picture, p) for i, p in enumerate(parts))


def handout_outputs(nb):
    """Edit an executed notebook in place for a static page: plotly JSON → HTML using the page's
    plotly.js, live widgets → a note, markdown math → pictures. Returns ``nb``."""
    import plotly.io as pio

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = render_math(cell.source)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME in data and "text/html" not in data:
                data["text/html"] = pio.to_html(data.pop(PLOTLY_MIME), include_plotlyjs=False, full_html=False,
                                                auto_play=False, validate=False, config={"displaylogo": False})
            elif WIDGET_MIME in data:
                out["data"] = {"text/html": "<div class='diffviz-note'>(an interactive widget: run the notebook "
                                            "in Jupyter to use it)</div>"}
    return nb


# ----------------------------------------------------------------------------- notebook → HTML
def execute_notebook(path: Path, timeout: int = 600):
    """Run ``path`` in a fresh python3 kernel (cwd: its folder) with ``DIFFVIZ_HANDOUT=1``; returns the
    executed notebook. Raises HandoutError naming the notebook when a cell fails."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, HANDOUT_ENV: "1", "PLOTLY_RENDERER": "plotly_mimetype"}  # figures as JSON: we convert
    env.pop("MPLBACKEND", None)  # Agg would hide inline matplotlib figures
    started = []  # index of each cell sent to the kernel: the last one is the one running
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_execute=lambda cell, cell_index: started.append(cell_index))
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        raise HandoutError(f"{path}: a cell failed while building the handout:\n{err}") from err
    except (CellTimeoutError, DeadKernelError) as err:  # one line: which notebook, which cell, what
        what = f"ran longer than --timeout {timeout} s" if isinstance(err, CellTimeoutError) else "killed the kernel"
        raise HandoutError(f"{path}: {cell_name(nb, started[-1] if started else 0)} {what}") from err
    nb.metadata.pop("widgets", None)  # widget state: MBs of JS no static page can use
    return nb


def cell_name(nb, index: int) -> str:
    """"cell N (`its first line`)", N counted from 1 over all cells, as JupyterLab shows them."""
    first = next((line for line in nb.cells[index].source.splitlines() if line.strip()), "")
    return f"cell {index + 1} (`{first[:60]}`)"


def notebook_html(nb, title: str) -> str:
    """One self-contained HTML page: nbconvert's lab template without require.js, MathJax, mermaid
    or the widget manager (all from CDNs), with plotly.js inlined once; images embedded."""
    import jinja2
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    exporter = HTMLExporter(template_name="lab", template_file="diffviz_handout.html.j2", embed_images=True,
                            extra_loaders=[jinja2.DictLoader({"diffviz_handout.html.j2": TEMPLATE})])
    resources = {"metadata": {"name": title}, "diffviz_css": CSS, "diffviz_plotlyjs": get_plotlyjs()}
    body, _ = exporter.from_notebook_node(handout_outputs(nb), resources=resources)
    return body


# ----------------------------------------------------------------------------- HTML → PDF
def find_chromium() -> str:
    """Path of the system Chromium: ``$DIFFVIZ_CHROMIUM``, else the first of CHROMIUM_NAMES on PATH."""
    given = os.environ.get("DIFFVIZ_CHROMIUM")
    found = next((p for p in map(shutil.which, [given] if given else CHROMIUM_NAMES) if p), None)
    if found is None:
        where = f"DIFFVIZ_CHROMIUM={given!r} is not an executable" if given else \
            f"none of {', '.join(CHROMIUM_NAMES)} is on PATH"
        raise HandoutError(f"the PDF is printed by Chromium from your OS packages, and {where}. Install it "
                           f"(Debian/Ubuntu: sudo apt-get install chromium), set DIFFVIZ_CHROMIUM to its path, "
                           f"or pass --no-pdf for the HTML only.")
    return found


def print_pdf(html_path: Path, pdf_path: Path, timeout: int = 180) -> int:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium (screen: plotly; print: filmstrips).
    Returns the number of pages."""
    chromium = find_chromium()
    pdf_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="diffviz-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={pdf_path.resolve()}",
               html_path.resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise HandoutError(f"Chromium took more than {timeout} s to print {html_path}") from err
    pages = pdf_page_count(pdf_path) if pdf_path.is_file() else 0
    if proc.returncode != 0 or pages == 0:
        raise HandoutError(f"Chromium did not print {html_path} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return pages


def pdf_page_count(path: Path) -> int:
    """Pages in a PDF, counted as its ``/Type /Page`` objects (enough for Chromium's PDFs)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", Path(path).read_bytes()))


# ----------------------------------------------------------------------------- the command
def notebook_paths(paths) -> list[Path]:
    """The .ipynb files named in ``paths`` (files, or folders: their *.ipynb, sorted)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb"))
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise ValueError(f"paths: {str(p)!r} is neither a folder nor an existing .ipynb file")
    if not found:
        raise ValueError(f"paths: no notebooks (*.ipynb) in {[str(p) for p in paths]}")
    return found


def build_handout(notebook, out_dir, pdf: bool = True, timeout: int = 600) -> HandoutFiles:
    """Execute ``notebook`` and write OUT_DIR/NAME.html (and NAME.pdf unless ``pdf=False``).
    ``timeout``: seconds allowed per cell."""
    notebook, out_dir = Path(notebook), Path(out_dir)
    if pdf:
        find_chromium()  # fail before running the notebook
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{notebook.stem}.html"
    html_path.write_text(notebook_html(execute_notebook(notebook, timeout), notebook.stem), encoding="utf-8")
    pdf_path = out_dir / f"{notebook.stem}.pdf" if pdf else None
    pages = print_pdf(html_path, pdf_path) if pdf else 0
    return HandoutFiles(notebook, html_path, pdf_path, pages, time.perf_counter() - start)


def build_handouts(paths, out_dir, pdf: bool = True, timeout: int = 600, log=print) -> list[HandoutFiles]:
    """``build_handout`` for every notebook in ``paths``; a failure does not stop the others, and a
    HandoutError listing the failures is raised at the end."""
    notebooks = notebook_paths(paths)
    if pdf:
        find_chromium()
    built, failed = [], []
    for nb in notebooks:
        try:
            files = build_handout(nb, out_dir, pdf, timeout)
        except HandoutError as err:
            failed.append(str(err) if str(err).startswith(str(nb)) else f"{nb}: {err}")
            log(f"FAILED {nb}")
            continue
        built.append(files)
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in (files.html, files.pdf) if p)
        log(f"{nb} -> {sizes}{f' ({files.pages} pages)' if pdf else ''} in {files.seconds:.1f} s")
    if failed:
        raise HandoutError(f"{len(failed)} of {len(notebooks)} handouts failed:\n" + "\n".join(failed))
    return built
