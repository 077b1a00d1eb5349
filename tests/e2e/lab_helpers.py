"""Driving JupyterLab 4 and ipywidgets with Playwright (selectors as in ../shared/TOOLCHAIN.md)."""
import re
from pathlib import Path

STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
ALL_RUN = """() => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')];
  return cells.length > 0 && cells.every(c => {
    const source = (c.querySelector('.cm-content')?.innerText || '').trim();
    const prompt = c.querySelector('.jp-InputArea-prompt')?.innerText || '';
    return !source || /\\[\\d+\\]/.test(prompt);  // empty cells are not run
  });
}"""
ANY_QUEUED = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputArea-prompt')]
  .some(p => p.innerText.includes('[*]'))"""


def shot(target, artifacts: Path, name: str) -> Path:
    """Screenshot ``target`` (a page or a locator) to ARTIFACTS/NAME.png."""
    path = artifacts / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    target.screenshot(path=str(path))
    return path


def open_notebook(page, lab, relpath: str):
    """Open ``relpath`` (relative to the served root) alone and wait for an idle kernel."""
    page.goto(f"{lab['url']}/lab/tree/{relpath}?reset&token={lab['token']}")  # reset: only this notebook open
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    page.locator('.jp-StatusBar-TextItem:has-text("| Idle")').wait_for(timeout=60_000)
    news = page.locator('.jp-toast-button:has-text("No")')
    if news.count():
        news.first.click()


def open_and_run_all(page, lab, relpath: str, timeout_s: float = 120):
    """Open ``relpath`` (relative to the served root), wait for an idle kernel, then Run →
    Restart Kernel and Run All Cells, and wait until every non-empty code cell has run."""
    open_notebook(page, lab, relpath)
    page.locator('.lm-MenuBar-itemLabel:has-text("Run")').click()
    page.locator('.lm-Menu-itemLabel:has-text("Restart Kernel and Run All Cells")').click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_function(ANY_QUEUED, timeout=30_000, polling=50)  # old prompts [n] would pass ALL_RUN
    page.wait_for_function(ALL_RUN, timeout=timeout_s * 1000, polling=250)
    page.locator('.jp-StatusBar-TextItem:has-text("| Idle")').wait_for(timeout=30_000)


def errors_shown(page) -> list[str]:
    """Tracebacks among the outputs, and error lines of diffviz explorers (``⚠`` in red ``pre``)."""
    tracebacks = page.locator(STDERR).filter(has_text=re.compile(r"Traceback|Error")).all_inner_texts()
    return tracebacks + page.locator(".jp-OutputArea-output pre", has_text="⚠").all_inner_texts()


def explorer(page, title: str):
    """The output holding the diffviz explorer whose header starts with ``title``."""
    out = page.locator(".jp-OutputArea-output").filter(has_text=title).filter(has=page.locator(".widget-slider"))
    return out.first


def slider(explorer_output, label: str):
    """The ipywidgets slider described by ``label`` inside an explorer's output."""
    name = explorer_output.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return explorer_output.locator(".widget-slider").filter(has=name).first


def drag_handle(page, the_slider, fraction: float):
    """Drag the slider's handle by ``fraction`` of the track's width with the mouse."""
    handle = the_slider.locator(".noUi-handle").bounding_box()
    track = the_slider.locator(".noUi-target").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + fraction * track["width"], y, steps=12)
    page.mouse.up()


def open_and_run_cells(page, lab, relpath: str, cells: list[int], timeout_s: float = 120):
    """Open ``relpath``, clear every output, then run only the cells at ``cells`` (indices among all
    cells, markdown included), in order, each until its prompt shows ``[n]``. For a notebook whose
    widget cell needs a setup cell but not the slow cells in between."""
    open_notebook(page, lab, relpath)
    page.locator('.lm-MenuBar-itemLabel:has-text("Edit")').click()
    page.locator('.lm-Menu-itemLabel:has-text("Clear Outputs of All Cells")').click()
    for index in cells:
        cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(index)
        cell.locator(".jp-InputArea-prompt").click()
        page.keyboard.press("Escape")  # command mode: Shift+Enter runs the selected cell
        page.keyboard.press("Shift+Enter")
        prompt = cell.locator(".jp-InputArea-prompt")
        prompt.filter(has_text=re.compile(r"\[\d+\]")).wait_for(timeout=timeout_s * 1000)
    page.locator('.jp-StatusBar-TextItem:has-text("| Idle")').wait_for(timeout=30_000)


def run_explorer_cells(page, lab, relpath: str, cells: list[int], factory: str, title: str, timeout_s: float = 120):
    """Run only ``cells`` of ``relpath`` (``open_and_run_cells``; the last one makes the explorer),
    check that the last cell still calls ``factory`` (the notebook's cells may have moved), and
    return the explorer's output, scrolled into view. Skips the test when the notebook is missing."""
    import pytest

    if not (lab["root"] / relpath).is_file():
        pytest.skip(f"{relpath} is missing")
    source = page.locator(".jp-Cell").nth(cells[-1]).locator(".cm-content")
    open_and_run_cells(page, lab, relpath, cells, timeout_s=timeout_s)
    assert factory in source.inner_text(), f"{relpath}'s cells moved: update CELLS"
    out = explorer(page, title)
    out.scroll_into_view_if_needed()
    return out
