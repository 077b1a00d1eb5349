"""diffviz.variances and ddpm_step's "learned_range": the interpolation of Nichol & Dhariwal Eq. 15
against plain-Python float64, its two ends against the fixed variances, and no noise at t = 0."""
import math

import pytest
import torch

import diffviz as dv
from diffviz.variances import model_log_variance


def test_learned_range_interpolates_log_beta_and_log_beta_tilde():
    schedule = dv.linear_schedule(1000)
    like = torch.zeros(3, 1, 2, 2)
    v = torch.tensor([-1.0, 0.0, 0.5]).reshape(3, 1, 1, 1).expand_as(like)
    for t in (1, 7, 400, 999):
        got = model_log_variance(schedule, t, like, "learned_range", v)[:, 0, 0, 0].tolist()
        beta, tilde = schedule.betas[t].item(), schedule.posterior_variance[t].item()
        want = [f * math.log(beta) + (1 - f) * math.log(tilde) for f in (0.0, 0.5, 0.75)]
        assert got == pytest.approx(want, rel=1e-12), t
    at_zero = model_log_variance(schedule, 0, like, "learned_range", v)[:, 0, 0, 0].tolist()
    tilde_1, beta_0 = schedule.posterior_variance[1].item(), schedule.betas[0].item()
    assert at_zero == pytest.approx([f * math.log(beta_0) + (1 - f) * math.log(tilde_1) for f in (0.0, 0.5, 0.75)])


def test_ddpm_step_learned_range_ends_are_the_fixed_variances_and_t0_adds_no_noise():
    schedule = dv.linear_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    for t in (1, 50, 999):
        small = dv.ddpm_step(schedule, x_t, t, eps, noise=z)
        large = dv.ddpm_step(schedule, x_t, t, eps, noise=z, variance="fixed_large")
        low = dv.ddpm_step(schedule, x_t, t, eps, noise=z, variance="learned_range", model_variance=-torch.ones_like(x_t))
        high = dv.ddpm_step(schedule, x_t, t, eps, noise=z, variance="learned_range", model_variance=torch.ones_like(x_t))
        assert torch.allclose(low.prev_sample, small.prev_sample, atol=1e-6), t
        assert torch.allclose(high.prev_sample, large.prev_sample, atol=1e-6), t
        mid = dv.ddpm_step(schedule, x_t, t, eps, noise=z, variance="learned_range", model_variance=torch.zeros_like(x_t))
        sigma = math.sqrt(math.sqrt(schedule.betas[t].item() * schedule.posterior_variance[t].item()))  # geometric mean
        same_mean_other_sigma = small.prev_sample + (sigma - math.sqrt(schedule.posterior_variance[t].item())) * z
        assert torch.allclose(mid.prev_sample, same_mean_other_sigma, atol=1e-6), t
    last = dv.ddpm_step(schedule, x_t, 0, eps, noise=z, variance="learned_range", model_variance=torch.ones_like(x_t))
    assert torch.equal(last.prev_sample, last.pred_original_sample)  # the last step adds no noise


@pytest.mark.parametrize("kwargs, message", [
    (dict(variance="learned_range"), r"model_variance is needed with variance='learned_range'"),
    (dict(model_variance=torch.zeros(2, 1, 4, 4)), r"model_variance is needed .* got variance='fixed_small'"),
    (dict(variance="learned_range", model_variance=torch.full((2, 1, 4, 4), 1.5)), r"must lie in \[-1, 1\]"),
    (dict(variance="learned_range", model_variance=torch.zeros(2, 4)), r"must have the shape of x_t \(2, 1, 4, 4\)"),
    (dict(variance="learned"), r"variance must be one of"),
])
def test_ddpm_step_variance_errors_name_the_problem(kwargs, message):
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises((ValueError, TypeError), match=message):
        dv.ddpm_step(dv.linear_schedule(1000), x, 5, x, noise=x, **kwargs)


def test_sample_refuses_learned_range_with_a_pointer_to_ddpm_step():
    schedule = dv.linear_schedule(10)
    model = dv.GaussianMixtureDenoiser(torch.zeros(1, 2), 0.5, schedule=schedule)
    with pytest.raises(ValueError, match=r"'learned_range' needs .* ddpm_step\(\.\.\., model_variance=v\)"):
        dv.sample(model, schedule, (2, 2), variance="learned_range")
