"""Screenshot every explorer output of some notebooks after Run All (not a test; a camera)."""
import os
from pathlib import Path

import pytest
from lab_helpers import open_and_run_all, shot

pytestmark = pytest.mark.e2e
NOTEBOOKS = os.environ.get("SHOT_NOTEBOOKS", "01_forward_process,02_schedules,03_reverse_process,05_faster_sampling,06_guidance").split(",")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_shots(page, lab, artifacts, name):
    out_dir = Path(os.environ.get("SHOT_DIR", artifacts))
    try:
        open_and_run_all(page, lab, f"notebooks/{name}.ipynb", 240)
        outs = page.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-slider"))
        for i in range(outs.count()):
            o = outs.nth(i)
            o.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            shot(o, out_dir, f"{name}-explorer{i}")
    finally:
        lab["shutdown_kernels"]()
