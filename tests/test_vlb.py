"""diffviz.vlb: every term of the variational bound against an independent computation — plain-
Python float64 closed forms, Monte Carlo estimates of the KL, and the decoder's bins summing to 1."""
import math

import pytest
import torch

import diffviz as dv
from diffviz import vlb

LN2 = math.log(2.0)


def bin_probability(lower, upper):
    """P(lower < Z < upper) for Z ~ N(0, 1) in plain Python, with erfc in the tails (no cancellation);
    lower = -inf / upper = inf for the open outer bins."""
    r = math.sqrt(2.0)
    if lower > 0:
        return 0.5 * (math.erfc(lower / r) - math.erfc(upper / r))
    if upper < 0:
        return 0.5 * (math.erfc(-upper / r) - math.erfc(-lower / r))
    return 0.5 * (math.erf(upper / r) - math.erf(lower / r))


def test_normal_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    m1, s1, m2, s2 = 0.3, 0.7, -0.2, 1.3
    x = m1 + s1 * torch.randn(400_000, generator=g, dtype=torch.float64)
    log_ratio = (-0.5 * ((x - m1) / s1) ** 2 - math.log(s1)) - (-0.5 * ((x - m2) / s2) ** 2 - math.log(s2))
    closed = vlb.normal_kl(torch.tensor(m1), torch.tensor(2 * math.log(s1)), torch.tensor(m2),
                           torch.tensor(2 * math.log(s2)))
    assert closed.item() == pytest.approx(log_ratio.mean().item(), abs=4 * log_ratio.std().item() / 400_000 ** 0.5)


def test_discretized_decoder_matches_plain_python_and_sums_to_one():
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # the 256 pixel levels of [-1, 1]
    for mean, log_scale in ((0.1, math.log(0.05)), (-0.9, math.log(0.3)), (0.99, math.log(0.002))):
        logp = vlb.discretized_gaussian_log_likelihood(levels, torch.tensor(mean, dtype=torch.float64),
                                                       torch.tensor(log_scale, dtype=torch.float64))
        assert torch.logsumexp(logp, 0).item() == pytest.approx(0.0, abs=1e-9)  # a distribution over the bins
        scale = math.exp(log_scale)
        for i in (0, 1, 128, 200, 254, 255):
            x = levels[i].item()
            upper = math.inf if i == 255 else (x + 1 / 255 - mean) / scale
            lower = -math.inf if i == 0 else (x - 1 / 255 - mean) / scale
            probability = bin_probability(lower, upper)
            if probability > 1e-300:
                assert logp[i].item() == pytest.approx(math.log(probability), rel=1e-9), (mean, i)
            else:  # beyond plain Python's floats; log Φ still gives a finite answer
                assert math.isfinite(logp[i].item()) and logp[i].item() < math.log(1e-300), (mean, i)
    far = vlb.discretized_gaussian_log_likelihood(torch.tensor([0.0]), torch.tensor([0.9]), torch.tensor([math.log(1e-3)]))
    assert torch.isfinite(far).all() and far.item() < -1e5  # 900 standard deviations away: tiny, not -inf


def test_prior_bpd_matches_the_closed_form():
    schedule = dv.linear_schedule(1000)
    x0 = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    a = schedule.alphas_cumprod[-1].item()
    for b in range(3):
        nats = [0.5 * (-math.log(1 - a) - 1 + (1 - a) + a * v * v) for v in x0[b].flatten().tolist()]
        assert vlb.prior_bpd(schedule, x0)[b].item() == pytest.approx(sum(nats) / len(nats) / LN2, rel=1e-10)
    assert vlb.prior_bpd(schedule, x0).max() < 1e-4  # T = 1000 linear ends at almost pure noise


def test_vlb_term_with_the_true_noise_is_the_variance_mismatch_only():
    schedule = dv.linear_schedule(1000)
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(4, 1, 6, 6, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    for t in (1, 5, 300, 999):
        x_t = dv.q_sample(schedule, x0, t, noise=eps)
        small = vlb.vlb_term(schedule, x0, x_t, t, eps)  # x̂_0 = x_0 and σ² = β̃: the posterior itself
        assert small.abs().max() < 1e-6, t
        beta, tilde = schedule.betas[t].item(), schedule.posterior_variance[t].item()
        mismatch = 0.5 * (math.log(beta / tilde) + tilde / beta - 1) / LN2
        large = vlb.vlb_term(schedule, x0, x_t, t, eps, variance="fixed_large")
        assert large.tolist() == pytest.approx([mismatch] * 4, rel=1e-6, abs=1e-12), t
        v = torch.full_like(x0, -1.0)
        assert torch.allclose(vlb.vlb_term(schedule, x0, x_t, t, eps, "learned_range", v), small, atol=1e-9)
        assert torch.allclose(vlb.vlb_term(schedule, x0, x_t, t, eps, "learned_range", -v), large, rtol=1e-9)


def test_vlb_term_matches_a_monte_carlo_kl():
    schedule = dv.linear_schedule(1000)
    g = torch.Generator().manual_seed(3)
    x0 = (torch.randint(0, 256, (1, 1, 2, 2), generator=g) / 127.5 - 1).double()
    t = 40
    x_t = dv.q_sample(schedule, x0, t, generator=g)
    eps_hat = torch.randn(x0.shape, generator=g, dtype=torch.float64) * 0.3 + dv.predict_eps(schedule, x_t, t, x0)
    closed = vlb.vlb_term(schedule, x0, x_t, t, eps_hat, variance="fixed_large")
    # sample x_{t−1} ~ q(x_{t−1} | x_t, x_0) and average log q − log p_θ per dimension
    q_mean, q_var = dv.q_posterior(schedule, x0, x_t, t)
    p_mean = dv.q_posterior(schedule, dv.predict_x0(schedule, x_t, t, eps_hat), x_t, t).mean
    p_var = schedule.betas[t].item()
    draws = q_mean + q_var.sqrt() * torch.randn((200_000, *x0.shape[1:]), generator=g, dtype=torch.float64)
    log_q = -0.5 * (draws - q_mean) ** 2 / q_var - 0.5 * q_var.log()
    log_p = -0.5 * (draws - p_mean) ** 2 / p_var - 0.5 * math.log(p_var)
    per_draw = (log_q - log_p).flatten(1).mean(1) / LN2
    assert closed.item() == pytest.approx(per_draw.mean().item(), abs=4 * per_draw.std().item() / 200_000 ** 0.5)


def test_vlb_term_at_t0_is_the_decoder():
    schedule = dv.linear_schedule(1000)
    x0 = torch.tensor([[[-1.0, 1.0], [0.0, 2 / 255 - 1]]], dtype=torch.float64).unsqueeze(0)  # (1, 1, 2, 2), 256 levels
    x_t = dv.q_sample(schedule, x0, 0, generator=torch.Generator().manual_seed(4))
    eps = torch.zeros_like(x0)
    mean = dv.predict_x0(schedule, x_t, 0, eps)  # at t = 0 the posterior mean is x̂_0 itself
    scale = math.sqrt(schedule.posterior_variance[1].item())  # β̃ of code t = 1 stands in for β̃_0 = 0
    nats = []
    for x, m in zip(x0.flatten().tolist(), mean.flatten().tolist()):
        upper = math.inf if x > 0.999 else (x + 1 / 255 - m) / scale
        lower = -math.inf if x < -0.999 else (x - 1 / 255 - m) / scale
        nats.append(-math.log(bin_probability(lower, upper)))
    expected = sum(nats) / 4 / LN2
    assert vlb.vlb_term(schedule, x0, x_t, 0, eps).item() == pytest.approx(expected, rel=1e-9)
    assert vlb.vlb_term(schedule, x0, x_t, 0, eps, "fixed_large").item() == pytest.approx(expected, rel=1e-9)


def test_elbo_adds_the_prior_to_every_term_and_its_sampled_estimate_is_unbiased():
    schedule = dv.linear_schedule(20, beta_start=1e-3, beta_end=0.3)
    model = dv.GaussianMixtureDenoiser(torch.zeros(1, 4), 0.4, schedule=schedule)
    x0 = torch.tensor([[0.2, -0.4, 0.6, 0.0]])
    full = vlb.elbo(model, schedule, x0, generator=torch.Generator().manual_seed(5), progress=False)
    assert full.terms.shape == (20, 1) and full.timesteps.tolist() == list(range(20))
    assert torch.allclose(full.total, full.prior + full.terms.sum(0))
    estimates = torch.stack([vlb.elbo(model, schedule, x0, num_timesteps_sampled=8, progress=False,
                                      generator=torch.Generator().manual_seed(100 + k)).total for k in range(300)])
    exact = torch.stack([vlb.elbo(model, schedule, x0, progress=False,
                                  generator=torch.Generator().manual_seed(900 + k)).total for k in range(30)]).mean()
    assert estimates.mean().item() == pytest.approx(exact.item(), abs=4 * estimates.std().item() / 300 ** 0.5)


@pytest.mark.parametrize("call, message", [
    (lambda s, x: vlb.vlb_term(s, x, x, 0, x, variance="learned"), r"variance must be one of"),
    (lambda s, x: vlb.vlb_term(s, x, x, 0, x, variance="learned_range"), r"model_variance is needed"),
    (lambda s, x: vlb.vlb_term(s, x, x, 0, x, model_variance=x), r"model_variance is needed"),
    (lambda s, x: vlb.vlb_term(s, x, x, 0, x, "learned_range", torch.full_like(x, float("inf"))), r"model_variance holds NaN or inf"),
    (lambda s, x: vlb.vlb_term(s, x, x, 1000, x), r"t=1000 is out of range: .* \[0, 999\]"),
    (lambda s, x: vlb.elbo(lambda a, b: a, s, x, num_timesteps_sampled=0), r"num_timesteps_sampled must be a positive int"),
    (lambda s, x: dv.dynamic_threshold(x, ratio=0.0), r"dynamic_thresholding_ratio"),
    (lambda s, x: dv.dynamic_threshold(x, max_value=0.5), r"sample_max_value"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(dv.linear_schedule(1000), torch.zeros(2, 1, 4, 4))


def test_dynamic_threshold_matches_a_per_sample_quantile():
    g = torch.Generator().manual_seed(6)
    inside = torch.rand(1, 1, 8, 8, generator=g) * 2 - 1
    wide = torch.randn(1, 1, 8, 8, generator=g) * 3
    out = dv.dynamic_threshold(torch.cat([inside, wide]), ratio=0.9, max_value=2.5)
    assert torch.equal(out[0], inside[0])  # already in [-1, 1]: s = 1, unchanged
    values = sorted(abs(v) for v in wide.flatten().tolist())
    position = 0.9 * (len(values) - 1)  # linear interpolation between order statistics, as numpy's default
    q = values[int(position)] + (position - int(position)) * (values[int(position) + 1] - values[int(position)])
    s = min(max(q, 1.0), 2.5)
    assert out[1].flatten().tolist() == pytest.approx([max(-s, min(s, v)) / s for v in wide.flatten().tolist()], rel=1e-6)
    assert out.abs().max() <= 1.0


def test_samplers_take_dynamic_thresholding_and_refuse_two_bounds():
    schedule = dv.linear_schedule(1000)
    g = torch.Generator().manual_seed(7)
    x_t = torch.randn(2, 1, 4, 4, generator=g)
    eps = torch.randn(2, 1, 4, 4, generator=g) * 3  # an x̂_0 far outside [-1, 1] at t = 10
    x0_hat = dv.predict_x0(schedule, x_t, 10, eps)
    bounded = dv.dynamic_threshold(x0_hat, ratio=0.9, max_value=4.0)
    ddpm = dv.ddpm_step(schedule, x_t, 10, eps, noise=torch.zeros_like(x_t), thresholding=True,
                        dynamic_thresholding_ratio=0.9, sample_max_value=4.0)
    assert torch.allclose(ddpm.pred_original_sample, bounded)
    assert torch.allclose(ddpm.prev_sample, dv.q_posterior(schedule, bounded, x_t, 10).mean, atol=1e-6)
    ddim = dv.ddim_step(schedule, x_t, 10, 5, eps, thresholding=True, dynamic_thresholding_ratio=0.9,
                        sample_max_value=4.0)
    eps_bounded = dv.predict_eps(schedule, x_t, 10, bounded)
    a5 = schedule.alphas_cumprod[5].item()
    assert torch.allclose(ddim.prev_sample, a5 ** 0.5 * bounded + (1 - a5) ** 0.5 * eps_bounded, atol=1e-5)
    with pytest.raises(ValueError, match="clip_sample and thresholding .* choose one"):
        dv.ddim_step(schedule, x_t, 10, 5, eps, clip_sample=True, thresholding=True)
    model = dv.GaussianMixtureDenoiser(torch.zeros(1, 16), 0.5, schedule=schedule)
    run = dv.sample(model, schedule, (2, 16), sampler="ddim", num_steps=10, thresholding=True,
                    generator=torch.Generator().manual_seed(0))
    assert run.sample.abs().max() <= 1.0 + 1e-6  # every step moved toward an x̂_0 inside [-1, 1]
