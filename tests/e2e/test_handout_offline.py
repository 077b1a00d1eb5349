"""An exported handout in Chromium with every network request blocked: the plotly twins render and
their own slider changes frames; the PDF (printed by the same Chromium) has pages."""
import shutil
import subprocess
from pathlib import Path

import pytest
from lab_helpers import shot

pytestmark = pytest.mark.e2e
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "handout_demo.ipynb"
FIRST_IMAGE = "() => document.querySelector('.js-plotly-plot').data[0].source"


@pytest.fixture(scope="session")
def handout_files(artifacts):
    from diffviz.handout import build_handout

    return build_handout(FIXTURE, artifacts / "handouts", pdf=True)


def test_handout_works_offline(page, handout_files, artifacts):
    from playwright.sync_api import expect

    requested = []

    def only_local(route):
        if route.request.url.startswith("file:"):
            return route.continue_()
        requested.append(route.request.url)
        return route.abort()

    page.context.route("**/*", only_local)
    page.goto(handout_files.html.as_uri())
    plots = page.locator(".js-plotly-plot")
    expect(plots).to_have_count(4)  # forward, schedule and trajectory twins, the plain figure
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')]"
                           ".every(p => p._fullLayout && p.querySelector('.main-svg'))", timeout=20_000)
    forward = plots.first
    label = forward.locator(".slider-group > text.slider-label")  # the current value
    expect(label).to_have_text("t (code; paper t + 1) = 0")
    shot(forward, artifacts, "handout-0-forward-loaded")
    before = page.evaluate(FIRST_IMAGE)

    forward.locator(".slider-rail-rect").scroll_into_view_if_needed()
    rail = forward.locator(".slider-rail-rect").bounding_box()  # click at 60 % of the slider's rail
    page.mouse.click(rail["x"] + 0.6 * rail["width"], rail["y"] + rail["height"] / 2)
    expect(label).not_to_have_text("t (code; paper t + 1) = 0")
    page.wait_for_function(f"() => ({FIRST_IMAGE})() !== {before!r}", timeout=10_000)
    active = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullLayout.sliders[0].active")
    assert active > 0
    shot(forward, artifacts, "handout-1-forward-after-slider")
    assert requested == [], f"the handout asked the network for {requested}"
    assert page.js_errors == []


def test_handout_pdf_has_pages(handout_files, artifacts):
    from diffviz.handout import pdf_page_count

    assert handout_files.pdf.read_bytes().startswith(b"%PDF") and pdf_page_count(handout_files.pdf) >= 1
    if shutil.which("pdftoppm"):  # page 1 as a picture, to look at
        subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", str(handout_files.pdf),
                        str(artifacts / "handout-pdf-page")], check=True)
