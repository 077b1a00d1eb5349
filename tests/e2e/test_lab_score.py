"""The score explorer in a real JupyterLab (notebook 10): moving the t slider with the keyboard
changes the readout (which names the same t) and redraws the arrow field in place. Only 10's setup
cell, the short training run and the explorer cell run (nbval runs them all)."""
import re

import pytest
from lab_helpers import errors_shown, run_explorer_cells, shot, slider

pytestmark = pytest.mark.e2e
NOTEBOOK = "notebooks/10_score_view.ipynb"
TITLE = "The score ∇ log q_t"
CELLS = (1, 6, 10)  # 10's cells: imports, the toy MLP's training, the explorer


def test_score_explorer_slider_redraws_the_arrows_in_10(page, lab, artifacts):
    from playwright.sync_api import expect

    try:
        out = run_explorer_cells(page, lab, NOTEBOOK, list(CELLS), "score_explorer", TITLE, timeout_s=180)
        s = slider(out, "t")
        value = s.locator(".widget-readout")
        plot = out.locator(".js-plotly-plot").first
        expect(plot).to_be_visible()
        shot(out, artifacts, "10-score-0-middle-t")
        start = value.inner_text()
        before = plot.screenshot()
        s.locator(".noUi-handle").focus()
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        expect(value).not_to_have_text(start)
        t = value.inner_text().strip()
        expect(out).to_contain_text(re.compile(rf"t = {t} \(paper {int(t) + 1}\)"))  # readout agrees with the slider
        page.wait_for_timeout(500)
        assert plot.screenshot() != before, "the arrow field did not change"
        shot(out, artifacts, "10-score-1-three-stops-left")
        assert errors_shown(page) == []
    finally:
        lab["shutdown_kernels"]()
