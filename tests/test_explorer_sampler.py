"""diffviz.explorers.sampler, headless: the sampler explorer samples in a worker thread. A move shows
"computing …" at once, the newest setting wins (stale work is dropped), and picture, caption and
``.current`` always belong to the same knobs, which the caption names in full."""
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

import diffviz as dv
from diffviz import explorers, plots, viz, widgets
from diffviz.explorers.background import Abandoned, Job, LatestWins
from diffviz.explorers.sampler import BUSY_CLASS

T = 50
SCHED = dv.linear_schedule(T)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def oracle():  # the exact ε* of "data = one of 4 images + a little noise"
    images = torch.rand(4, 1, 8, 8, generator=gen(1)) * 2 - 1
    return dv.GaussianMixtureDenoiser(images.reshape(4, -1), 0.1, schedule=SCHED)


class Slow:
    """``model`` taking ``seconds`` per call, counting its calls."""

    def __init__(self, model, seconds=0.01):
        self.model, self.seconds, self.calls = model, seconds, 0

    def __call__(self, x_t, t, *y):
        self.calls += 1
        time.sleep(self.seconds)
        return self.model(x_t, t, *y)


class Broken:
    def __call__(self, x_t, t, y=None):
        raise RuntimeError("model exploded")


class TinyConditional(nn.Module):
    """A random ε-model that uses its label: ε̂ = conv(x) + embedding(y) (y = None → the null class)."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.embed = nn.Embedding(num_classes + 1, 1)

    def forward(self, x, t, y=None):
        y = torch.full((x.shape[0],), self.num_classes) if y is None else y
        return 0.1 * self.conv(x) + self.embed(y)[:, :, None, None]


def settle(w, timeout=30):
    assert w.wait(timeout), "the explorer did not finish its newest setting in time"


def test_sampler_explorer_changes_only_the_knob():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyConditional()
    w = widgets.sampler_explorer(model, SCHED, shape=(4, 1, 8, 8), num_classes=3, num_steps=5)
    assert w.last_error is None and w.eta_slider.disabled is False
    before = w.image.value
    w.steps_slider.value = 10
    settle(w)
    assert w.image.value != before
    expected = viz.run_sampler(model, SCHED, w.x_T, sampler="ddim", num_steps=10, y=torch.arange(4) % 3,
                               guidance_scale=1.0)
    assert np.allclose(w.current["sample"], expected.sample.numpy())
    w.sampler.value = "ddpm"
    settle(w)
    assert w.eta_slider.disabled and w.current["eta"] == 0.0
    ddpm = w.image.value
    w.class_dropdown.value = 2
    w.guidance_slider.value = 3.0
    settle(w)
    assert w.current["y"] == 2 and w.current["guidance_scale"] == 3.0 and w.image.value != ddpm
    assert "class 2" in w.readout.value and "w = 3" in w.readout.value
    w.class_dropdown.value = "mixed"
    w.guidance_slider.value = 1.0
    settle(w)
    assert w.image.value == ddpm  # same knobs, same seed → the same picture (from the cache, too)
    w.inputs.results.clear()
    w.update()
    settle(w)
    assert w.image.value == ddpm  # ... and when sampled again
    assert model.training  # the explorer put it in eval mode only while sampling
    w.class_dropdown.value = "none"
    settle(w)
    assert w.guidance_slider.disabled and w.current["y"] is None
    fig = w.to_static(num_steps_values=(1, 2))
    assert len(fig.frames) == 2 and len(w.filmstrip(num_steps_values=(1, 2)).axes) == 4


def test_quick_moves_show_only_the_last_setting(oracle):
    slow = Slow(oracle)
    w = widgets.sampler_explorer(slow, SCHED, shape=(4, 1, 8, 8), num_steps=5, seed=3)
    first_png, calls_before = w.image.value, slow.calls
    moves = [50, 20, 10, 20, 50, 2, 20]
    for i, steps in enumerate(moves):
        w.steps_slider.value = steps
        # the busy state is up before any sampling: caption and dimmed picture
        assert "computing</b>" in w.readout.value and f"{steps} steps" in w.readout.value
        assert BUSY_CLASS in w.image._dom_classes
        while i == 0 and slow.calls < calls_before + 3:  # let the first (50 steps) start, then replace it
            time.sleep(0.005)
    w.spacing.value = "leading"
    w.eta_slider.value = 0.5
    settle(w)
    kn = dict(sampler="ddim", num_steps=20, timestep_spacing="leading", eta=0.5, y=None, guidance_scale=None)
    assert w.last_error is None and BUSY_CLASS not in w.image._dom_classes
    assert {k: w.current[k] for k in kn} == kn
    for part in ("DDIM", "20 steps", "spacing leading", "η = 0.5", "w = none", "class ∅", "seed 3"):
        assert part in w.readout.value, (part, w.readout.value)
    expected = dv.sample(oracle, SCHED, (4, 1, 8, 8), generator=viz.generator(3), x_T=w.x_T, **kn).sample.numpy()
    assert np.array_equal(w.current["sample"], expected)
    assert w.image.value == plots.image_png(expected) != first_png
    runner = w.runner
    assert runner.submitted == len(moves) + 2 and runner.completed < runner.submitted and runner.abandoned >= 1
    assert slow.calls - calls_before <= 10 + 20 + 20  # 50 steps abandoned early, the replaced ones never run


def test_preview_shows_x0_while_sampling(oracle, monkeypatch):
    monkeypatch.setattr(explorers.sampler, "PREVIEW_SECONDS", 0.0)
    w = widgets.sampler_explorer(Slow(oracle, 0.005), SCHED, shape=(2, 1, 8, 8), num_steps=5)
    captions = []
    w.readout.observe(lambda change: captions.append(change["new"]), names="value")
    w.steps_slider.value = 20
    settle(w)
    previews = [c for c in captions if "x̂₀ at step" in c]
    assert previews and "20 steps" in previews[-1] and "computing" in previews[-1]
    assert "computing" not in captions[-1] and "20 steps" in captions[-1]


def test_sampler_explorer_shows_model_errors():
    w = widgets.sampler_explorer(Broken(), SCHED, shape=(2, 1, 4, 4))
    assert "model exploded" in w.error.value
    w.steps_slider.value = 2
    settle(w)
    assert "model exploded" in w.last_error


def test_worker_errors_show_in_the_error_line_and_keep_the_picture(oracle):
    def fails_at_50_steps(x_t, t, *y):
        if calls.append(1) or len(calls) > 5:  # the first picture (5 steps) works, later ones fail
            raise RuntimeError("out of memory (pretend)")
        return oracle(x_t, t, *y)

    calls = []
    w = widgets.sampler_explorer(fails_at_50_steps, SCHED, shape=(2, 1, 8, 8), num_steps=5)
    shown, caption = w.image.value, w.readout.value
    w.steps_slider.value = 50  # raises in the worker thread, not here
    settle(w)
    assert "out of memory (pretend)" in w.last_error and "out of memory" in w.error.value
    assert w.image.value == shown and w.readout.value == caption and BUSY_CLASS not in w.image._dom_classes


def test_sampler_explorer_spacing_reaches_the_sampler(oracle):
    w = widgets.sampler_explorer(oracle, SCHED, shape=(2, 1, 8, 8), num_steps=5)
    trailing = w.image.value
    w.spacing.value = "leading"
    settle(w)
    assert list(w.current["timesteps"]) == dv.sampling_timesteps(T, 5, "leading").tolist()
    assert w.current["timestep_spacing"] == "leading" and w.image.value != trailing
    assert "spacing leading" in w.readout.value


def test_describe_names_every_knob():
    inp = explorers.sampler.inputs(TinyConditional(), SCHED, (3, 1, 8, 8), num_classes=3, seed=7)
    kn = explorers.sampler.knobs(inp, "ddpm", 50, "linspace", eta=0.7, cls=1, guidance_scale=4.5)
    expected = ("DDPM · 50 steps · spacing linspace · ᾱ as trained · η = 0 · w = 4.5 · class 1 · x̂₀ not bounded · "
                "seed 7")
    assert explorers.sampler.describe(kn, 7) == expected
    kn = explorers.sampler.knobs(inp, "ddim", 20, eta=0.3, cls="mixed", guidance_scale=0.0)
    assert "η = 0.3 · w = 0 · class mixed" in explorers.sampler.describe(kn, 7)
    kn = explorers.sampler.knobs(inp, "ddim", 20, at_inference="cosine")
    assert kn["inference_schedule"].name == "cosine" and kn["inference_schedule"].num_timesteps == T
    assert "spacing trailing · ᾱ along cosine · η = 0" in explorers.sampler.describe(kn, 7)


def test_bound_knob_reaches_the_sampler_the_cache_and_the_caption():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyConditional()
    w = widgets.sampler_explorer(model, SCHED, shape=(4, 1, 8, 8), num_classes=3, num_steps=5, guidance_scale=15)
    assert w.guidance_slider.max >= 15 and w.guidance_slider.value == 15 and w.bound_buttons.value == "none"
    unbounded = w.image.value
    assert "x̂₀ not bounded" in w.readout.value
    samples = {"none": w.current["sample"]}
    settings = {"clip": {"clip_sample": True},
                "dynamic": {"thresholding": True, "dynamic_thresholding_ratio": 0.995, "sample_max_value": 3.0}}
    captions = {"clip": "x̂₀ clipped to [−1, 1]", "dynamic": "x̂₀ dynamic threshold p = 0.995, s ≤ 3"}
    for bound, options in settings.items():
        w.bound_buttons.value = bound
        settle(w)
        expected = dv.sample(model, SCHED, tuple(w.x_T.shape), sampler="ddim", num_steps=5, y=torch.arange(4) % 3,
                             guidance_scale=15, x_T=w.x_T, generator=viz.generator(0), **options).sample
        assert np.allclose(w.current["sample"], expected.numpy())
        assert captions[bound] in w.readout.value and "x̂₀ not bounded" not in w.readout.value
        samples[bound] = w.current["sample"]
    assert not np.allclose(samples["none"], samples["clip"]) and not np.allclose(samples["clip"], samples["dynamic"])
    assert samples["none"].max() > 1 and np.abs(samples["clip"]).max() <= 1  # each bound its own samples ...
    assert w.image.value != unbounded and len(w.inputs.results) == 3  # ... picture and cache entry
    w.bound_buttons.value = "none"
    settle(w)
    assert w.image.value == unbounded and len(w.inputs.results) == 3  # back to the cached unbounded picture
    with pytest.raises(ValueError, match="bound"):
        widgets.sampler_explorer(model, SCHED, shape=(4, 1, 8, 8), num_classes=3, bound="clamp")


def test_latest_wins_drops_stale_jobs_and_never_hangs():
    started, release, shown = threading.Event(), threading.Event(), []

    def work(request, job):
        if request == "first":
            started.set()
            release.wait(5)
        job.check()
        return request.upper()

    runner = LatestWins(work, busy=lambda r: None, done=lambda r, out: shown.append(out),
                        failed=lambda r, err: shown.append(err))
    runner.submit("first")
    assert started.wait(5)
    runner.submit("second")
    runner.submit("third")  # "second" is replaced before it ever starts
    release.set()
    assert runner.wait(5) and shown == ["THIRD"]
    assert (runner.submitted, runner.completed, runner.abandoned) == (3, 1, 2)
    with pytest.raises(Abandoned):
        Job(runner, runner.generation - 1).check()
    assert Job(runner, runner.generation).report(lambda: shown.append("now")) and shown[-1] == "now"


def test_schedule_at_inference_knob_reaches_the_sampler_the_caption_and_the_static_twin(oracle):
    w = widgets.sampler_explorer(oracle, SCHED, shape=(2, 1, 8, 8), num_steps=10)
    assert w.schedule_dropdown.value == "as trained" and w.current["inference_schedule"] is None
    assert list(w.schedule_dropdown.options) == ["as trained", "linear", "cosine"]
    trained = w.image.value
    assert "ᾱ as trained" in w.readout.value
    w.schedule_dropdown.value = "cosine"
    settle(w)
    mapped = dv.timesteps_for_schedule(SCHED, dv.cosine_schedule(T), 10).timesteps
    assert list(w.current["timesteps"]) == mapped.tolist() != dv.sampling_timesteps(T, 10).tolist()
    expected = dv.sample(oracle, SCHED, (2, 1, 8, 8), sampler="ddim", num_steps=10, x_T=w.x_T,
                         generator=viz.generator(0), inference_schedule=dv.cosine_schedule(T)).sample
    assert np.array_equal(w.current["sample"], expected.numpy()) and w.image.value != trained
    assert "ᾱ along cosine" in w.readout.value and "ᾱ as trained" not in w.readout.value
    assert "visiting t = " + ", ".join(map(str, mapped.tolist())) in w.readout.value
    w.steps_slider.value = 50  # T = 50 cosine steps: the noisiest ones share trained timesteps, run once
    settle(w)
    distinct = len(dv.timesteps_for_schedule(SCHED, dv.cosine_schedule(T), 50))
    assert distinct < 50 and len(w.current["timesteps"]) == distinct and f"{distinct} distinct" in w.readout.value
    fig = w.to_static(num_steps_values=(2, 10))
    assert len(fig.frames) == 2 and "ᾱ along cosine" in fig.layout.annotations[0].text
    strip = w.filmstrip(num_steps_values=(2, 10))
    assert any("ᾱ along cosine" in t.get_text() for ax in strip.axes for t in ax.texts + [ax.yaxis.label])
    w.schedule_dropdown.value = "linear"  # the training schedule's own ᾱ: the same picture as "as trained"
    w.steps_slider.value = 10
    settle(w)
    assert w.image.value == trained and "ᾱ along linear" in w.readout.value
    with pytest.raises(ValueError, match="at_inference"):
        widgets.sampler_explorer(oracle, SCHED, shape=(2, 1, 8, 8), at_inference="karras")
