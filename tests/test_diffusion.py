"""Forward process, posterior and sampler steps, each against an independent computation."""
import math

import pytest
import torch

import diffviz as dv

SCHED = dv.linear_schedule(1000)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_closed_form_matches_iterated_markov_steps():
    """Eq. 4 (one jump) vs Eq. 2 applied k+1 times: same mean √ᾱ·x0 and variance 1 − ᾱ."""
    sched = dv.linear_schedule(100)
    k, n = 60, 100_000
    x0 = torch.tensor([[1.5, -0.5, 0.0]], dtype=torch.float64).expand(n, 3)
    x = x0.clone()
    g = gen(1)
    for t in range(k + 1):
        x = dv.q_step(sched, x, t, generator=g)
    jump = dv.q_sample(sched, x0, k, generator=gen(2))
    abar = math.prod(1 - (1e-4 + (0.02 - 1e-4) * j / 99) for j in range(k + 1))
    for samples in (x, jump):
        assert torch.allclose(samples.mean(0), math.sqrt(abar) * x0[0], atol=0.01)
        assert torch.allclose(samples.var(0), torch.full((3,), 1 - abar, dtype=torch.float64), rtol=0.02)


def test_q_sample_uses_the_given_noise_exactly():
    x0 = torch.randn(4, 1, 5, 5, generator=gen(), dtype=torch.float64)
    eps = torch.randn(4, 1, 5, 5, generator=gen(1), dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    abar = SCHED.alphas_cumprod[t].view(4, 1, 1, 1)
    expected = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    assert torch.allclose(dv.q_sample(SCHED, x0, t, eps), expected, rtol=0, atol=1e-14)


def test_predict_x0_inverts_q_sample():
    x0 = torch.randn(8, 3, 4, 4, generator=gen(), dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.arange(0, 1000, 125)
    x_t = dv.q_sample(SCHED, x0, t, eps)
    assert torch.allclose(dv.predict_x0(SCHED, x_t, t, eps), x0, atol=1e-9)
    assert torch.allclose(dv.predict_eps(SCHED, x_t, t, x0), eps, atol=1e-9)


def test_posterior_is_the_product_of_the_two_gaussians():
    """q(x_{t-1}|x_t,x0) ∝ q(x_t|x_{t-1}) · q(x_{t-1}|x0): combine precisions by hand (Bayes)."""
    x0 = torch.randn(5, 3, generator=gen(), dtype=torch.float64)
    x_t = torch.randn(5, 3, generator=gen(1), dtype=torch.float64)
    t = torch.tensor([1, 7, 100, 500, 999])
    mean, var = dv.q_posterior(SCHED, x0, x_t, t)
    for i, ti in enumerate(t.tolist()):
        beta = 1e-4 + (0.02 - 1e-4) * ti / 999
        abar_prev = math.prod(1 - (1e-4 + (0.02 - 1e-4) * j / 999) for j in range(ti))
        prior_prec, prior_mean = 1 / (1 - abar_prev), math.sqrt(abar_prev) * x0[i]
        like_prec, like_mean = (1 - beta) / beta, x_t[i] / math.sqrt(1 - beta)  # in x_{t-1}
        post_var = 1 / (prior_prec + like_prec)
        post_mean = post_var * (prior_prec * prior_mean + like_prec * like_mean)
        assert var[i].item() == pytest.approx(post_var, rel=1e-9)
        assert torch.allclose(mean[i], post_mean, rtol=1e-9, atol=1e-12)


def test_posterior_at_first_step_is_x0():
    x0, x_t = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    mean, var = dv.q_posterior(SCHED, x0, x_t, 0)
    assert torch.allclose(mean, x0) and var.abs().max() == 0


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ddpm_step_is_algorithm_2(variance):
    x_t = torch.randn(4, 2, generator=gen(), dtype=torch.float64)
    eps = torch.randn(4, 2, generator=gen(1), dtype=torch.float64)
    z = torch.randn(4, 2, generator=gen(2), dtype=torch.float64)
    t = torch.tensor([999, 400, 1, 0])
    out = dv.ddpm_step(SCHED, x_t, t, eps, noise=z, variance=variance)
    for i, ti in enumerate(t.tolist()):
        beta = SCHED.betas[ti].item()
        abar = SCHED.alphas_cumprod[ti].item()
        abar_prev = SCHED.alphas_cumprod_prev[ti].item()
        sigma_sq = beta if variance == "fixed_large" else (1 - abar_prev) / (1 - abar) * beta
        if ti == 0:
            sigma_sq = 0.0  # no noise at the last step
        expected = (x_t[i] - beta / math.sqrt(1 - abar) * eps[i]) / math.sqrt(1 - beta) + math.sqrt(sigma_sq) * z[i]
        assert torch.allclose(out.prev_sample[i], expected, atol=1e-10)


def test_no_noise_at_last_ddpm_step():
    x_t, eps = torch.randn(3, 4), torch.randn(3, 4)
    a = dv.ddpm_step(SCHED, x_t, 0, eps, generator=gen(1)).prev_sample
    b = dv.ddpm_step(SCHED, x_t, 0, eps, generator=gen(2)).prev_sample
    assert torch.equal(a, b)
    assert torch.allclose(a, dv.predict_x0(SCHED, x_t, 0, eps), atol=1e-6)
    c = dv.ddpm_step(SCHED, x_t, 1, eps, generator=gen(1)).prev_sample
    d = dv.ddpm_step(SCHED, x_t, 1, eps, generator=gen(2)).prev_sample
    assert not torch.equal(c, d)


def test_ddim_eta0_is_deterministic_and_eta1_is_the_ddpm_posterior():
    x_t = torch.randn(6, 3, generator=gen(), dtype=torch.float64)
    eps = torch.randn(6, 3, generator=gen(1), dtype=torch.float64)
    a = dv.ddim_step(SCHED, x_t, 500, 480, eps, eta=0.0, generator=gen(5)).prev_sample
    b = dv.ddim_step(SCHED, x_t, 500, 480, eps, eta=0.0, generator=gen(6)).prev_sample
    assert torch.equal(a, b)
    t = 500
    sigma = dv.diffusion.ddim_sigma(SCHED, t, t - 1, 1.0, x_t)
    assert sigma.item() ** 2 == pytest.approx(SCHED.posterior_variance[t].item(), rel=1e-10)
    z = torch.randn(6, 3, generator=gen(3), dtype=torch.float64)
    ddim = dv.ddim_step(SCHED, x_t, t, t - 1, eps, eta=1.0, noise=z).prev_sample
    ddpm = dv.ddpm_step(SCHED, x_t, t, eps, noise=z, variance="fixed_small").prev_sample
    assert torch.allclose(ddim, ddpm, atol=1e-10)


def test_ddim_eq12_by_hand_and_final_jump_to_x0():
    x_t = torch.randn(2, 3, generator=gen(), dtype=torch.float64)
    eps = torch.randn(2, 3, generator=gen(1), dtype=torch.float64)
    abar, abar_prev = SCHED.alphas_cumprod[700].item(), SCHED.alphas_cumprod[300].item()
    x0 = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    expected = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
    assert torch.allclose(dv.ddim_step(SCHED, x_t, 700, 300, eps).prev_sample, expected, atol=1e-12)
    last = dv.ddim_step(SCHED, x_t, 20, -1, eps, eta=1.0, generator=gen())
    assert torch.allclose(last.prev_sample, last.pred_original_sample, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"t=1000 is out of range.*\[0, 999\]"):
        dv.q_sample(SCHED, x, 1000, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="t out of range"):
        dv.q_sample(SCHED, x, torch.tensor([0, -1]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        dv.q_sample(SCHED, x, torch.tensor([0, 1, 2]), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="integers"):
        dv.q_sample(SCHED, x, torch.tensor([0.5, 1.0]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="noise must have the shape"):
        dv.q_sample(SCHED, x, 3, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="variance must be one of"):
        dv.ddpm_step(SCHED, x, 3, x, variance="learned")
    with pytest.raises(ValueError, match="t_prev must be smaller"):
        dv.ddim_step(SCHED, x, 3, 5, x)
    with pytest.raises(ValueError, match="eta"):
        dv.ddim_step(SCHED, x, 3, 1, x, eta=-0.5)
