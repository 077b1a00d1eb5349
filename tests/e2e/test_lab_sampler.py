"""The sampler explorer in a real JupyterLab (notebook 05): a burst of key presses on the steps slider
shows "computing" at once, then the newest setting's picture, whose caption names every knob.
Only 05's setup cell and explorer cell run (the cells between cost minutes; nbval runs them all)."""
import re

import pytest
from lab_helpers import errors_shown, run_explorer_cells, shot, slider

pytestmark = pytest.mark.e2e
NOTEBOOK = "notebooks/05_faster_sampling.ipynb"
TITLE = "Samplers (fixed x_T and seed"
CELLS = (1, 20)  # 05's cells: imports + load_pretrained, and the sampler explorer


def test_sampler_explorer_busy_state_and_caption_in_05(page, lab, artifacts):
    from playwright.sync_api import expect

    try:
        out = run_explorer_cells(page, lab, NOTEBOOK, list(CELLS), "sampler_explorer", TITLE)
        s = slider(out, "steps")
        value, image = s.locator(".widget-readout"), out.locator("img.widget-image").first
        caption = out.locator(".widget-html", has_text=re.compile(r"steps · spacing")).first
        expect(caption).to_contain_text("20 steps")
        before_png = image.screenshot()
        s.locator(".noUi-handle").focus()
        for key in ("ArrowRight", "ArrowRight", "ArrowLeft"):  # 20 → 50 → 100 → 50: 100 is dropped
            page.keyboard.press(key)
        expect(value).to_have_text("50")
        expect(caption).to_contain_text("computing", timeout=5_000)
        expect(image).to_have_class(re.compile("diffviz-busy"))
        shot(out, artifacts, "05-sampler-1-busy")
        expect(caption).not_to_contain_text("computing", timeout=120_000)
        text = caption.inner_text()
        for part in ("DDIM", "50 steps", "spacing trailing", "η = 0", "w = 1", "class mixed", "x̂₀ not bounded",
                     "seed 0"):
            assert part in text, (part, text)
        expect(image).not_to_have_class(re.compile("diffviz-busy"))
        assert image.screenshot() != before_png, "the picture did not change"
        shot(out, artifacts, "05-sampler-2-final")
        assert errors_shown(page) == []
    finally:
        lab["shutdown_kernels"]()
