"""diffviz.explorers.progress, headless: one slider over a run's snapshots drives every view (readout,
caption, sample grid, loss marker, metric curves), the static twin and filmstrip work as plain
functions (also without ipywidgets), and bad input is refused with errors that name it."""
import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from progress_fixture import make_progress

from diffviz import plots, widgets
from diffviz.explorers import progress as P
from diffviz.explorers.html import HANDOUT_ENV
from diffviz.progress import load_progress

ROOT = Path(__file__).resolve().parent.parent
STEPS = [500, 1000, 1500, 2000]
READOUTS = ["step 500 · 32,000 images · 30 s", "step 1,000 · 64,000 images · 1.0 min",
            "step 1,500 · 96,000 images · 1.5 min", "step 2,000 · 128,000 images · 2.0 min"]
FIDS = ["—", "50.0", "33.3", "25.0"]  # snapshot 0 has no FID (left out by the fixture)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_progress(tmp_path_factory.mktemp("progress") / "run", num_snapshots=4, missing={0: ["fid"]})


@pytest.fixture(scope="module")
def progress(folder):
    return load_progress(folder)


def grid_cells(png: bytes, n: int, size: int, nrow: int) -> np.ndarray:
    """The (n, size, size) pictures in a PNG grid (1 px padding, enlarged by a whole factor)."""
    pixels = plots.png_to_array(png)
    scale = pixels.shape[1] // (nrow * (size + 1) + 1)
    grid = pixels[::scale, ::scale]
    return np.stack([grid[1 + r * (size + 1):1 + r * (size + 1) + size, 1 + c * (size + 1):1 + c * (size + 1) + size]
                     for r, c in (divmod(k, nrow) for k in range(n))])


def test_the_slider_drives_every_view(progress):
    w = widgets.training_progress_explorer(progress)
    assert w.slider.value == 0 and w.last_error is None
    for i in (3, 1, 0, 2):  # forwards and backwards
        w.slider.value = i
        step = STEPS[i]
        assert w.slider.label == f"step {step:,}" and w.readout.value == READOUTS[i]
        assert f"snapshot {i + 1} of 4: {READOUTS[i]}" in w.caption.value
        assert f"feature-FID on 100 samples {FIDS[i]} (real digits: 5.0)" in w.caption.value
        assert w.current["index"] == i and w.current["step"] == step
        assert np.array_equal(w.current["samples"], progress.samples[i])
        assert np.array_equal(grid_cells(w.image.value, 8, 8, 8), progress.samples[i])
        assert list(w.artists["marker"].get_xdata()) == [step, step]
        loss_x = w.artists["loss"].get_xdata()
        assert loss_x.max() == step and np.array_equal(loss_x, progress.loss_steps[progress.loss_steps <= step])
        assert list(w.artists["fid"].get_xdata()) == STEPS[:i + 1]
        np.testing.assert_array_equal(w.artists["accuracy"].get_ydata(), progress.metric("accuracy")[:i + 1])
        assert w.last_error is None


def test_the_panel_picture_changes_with_the_slider(progress):
    w = widgets.training_progress_explorer(progress, index=1)
    before = w.panel.value
    w.slider.value = 3
    assert w.panel.value != before and plots.png_to_array(w.panel.value).shape[0] > 100


def test_static_twin_has_one_frame_per_snapshot(progress):
    fig = P.to_static(progress, 2)
    assert [f.name for f in fig.frames] == [f"step {s:,}" for s in STEPS]
    assert fig.layout.sliders[0].active == 2 and "snapshot 3 of 4: step 1,500" in fig.layout.title.text
    _, handles = P.figure(progress, P.frame(progress, 0))
    for i, fr in enumerate(fig.frames):
        traces = dict(zip(fr.traces, fr.data))
        assert list(traces[handles["marker"]].x) == [STEPS[i], STEPS[i]]
        assert list(traces[handles["fid"]].x) == STEPS[:i + 1]
        png = base64.b64decode(traces[handles["image"]].source.split(",", 1)[1])
        assert np.array_equal(grid_cells(png, 8, 8, 8), progress.samples[i])
        assert f"feature-FID on 100 samples {FIDS[i]}" in fr.layout.title.text
    assert fig.layout.yaxis2.type == "log" and fig.layout.yaxis3.type == "log"


def test_static_twin_thins_frames_but_keeps_the_start(progress):
    fig = P.to_static(progress, 1, max_frames=2)
    assert [f.name for f in fig.frames] == ["step 500", "step 1,000", "step 2,000"]
    assert fig.layout.sliders[0].active == 1


def test_explorer_static_and_filmstrip_follow_the_slider(progress, monkeypatch):
    w = widgets.training_progress_explorer(progress)
    w.slider.value = 3
    assert w.to_static().layout.sliders[0].active == 3
    assert isinstance(w.filmstrip(num=2), Figure)
    monkeypatch.setenv(HANDOUT_ENV, "1")
    page = w._repr_mimebundle_()["text/html"]
    assert "Plotly.addFrames(" in page and "diffviz-print" in page


def test_filmstrip_titles_name_step_and_metrics(progress):
    strip = P.filmstrip(progress, num=4)
    titles = [ax.get_title() for ax in strip.axes]
    assert titles == [f"step {s:,}\nFID {fid}\nacc {acc:.2f}"
                      for s, fid, acc in zip(STEPS, FIDS, [0.5, 0.7, 0.9, 1.0])]
    assert len(P.filmstrip(progress, indices=[0, 3]).axes) == 2
    pictures = [ax.get_images()[0].get_array() for ax in P.filmstrip(progress, indices=[0, 3], max_samples=4).axes]
    for picture, i in zip(pictures, [0, 3]):  # a 2 × 2 grid of the first 4 samples of snapshots 0 and 3
        assert np.array_equal(grid_cells(plots.to_png(np.asarray(picture)), 4, 8, 2), progress.samples[i, :4])


def test_a_run_without_metrics_shows_dashes(tmp_path):
    names = ["fid", "fid_real", "accuracy", "w0_confidence", "w0_entropy"]
    bare = load_progress(make_progress(tmp_path / "bare", num_snapshots=2, missing={0: names, 1: names}))
    w = widgets.training_progress_explorer(bare, index=1)
    assert w.last_error is None and "feature-FID on 100 samples — (real digits: —) · class accuracy —" in w.caption.value
    assert len(P.to_static(bare).frames) == 2


def test_a_folder_works_as_input(folder):
    assert P.to_static(folder, 0).layout.sliders[0].active == 0
    assert widgets.training_progress_explorer(str(folder), index=3).readout.value == READOUTS[3]


@pytest.mark.parametrize("index", [4, -1, 100])
def test_index_out_of_range(progress, index):
    for call in (lambda: P.frame(progress, index), lambda: P.to_static(progress, index),
                 lambda: P.filmstrip(progress, indices=[0, index]),
                 lambda: widgets.training_progress_explorer(progress, index=index)):
        with pytest.raises(ValueError, match=rf"index must be in \[0, 3\] \(this run has 4 snapshots\), got {index}"):
            call()


@pytest.mark.parametrize("index", ["1", 1.0, True, None])
def test_index_of_the_wrong_type(progress, index):
    with pytest.raises(TypeError, match=r"index must be an int \(a snapshot number in \[0, 3\]\)"):
        P.frame(progress, index)
    with pytest.raises(TypeError, match="index must be an int"):
        widgets.training_progress_explorer(progress, index=index)


def test_bad_progress_argument(tmp_path):
    for bad in (3, None, np.zeros(3)):
        with pytest.raises(TypeError, match="progress must be a TrainingProgress, a folder or a shipped name"):
            widgets.training_progress_explorer(bad)
    with pytest.raises(FileNotFoundError, match="no training progress at"):
        P.to_static(tmp_path / "nowhere")


def test_bad_counts(progress):
    with pytest.raises(ValueError, match="max_frames must be a positive int"):
        P.to_static(progress, max_frames=0)
    with pytest.raises(ValueError, match="num must be a positive int"):
        P.filmstrip(progress, num=0)
    with pytest.raises(ValueError, match="max_samples must be a positive int"):
        P.filmstrip(progress, max_samples=0)


def test_static_twin_and_filmstrip_need_no_ipywidgets(folder, tmp_path):
    blocker = tmp_path / "blocker" / "ipywidgets"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('ipywidgets is blocked for this test')\n")
    code = textwrap.dedent(f"""
        import sys
        from diffviz.explorers import html, progress
        page = html.static_html("<b>progress</b>", progress.to_static({str(folder)!r}, 1), progress.filmstrip({str(folder)!r}, num=2))
        assert "Plotly.addFrames(" in page and "diffviz-print" in page
        assert sys.modules.get("ipywidgets") is None
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    env.pop(HANDOUT_ENV, None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
