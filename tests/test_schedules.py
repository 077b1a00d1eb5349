"""Schedules against the papers' formulas, computed independently in plain-Python float64."""
import math

import numpy as np
import pytest
import torch

import diffviz as dv


def python_cumprod(betas):
    out, p = [], 1.0
    for b in betas:
        p *= 1.0 - b
        out.append(p)
    return out


def test_linear_matches_ho_et_al_and_golden_value():
    s = dv.linear_schedule(1000)
    expected = [1e-4 + (0.02 - 1e-4) * k / 999 for k in range(1000)]
    assert s.betas.dtype == torch.float64 and s.betas.shape == (1000,)
    np.testing.assert_allclose(s.betas.numpy(), expected, rtol=1e-12)
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.0358297653756754e-05, rel=1e-9)
    assert s.alphas_cumprod[0].item() == pytest.approx(1 - 1e-4, rel=1e-12)


def test_t_convention_prev_is_one_at_start():
    s = dv.linear_schedule(50)
    assert s.alphas_cumprod_prev[0].item() == 1.0
    np.testing.assert_allclose(s.alphas_cumprod_prev[1:].numpy(), s.alphas_cumprod[:-1].numpy())


def test_cosine_matches_nichol_dhariwal_eq17():
    T, s_off = 1000, 0.008
    sched = dv.cosine_schedule(T, s=s_off)
    f = lambda t: math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2  # noqa: E731
    # code t = k is the paper's t = k + 1: alpha_bar[k] = f(k + 1) / f(0) wherever no clipping happened
    expected = np.array([f(k + 1) / f(0) for k in range(T)])
    clipped = sched.betas.numpy() >= 0.999 - 1e-15
    assert clipped.sum() == 1 and clipped[-1]  # only the very last beta hits max_beta
    np.testing.assert_allclose(sched.alphas_cumprod.numpy()[:-1], expected[:-1], rtol=1e-9)
    assert sched.betas[0].item() == pytest.approx(4.128422482196914e-05, rel=1e-9)
    assert sched.alphas_cumprod[499].item() == pytest.approx(0.49384359044063775, rel=1e-9)


def test_quadratic_and_sigmoid_formulas():
    T = 200
    q = dv.get_schedule("quadratic", T)
    np.testing.assert_allclose(q.betas.numpy(), np.linspace(1e-2, 0.02**0.5, T) ** 2, rtol=1e-12)
    sg = dv.get_schedule("sigmoid", T, beta_start=1e-4, beta_end=0.02)
    u = np.linspace(-6, 6, T)
    np.testing.assert_allclose(sg.betas.numpy(), 1e-4 + (0.02 - 1e-4) / (1 + np.exp(-u)), rtol=1e-12)


@pytest.mark.parametrize("name", ["linear", "cosine", "quadratic", "sigmoid"])
def test_derived_quantities(name):
    s = dv.get_schedule(name, 100)
    betas = s.betas.tolist()
    abar = python_cumprod(betas)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), abar, rtol=1e-12)
    prev = [1.0] + abar[:-1]
    beta_tilde = [(1 - p) / (1 - a) * b for p, a, b in zip(prev, abar, betas)]
    np.testing.assert_allclose(s.posterior_variance.numpy(), beta_tilde, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(s.snr.numpy(), [a / (1 - a) for a in abar], rtol=1e-10)
    np.testing.assert_allclose(s.log_snr.numpy(), [math.log(a / (1 - a)) for a in abar], rtol=1e-9)
    assert s.posterior_variance[0].item() == 0.0
    again = dv.NoiseSchedule.from_config(s.to_config())
    assert torch.equal(again.betas, s.betas) and again.name == name


def test_schedule_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        dv.get_schedule("cosin", 10)
    with pytest.raises(ValueError, match="beta_end"):
        dv.linear_schedule(10, beta_end=float("nan"))
    with pytest.raises(ValueError, match="num_timesteps"):
        dv.linear_schedule(0)
    with pytest.raises(TypeError, match="num_timesteps"):
        dv.cosine_schedule(10.5)
    with pytest.raises(ValueError, match="max_beta"):
        dv.cosine_schedule(10, max_beta=1.5)
    with pytest.raises(TypeError, match="schedule 'linear'"):
        dv.get_schedule("linear", 10, s=0.1)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        dv.from_betas([0.1, 1.2])
    with pytest.raises(ValueError, match="NaN"):
        dv.from_betas([0.1, float("nan")])


def test_timestep_spacings_match_diffusers_table():
    # Lin et al. 2023, Table 2 (T = 1000, 10 steps) — the spacings diffusers implements.
    assert dv.sampling_timesteps(1000, 10, "leading").tolist() == list(range(900, -1, -100))
    assert dv.sampling_timesteps(1000, 10, "trailing").tolist() == list(range(999, 0, -100))
    assert dv.sampling_timesteps(1000, 10, "linspace").tolist() == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    for spacing in ("leading", "trailing", "linspace"):
        assert dv.sampling_timesteps(20, 20, spacing).tolist() == list(range(19, -1, -1))
    with pytest.raises(ValueError, match="num_steps"):
        dv.sampling_timesteps(100, 101)
    with pytest.raises(ValueError, match="timestep_spacing"):
        dv.sampling_timesteps(100, 10, "evenly")


def test_respace_keeps_alpha_bar_and_recomputes_betas():
    s = dv.linear_schedule(1000)
    kept = dv.sampling_timesteps(1000, 50, "trailing")
    r = dv.respace(s, kept)
    ascending = sorted(kept.tolist())
    np.testing.assert_allclose(r.alphas_cumprod.numpy(), s.alphas_cumprod[ascending].numpy(), rtol=1e-12)
    assert torch.allclose(dv.respace(s, range(1000)).betas, s.betas, rtol=1e-12)
    with pytest.raises(ValueError, match="timesteps"):
        dv.respace(s, [0, 1000])


def test_extract_broadcasts_to_any_rank():
    s = dv.linear_schedule(10)
    t = torch.tensor([0, 9])
    for shape in [(2, 2), (2, 1, 4, 4), (2, 3, 4, 4, 4)]:
        x = torch.zeros(shape, dtype=torch.float32)
        out = dv.extract(s.alphas_cumprod, t, x)
        assert out.shape == (2,) + (1,) * (len(shape) - 1) and out.dtype == torch.float32
        assert out.flatten()[1].item() == pytest.approx(s.alphas_cumprod[9].item(), rel=1e-6)
