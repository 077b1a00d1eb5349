"""diffviz.explorers (re-exported by diffviz.widgets), headless: build every explorer with tiny inputs,
move its controls, and check that what is shown changed, updated in place, and equals what the
compute functions give; the static twins and filmstrips also as plain functions, without a widget."""
import time
from pathlib import Path

import nbformat
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.figure import Figure

import diffviz as dv
from diffviz import explorers, plots, viz, widgets
from diffviz.explorers.base import Explorer
from diffviz.training import TrainEvent

T = 50
SCHED = dv.linear_schedule(T)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def images():  # (4, 1, 8, 8) in [-1, 1]
    return torch.rand(4, 1, 8, 8, generator=gen(1)) * 2 - 1


@pytest.fixture(scope="module")
def oracle(images):  # the exact ε* of "data = one of these 4 images + a little noise"
    return dv.GaussianMixtureDenoiser(images.reshape(4, -1), 0.1, schedule=SCHED)


class Broken:
    def __call__(self, x_t, t, y=None):
        raise RuntimeError("model exploded")


def move(slider, values):
    """Set slider.value to each value; return the median time per move in seconds."""
    times = []
    for v in values:
        start = time.perf_counter()
        slider.value = v
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def test_forward_explorer_shows_q_sample_with_the_seeded_noise(images):
    w = widgets.forward_explorer(images, ["linear", "cosine"], num_timesteps=T, t=0)
    assert w.last_error is None and isinstance(w, Explorer) and repr(w).startswith("ForwardExplorer(")
    assert torch.equal(w.noise, torch.randn(images.shape, generator=gen(0)))
    view, before, panel_before = w.images["cosine"], w.images["cosine"].value, w.panel.value
    w.t_slider.value = 30
    assert w.images["cosine"] is view and view.value != before and w.panel.value != panel_before
    for label, s in (("linear", dv.linear_schedule(T)), ("cosine", dv.cosine_schedule(T))):
        x_t = dv.q_sample(s, images, 30, noise=w.noise).numpy()
        assert np.array_equal(w.current["x_t"][label], x_t)
        assert w.images[label].value == plots.image_png(x_t)
        assert np.allclose(w.current["histogram"][label][0], viz.pixel_histogram(x_t)[0])
    assert "paper 31" in w.readout.value
    with pytest.raises(ValueError, match="num_timesteps"):
        widgets.forward_explorer(images, [dv.linear_schedule(10), dv.cosine_schedule(20)])


def test_schedule_explorer_warns_about_terminal_snr_and_marks_visited_steps():
    w = widgets.schedule_explorer(["linear", "cosine"], num_timesteps=1000, num_steps=10)
    assert w.current["warnings"] == [] and "⚠" not in w.summary.value
    w.T_slider.value = 20
    assert w.current["warnings"] == ["linear"] and "⚠" in w.summary.value
    lin = dv.linear_schedule(20)
    assert np.allclose(w.figure.data[w.handles["curves"]["linear"]["alpha_bar"]].y, lin.alphas_cumprod.numpy())
    assert w.current["terminal"]["linear"]["alpha_bar_T"] == pytest.approx(float(lin.alphas_cumprod[-1]))
    w.steps_slider.value = 4
    w.spacing.value = "leading"
    visited = dv.sampling_timesteps(20, 4, "leading").numpy()
    assert list(w.figure.data[w.handles["visited"]["linear"]].x) == list(visited)
    w.T_slider.value = 10
    assert w.steps_slider.max == 10 and w.last_error is None
    fig = w.to_static(T_values=[10, 100])
    assert [f.name for f in fig.frames] == ["10", "100"] and fig.layout.sliders[0].active == 0
    assert isinstance(w.filmstrip(), Figure)


@pytest.fixture(scope="module")
def trajectory(oracle):
    return dv.sample(oracle, SCHED, (16, 1, 8, 8), sampler="ddim", num_steps=10, generator=gen(0))


def test_trajectory_explorer_scrubs_the_cached_run(trajectory):
    w = widgets.trajectory_explorer(trajectory)
    before = w.images["x0_hat"].value
    w.step_slider.value = 7
    step = viz.trajectory_step(trajectory, 7)
    assert w.images["x0_hat"].value != before
    assert w.images["x_t"].value == plots.image_png(trajectory.x_t[7].numpy())
    assert w.images["eps"].value == plots.image_png(viz.noise_for_display(trajectory.eps[7].numpy()))
    assert w.images["x0_hat"].value == plots.image_png(step["x0_hat"])
    assert f"paper {step['t'] + 1}" in w.readout.value
    fig = w.to_static(max_frames=5)
    first = explorers.trajectory.frame(trajectory, 0)["png"]["x_t"]
    assert len(fig.frames) == 5 and fig.frames[0].data[0].source == plots.data_uri(first)
    assert len(w.filmstrip(num=3).axes) == 9
    plain = explorers.trajectory.filmstrip(trajectory, num=3)  # the same figure, no widget needed
    assert len(plain.axes) == 9 and plain.axes[0].get_title() == w.filmstrip(num=3).axes[0].get_title()
    no_record = dv.sample(lambda x, t: torch.zeros_like(x), SCHED, (2, 1, 4, 4), num_steps=2, record=False)
    with pytest.raises(ValueError, match="record=True"):
        widgets.trajectory_explorer(no_record)


def test_noise_prediction_explorer_matches_the_model(images, oracle):
    w = widgets.noise_prediction_explorer(oracle, images, SCHED, num_frames=6)
    t_before, before = w.t_slider.value, w.images["eps_pred"].value
    t = w.timesteps[-1]
    w.t_slider.value = t
    assert t != t_before and w.images["eps_pred"].value != before
    x_t = dv.q_sample(SCHED, images, t, noise=w.noise)
    eps = oracle(x_t, torch.full((4,), t))
    assert np.allclose(w.current["eps_pred"], eps.numpy(), atol=1e-6)
    assert np.allclose(w.current["x0_pred"], dv.predict_x0(SCHED, x_t, t, eps).numpy(), atol=1e-5)
    error = w.current["eps_pred"] - w.noise.numpy()
    assert w.images["eps_error"].value == plots.image_png(viz.noise_for_display(error))
    assert w.current["mse"] == pytest.approx(float(((eps - w.noise) ** 2).mean()), rel=1e-4)
    assert len(w.to_static().frames) == 6 and len(w.filmstrip(num=2).axes) == 10


def test_errors_are_shown_inside_the_widget_never_raised(images):
    w = widgets.noise_prediction_explorer(Broken(), images, SCHED, num_frames=4)
    assert "model exploded" in w.last_error and "model exploded" in w.error.value
    w.t_slider.value = w.timesteps[0]  # moving the slider does not raise either
    assert "RuntimeError" in w.error.value

    class FailsLate:  # fails only for large t: the error comes and goes with the slider
        def __call__(self, x_t, t, y=None):
            if int(t[0]) > 30:
                raise ValueError("t too large for me")
            return torch.zeros_like(x_t)

    w = widgets.noise_prediction_explorer(FailsLate(), images, SCHED, timesteps=[0, 10, 40], precompute=False)
    assert w.last_error is None
    w.t_slider.value = 40
    assert "t too large" in w.error.value
    w.t_slider.value = 0
    assert w.last_error is None and w.error.value == ""


def test_training_monitor_updates_loss_and_samples_in_place():
    mon = widgets.training_monitor(min_interval=0.0)
    samples = torch.rand(4, 1, 8, 8, generator=gen(2)) * 2 - 1
    for i in range(1, 6):
        mon(TrainEvent(step=10 * i, loss=1.0 / i, lr=1e-3, images_seen=640 * i, elapsed=0.5 * i,
                       samples=samples if i == 5 else None))
    assert mon.shown["steps"] == [10, 20, 30, 40, 50] and np.allclose(mon.shown["losses"], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert mon.figure.value == explorers.monitor.loss_png(mon.shown["steps"], mon.shown["losses"])
    assert mon.figure.value != explorers.monitor.loss_png([], [])  # a picture, not a FigureWidget (5 MB of state)
    assert mon.image.value == plots.image_png(samples.numpy())
    assert "step 50" in mon.readout.value and mon.last_error is None
    throttled = widgets.training_monitor(min_interval=60.0)
    for i in range(1, 4):
        throttled.callback(TrainEvent(i, 0.5, 1e-3, i, 0.1 * i))
    assert len(throttled.shown["steps"]) == 1  # drawn once, then throttled
    throttled.flush()
    assert len(throttled.shown["steps"]) == 3
    throttled.callback(TrainEvent(4, 0.5, 1e-3, 4, 1.0, samples=torch.randn(50, 2)))  # 2-D toy samples
    assert throttled.last_error is None and throttled.image.value == plots.scatter_png(throttled.history.samples)
    throttled.callback(TrainEvent(5, 0.5, 1e-3, 5, 1.0, samples=torch.zeros(3)))  # neither: shown, not raised
    assert throttled.last_error is not None
    assert isinstance(throttled.to_static(), go.Figure)


def test_toy2d_explorer_oracle_and_learned_side_by_side():
    from diffviz.toy import ToyConfig, ToyMLP

    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    oracle = dv.GaussianMixtureDenoiser(means, 0.2, schedule=SCHED)
    points = oracle.sample_data(200, generator=gen(3)).float()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ToyMLP(ToyConfig(hidden=16, num_layers=1))
    w = widgets.toy2d_explorer(points, SCHED, oracle=oracle, model=model, num_steps=10)
    assert w.last_error is None and len(w.handles["clouds"]) == len(w.handles["data"]) == 3
    forward, oracle_cloud = (w.figure.data[i] for i in w.handles["clouds"][:2])
    ts = [v for _, v in w.t_slider.options]
    assert ts[0] == -1 and ts[-1] == T - 1
    before = np.array(forward.x)
    w.t_slider.value = ts[-2]
    t = ts[-2]
    assert not np.array_equal(before, forward.x)
    assert np.allclose(forward.x, dv.q_sample(SCHED, points, t, noise=w.noise)[:, 0].numpy())
    traj = dv.sample(oracle, SCHED, (200, 2), sampler="ddpm", num_steps=10, generator=gen(0), x_T=w.x_T)
    assert np.allclose(oracle_cloud.y, viz.points_at(traj, t)[:, 1], atol=1e-5)
    w.t_slider.value = -1
    assert np.allclose(forward.x, points[:, 0].numpy())
    assert np.allclose(oracle_cloud.x, traj.sample[:, 0].numpy(), atol=1e-5)
    first = {k: tr.x_t[0] for k, tr in w.trajectories.items()}
    assert torch.equal(*first.values())  # both denoisers start from the same x_T
    assert len(w.to_static(max_frames=4).frames) == 4 and len(w.filmstrip(num=3).axes) == 9


def test_slider_updates_are_fast(images, trajectory, oracle):
    """Loose bound for CI (the real figures come from benchmarks/widget_latency.py)."""
    grid = torch.rand(16, 1, 28, 28, generator=gen(4)) * 2 - 1
    fwd = widgets.forward_explorer(grid, ["linear", "cosine"], num_timesteps=T)
    assert move(fwd.t_slider, range(0, T, 5)) < 0.2
    traj = widgets.trajectory_explorer(trajectory)
    assert move(traj.step_slider, range(len(trajectory))) < 0.2
    noise = widgets.noise_prediction_explorer(oracle, images, SCHED, num_frames=8)
    assert move(noise.t_slider, noise.timesteps) < 0.2


# ----------------------------------------------------------------------------- figures: named trace handles
def test_forward_figure_handles_match_the_frame_traces(images):
    inp = explorers.forward.inputs(images, ["linear", "cosine"], num_timesteps=T)
    f = explorers.forward.frame(inp, 7)
    fig, handles = explorers.forward.figure(inp, f)
    assert [fig.data[i].name for i in handles["images"]] == ["linear", "cosine"]
    assert fig.data[handles["normal_pdf"][0]].name == "N(0, 1)"
    cosine_hist = fig.data[handles["histograms"][1]]
    assert np.allclose(cosine_hist.y[:-1], f["histogram"]["cosine"][0])
    marker = fig.data[handles["markers"][0]]
    assert list(marker.x) == [7, 7] and marker.y[0] == pytest.approx(inp.coefficients["linear"]["sqrt_alpha_bar"][7])
    static = explorers.forward.to_static(inp, timesteps=[0, 7])  # plain function, no widget
    assert [fr.name for fr in static.frames] == ["0", "7"]
    assert list(static.frames[1].traces) == handles["images"] + handles["histograms"] + handles["markers"]
    assert static.frames[1].data[-1].x == marker.x


def test_schedule_figure_handles_name_every_trace():
    st = explorers.schedule.state(["linear", "cosine"], 30, 2, "trailing")
    fig, handles = explorers.schedule.figure(st)
    assert len(fig.data) == len(handles["order"]) == 8
    assert np.allclose(fig.data[handles["curves"]["cosine"]["alpha_bar"]].y, st["curves"]["cosine"]["alpha_bar"])
    assert list(fig.data[handles["visited"]["linear"]].x) == [29, 14] and fig.layout.yaxis.type == "log"


def test_toy2d_and_monitor_figures_name_their_traces():
    means = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    oracle = dv.GaussianMixtureDenoiser(means, 0.2, schedule=SCHED)
    inp = explorers.toy2d.inputs(oracle.sample_data(50, generator=gen(3)).float(), SCHED, oracle=oracle, num_steps=5)
    f = explorers.toy2d.frame(inp, inp.timesteps[2])
    fig, handles = explorers.toy2d.figure(inp, f, height=300)
    assert np.allclose(fig.data[handles["clouds"][1]].x, f["clouds"][1][:, 0])
    assert fig.data[handles["data"][0]].name == "data" and tuple(fig.layout.xaxis.range) == (-inp.lim, inp.lim)
    fig, handles = explorers.monitor.figure([1, 2], [0.5, 0.25])
    assert list(fig.data[handles["loss"]].y) == [0.5, 0.25] and fig.layout.yaxis.type == "log"


# ----------------------------------------------------------------------------- bad input: named, never clamped
def test_bad_explorer_arguments_name_the_argument(images, oracle):
    with pytest.raises(ValueError, match="spacing must be one of 'trailing', 'leading', 'linspace', got 'foo'"):
        widgets.schedule_explorer(["linear"], num_timesteps=T, spacing="foo")
    with pytest.raises(ValueError, match="spacing must be one of"):
        widgets.sampler_explorer(oracle, SCHED, shape=(2, 1, 8, 8), spacing="foo")
    nan_image = images.clone()
    nan_image[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="image must be finite, got 1 NaN"):
        widgets.forward_explorer(nan_image, num_timesteps=T)
    with pytest.raises(ValueError, match="image must be finite"):
        widgets.noise_prediction_explorer(oracle, nan_image, SCHED)
    for make in (lambda: widgets.sampler_explorer(oracle, SCHED, shape=(2, 1, 8, 8), num_steps=T + 1),
                 lambda: widgets.schedule_explorer(["linear"], num_timesteps=T, num_steps=T + 1),
                 lambda: widgets.toy2d_explorer(torch.zeros(5, 2), SCHED, num_steps=T + 1)):
        with pytest.raises(ValueError, match=rf"num_steps must be an int in \[1, {T}\].*got {T + 1}"):
            make()
    with pytest.raises(ValueError, match=rf"t must be an int in \[0, {T - 1}\].*got {T}"):
        widgets.forward_explorer(images, num_timesteps=T, t=T)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number in \\[0, 20\\]"):
        widgets.sampler_explorer(oracle, SCHED, shape=(2, 1, 8, 8), guidance_scale=21.0)
    with pytest.raises(ValueError, match=rf"timesteps must be an int in \[0, {T - 1}\].*got {T}"):
        widgets.noise_prediction_explorer(oracle, images, SCHED, timesteps=[0, T])
    inp = explorers.sampler.inputs(oracle, SCHED, (2, 1, 8, 8))
    with pytest.raises(ValueError, match="num_steps must be an int"):
        explorers.sampler.to_static(inp, explorers.sampler.knobs(inp), num_steps_values=[T + 1])


def test_toy2d_reads_the_visited_timesteps_from_the_trajectory(monkeypatch):
    def no_recompute(*args, **kwargs):
        raise AssertionError("toy2d must read trajectory.timesteps, not recompute them")

    monkeypatch.setattr(explorers.toy2d, "sampling_timesteps", no_recompute)
    oracle = dv.GaussianMixtureDenoiser(torch.tensor([[0.0, 1.0]]), 0.3, schedule=SCHED)
    w = widgets.toy2d_explorer(oracle.sample_data(20, generator=gen(5)).float(), SCHED, oracle=oracle, num_steps=7)
    visited = w.trajectories["exact ε* (oracle)"].timesteps.tolist()
    assert w.last_error is None and [v for _, v in w.t_slider.options] == [-1, *sorted(visited)]


# ----------------------------------------------------------------------------- committed notebooks
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


def shown_widgets(nb) -> list:
    """The model ids of the widget views in a notebook's outputs."""
    return [out["data"][VIEW]["model_id"] for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if VIEW in out.get("data", {})]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_stores_the_state_of_every_widget_it_shows(path):
    """A notebook opened before it is run (or on GitHub/nbviewer) can only draw a widget whose state
    ``scripts/execute_notebooks.py`` stored in ``metadata.widgets``; and it stays ≤ 10 MB."""
    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
    missing = [m for m in shown_widgets(nb) if m not in state]
    assert not missing, f"{path.name}: no stored state for widget views {missing}; run scripts/execute_notebooks.py"
    assert path.stat().st_size <= 10e6, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"


def test_notebook_check_finds_a_widget_without_state():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w")
    cell.outputs = [nbformat.v4.new_output("display_data", data={VIEW: {"model_id": "abc", "version_major": 2}})]
    nb.cells.append(cell)
    assert shown_widgets(nb) == ["abc"]
    assert "abc" not in nb.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
