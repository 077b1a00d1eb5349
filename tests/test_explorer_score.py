"""diffviz.explorers.score: the arrows shown are the score from ε (checked against autograd of the
mixture's log-density), the slider moves them in place, and the static and paper twins work."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import diffviz as dv
from diffviz import widgets
from diffviz.data import gaussian_mixture_params
from diffviz.explorers import score as S

SCHED = dv.cosine_schedule(100)
PARAMS = gaussian_mixture_params(num_components=4)
ORACLE = dv.GaussianMixtureDenoiser(PARAMS.means, PARAMS.stds, PARAMS.weights, schedule=SCHED)


def autograd_score(x, t):
    x = x.double().requires_grad_(True)
    (grad,) = torch.autograd.grad(ORACLE.log_prob(x, torch.full((x.shape[0],), t)).sum(), x)
    return grad


def test_log_prob_integrates_to_one_and_its_gradient_is_the_score_from_eps():
    axis = torch.linspace(-4, 4, 401, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    for t in (0, 50, 99):
        mass = ORACLE.log_prob(grid, torch.full((grid.shape[0],), t)).exp().sum() * (axis[1] - axis[0]) ** 2
        assert mass.item() == pytest.approx(1.0, abs=2e-3), t
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in (0, 10, 60, 99):
        t_batch = torch.full((64,), t)
        from_eps = dv.score_from_eps(SCHED, ORACLE(x, t_batch), t_batch)
        assert torch.allclose(from_eps, autograd_score(x, t), atol=1e-8, rtol=1e-8), t


def test_frame_shows_the_exact_and_learned_scores_and_draws_their_directions():
    learned = lambda x, t, y=None: ORACLE(x, t) * 0.5  # noqa: E731 — "a model" with half the exact ε
    inp = S.inputs(ORACLE, learned, n=50, grid=9, lim=2.0, timesteps=[0, 20, 99])
    f = S.frame(inp, 20)
    exact = autograd_score(inp.grid, 20).numpy()
    np.testing.assert_allclose(f["scores"][0], exact, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(f["scores"][1], 0.5 * exact, rtol=1e-6, atol=1e-8)
    for scores, arrows in zip(f["scores"], f["arrows"]):  # same directions; no arrow longer than 0.9 of a cell
        cos = (scores * arrows).sum(1) / (np.linalg.norm(scores, axis=1) * np.linalg.norm(arrows, axis=1))
        assert np.all(cos > 1 - 1e-9) and np.linalg.norm(arrows, axis=1).max() <= 0.9 * inp.cell + 1e-12
    assert f["sigma"] == pytest.approx((1 - SCHED.alphas_cumprod[20]).sqrt().item())
    with pytest.raises(ValueError, match=r"t must be one of the explorer's timesteps \[0, 20, 99\]"):
        S.frame(inp, 5)


def test_widget_slider_updates_the_arrows_in_place_and_twins_render():
    w = widgets.score_explorer(ORACLE, n=40, grid=7, timesteps=[0, 30, 99])
    first = np.array(w.figure.data[w.handles["arrows"][0]].x, dtype=float)
    view_id = id(w.figure)
    w.t_slider.value = 99
    assert w.current["t"] == 99 and id(w.figure) == view_id and w.last_error is None
    shown = np.array(w.figure.data[w.handles["arrows"][0]].x, dtype=float)
    expected, _, _ = S.arrow_segments(w.inputs.grid.numpy(), S.frame(w.inputs, 99)["arrows"][0])
    np.testing.assert_allclose(shown, expected)
    assert not np.allclose(np.nan_to_num(first), np.nan_to_num(shown))
    assert "t = 99 (paper 100)" in w.readout.value and "ε = −σ_t · score" in w.readout.value
    assert len(w.to_static().frames) == 3 and isinstance(w.filmstrip(num=2), Figure)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"t must be an int in \[0, 99\]"):
        S.inputs(ORACLE, timesteps=[100])
    with pytest.raises(ValueError, match=r"data must be 2-D points"):
        S.inputs(ORACLE, data=torch.zeros(5, 3))
