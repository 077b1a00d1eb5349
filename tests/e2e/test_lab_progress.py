"""The training-progress explorer in a real JupyterLab (notebook 04): moving the snapshot slider
with the keyboard changes the readout, the caption (which names the same step), the sample grid
and the panel. Only 04's setup cell, the progress table and the explorer cell run (the training
cells between cost a minute; nbval runs them all)."""
import re

import pytest
from lab_helpers import errors_shown, run_explorer_cells, shot, slider

pytestmark = pytest.mark.e2e
NOTEBOOK = "notebooks/04_training.ipynb"
TITLE = "Training progress"
CELLS = (1, 21, 23)  # 04's cells: imports, load_progress + table, the explorer


def test_progress_explorer_slider_moves_every_view_in_04(page, lab, artifacts):
    from playwright.sync_api import expect

    try:
        out = run_explorer_cells(page, lab, NOTEBOOK, list(CELLS), "training_progress_explorer", TITLE)
        s = slider(out, "snapshot")
        value = s.locator(".widget-readout")
        images = out.locator("img.widget-image")
        caption = out.locator(".widget-html").filter(has_text=re.compile(r"snapshot \d+ of")).first  # not the title
        shot(out, artifacts, "04-progress-0-last-snapshot")
        last = value.inner_text()
        before = [images.nth(i).screenshot() for i in range(2)]
        s.locator(".noUi-handle").focus()
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        expect(value).not_to_have_text(last)
        step = re.search(r"step ([\d,]+)", value.inner_text()).group(1)
        expect(caption).to_contain_text(f"step {step}")  # the caption never disagrees with the slider
        expect(out).to_contain_text(f"step {step} ·")  # the readout line beside the slider
        after = [images.nth(i).screenshot() for i in range(2)]
        assert after[0] != before[0], "the sample grid did not change"
        assert after[1] != before[1], "the loss / metric panel did not change"
        shot(out, artifacts, "04-progress-1-three-snapshots-back")
        assert errors_shown(page) == []
    finally:
        lab["shutdown_kernels"]()
