"""The score view (diffviz.score) against independent computations: an autograd gradient of a
hand-written log-density, closed-form Gaussian scores, and the exact moments of a Langevin chain."""
import math

import numpy as np
import pytest
import torch

import diffviz as dv

SCHED = dv.linear_schedule(1000)
MEANS = torch.tensor([[1.0, -0.5], [-1.5, 1.0], [0.3, 1.8]], dtype=torch.float64)
STDS = torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def mixture_log_density(x, t):
    """log q_t(x) of the noised mixture Σ_k w_k N(√ᾱ_t μ_k, v_k I), v_k = ᾱ_t s_k² + 1 − ᾱ_t, by hand.
    x (B, D) float64; t (B,) int64."""
    alpha_bar = SCHED.alphas_cumprod[t][:, None]  # (B, 1)
    var = alpha_bar * STDS[None] ** 2 + 1 - alpha_bar  # (B, K)
    centres = alpha_bar.sqrt()[:, :, None] * MEANS[None]  # (B, K, D)
    sq = ((x[:, None, :] - centres) ** 2).sum(-1)  # (B, K)
    D = x.shape[1]
    log_comp = torch.log(WEIGHTS)[None] - 0.5 * D * torch.log(2 * math.pi * var) - 0.5 * sq / var
    return torch.logsumexp(log_comp, dim=1)  # (B,)


@pytest.mark.parametrize("t", [0, 10, 250, 999, "batch"])
def test_score_from_eps_of_the_exact_mixture_is_the_autograd_gradient(t):
    x = 2 * torch.randn(64, 2, generator=gen(1), dtype=torch.float64)
    t_batch = torch.randint(0, 1000, (64,), generator=gen(2)) if t == "batch" else torch.full((64,), t)
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture_log_density(x_req, t_batch).sum(), x_req)
    oracle = dv.GaussianMixtureDenoiser(MEANS, STDS, WEIGHTS, schedule=SCHED)
    score = dv.score_from_eps(SCHED, oracle(x, t_batch), t_batch if t == "batch" else t)
    assert score.dtype == torch.float64
    torch.testing.assert_close(score, grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(dv.eps_from_score(SCHED, grad, t_batch), oracle(x, t_batch), rtol=1e-9, atol=1e-9)


def test_eps_score_round_trip_any_rank():
    eps = torch.randn(4, 3, 5, 5, generator=gen())
    t = torch.tensor([0, 1, 500, 999])
    score = dv.score_from_eps(SCHED, eps, t)
    coef = (1 - SCHED.alphas_cumprod[t]).sqrt().float().view(4, 1, 1, 1)
    torch.testing.assert_close(score, -eps / coef)
    torch.testing.assert_close(dv.eps_from_score(SCHED, score, t), eps)
    torch.testing.assert_close(dv.eps_from_score(SCHED, dv.score_from_eps(SCHED, eps, 7), 7), eps)


@pytest.mark.parametrize("fn", [dv.score_from_eps, dv.eps_from_score])
def test_bad_inputs_are_named(fn):
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"t=1000 is out of range.*\[0, 999\]"):
        fn(SCHED, x, 1000)
    with pytest.raises(ValueError, match=r"t out of range"):
        fn(SCHED, x, torch.tensor([0, 1, -1]))
    with pytest.raises(ValueError, match=r"t must have shape \(3,\)"):
        fn(SCHED, x, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="floating-point"):
        fn(SCHED, torch.zeros(3, 2, dtype=torch.long), 0)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        fn("linear", x, 0)


def test_ddpm_score_ladder_is_the_closed_form_ve_score():
    mu, s = torch.tensor([[1.0, -0.5]]), 0.5
    oracle = dv.GaussianMixtureDenoiser(mu, s, schedule=SCHED)
    ladder = dv.ddpm_score_ladder(oracle, SCHED, 10, timestep_spacing="leading")
    assert ladder.timesteps.tolist() == list(range(900, -1, -100))
    alpha_bar = SCHED.alphas_cumprod[ladder.timesteps]
    torch.testing.assert_close(ladder.sigmas, ((1 - alpha_bar) / alpha_bar).sqrt())
    assert (ladder.sigmas[1:] < ladder.sigmas[:-1]).all()
    x = 3 * torch.randn(16, 2, generator=gen(), dtype=torch.float64)
    for i, sigma in enumerate(ladder.sigmas.tolist()):  # x̃ = x_0 + σ ε ~ N(μ, (s² + σ²) I)
        torch.testing.assert_close(ladder.score_fn(x, i), -(x - mu) / (s**2 + sigma**2), rtol=1e-9, atol=1e-9)


def test_ddpm_score_ladder_runs_a_network_and_checks_its_arguments():
    model = dv.ToyMLP(dv.ToyConfig(hidden=16, num_layers=1, time_embed_dim=8))
    ladder = dv.ddpm_score_ladder(model, SCHED, 5)
    out = dv.annealed_langevin(ladder.score_fn, (4, 2), ladder.sigmas, steps_per_level=2, step_size=1e-4,
                               generator=gen())
    assert out.sample.shape == (4, 2) and torch.isfinite(out.sample).all() and out.levels is None
    with pytest.raises(ValueError, match=r"num_levels must be an int in \[1, 1000\]"):
        dv.ddpm_score_ladder(model, SCHED, 1001)
    with pytest.raises(TypeError, match="eps_model must be callable"):
        dv.ddpm_score_ladder("model", SCHED, 5)


def test_ddpm_score_ladder_runs_the_shipped_trained_model():
    model, schedule, _ = dv.load_pretrained()
    y = torch.tensor([3, 7])
    ladder = dv.ddpm_score_ladder(lambda x, t: model(x, t, y), schedule, 5)  # a conditional model, y fixed
    out = dv.annealed_langevin(ladder.score_fn, (2, 1, 28, 28), ladder.sigmas, steps_per_level=3, step_size=1e-4,
                               generator=gen(), record=True)
    assert out.sample.shape == (2, 1, 28, 28) and out.levels.shape == (5, 2, 1, 28, 28)
    assert torch.isfinite(out.levels).all()


def langevin_moments(sigmas, steps, step_size, mu, s2, var0):
    """Mean and variance of annealed Langevin on N(μ, s²), started at N(0, var0), by the scalar
    recursion of the affine step x ← a·x + (1 − a)·μ + √α·z, a = 1 − α/(2(s² + σ²)) (the score of
    N(μ, s² + σ²) is −(x − μ)/(s² + σ²)); α = ε σ²/σ_L² (Song & Ermon 2019, Algorithm 1)."""
    m, v, per_level = 0.0, var0, []
    for sigma in sigmas:
        alpha = step_size * sigma**2 / sigmas[-1] ** 2
        a = 1 - alpha / (2 * (s2 + sigma**2))
        for _ in range(steps):
            m, v = a * m + (1 - a) * mu, a * a * v + alpha
        per_level.append((m, v))
    return per_level  # [(mean, variance) at the end of each level]


def gaussian_score(mu, s, sigmas):
    return lambda x, i: -(x - mu) / (s**2 + sigmas[i] ** 2)


def test_annealed_langevin_samples_a_gaussian():
    mu, s = 1.5, 0.5
    sigmas = np.geomspace(3.0, 0.01, 10).tolist()
    step_size = 0.5 * sigmas[-1] ** 2
    out = dv.annealed_langevin(gaussian_score(mu, s, sigmas), (4000, 1), sigmas, steps_per_level=100,
                               step_size=step_size, generator=gen(3), record=True)
    moments = langevin_moments(sigmas, 100, step_size, mu, s**2, sigmas[0] ** 2)
    m, v = moments[-1]
    x = out.sample[:, 0].double()
    assert abs(x.mean().item() - m) < 0.03 and abs(m - mu) < 1e-6
    assert x.var().item() == pytest.approx(v, rel=0.07)  # the chain's exact variance
    assert x.var().item() == pytest.approx(s**2, rel=0.1) and v == pytest.approx(s**2, rel=0.05)
    assert out.levels.shape == (10, 4000, 1) and torch.equal(out.levels[-1], out.sample)
    level_var = out.levels[:, :, 0].double().var(1)  # (L,)
    torch.testing.assert_close(level_var, torch.tensor([v for _, v in moments], dtype=torch.float64), rtol=0.07, atol=0)


def test_annealed_langevin_through_the_ddpm_ladder_of_the_exact_denoiser():
    mu, s = torch.tensor([[1.0, -0.5]]), 0.5
    oracle = dv.GaussianMixtureDenoiser(mu, s, schedule=SCHED)
    ladder = dv.ddpm_score_ladder(oracle, SCHED, 20, timestep_spacing="leading")
    sigmas = ladder.sigmas.tolist()
    step_size = 0.5 * sigmas[-1] ** 2
    out = dv.annealed_langevin(ladder.score_fn, (2000, 2), ladder.sigmas, steps_per_level=50,
                               step_size=step_size, generator=gen(4))
    m, v = langevin_moments(sigmas, 50, step_size, 0.0, s**2, sigmas[0] ** 2)[-1]  # per coordinate, about μ
    torch.testing.assert_close(out.sample.mean(0), mu[0], atol=0.04, rtol=0)
    torch.testing.assert_close(out.sample.var(0), torch.full((2,), v), rtol=0.1, atol=0)
    assert abs(m) < 1e-6


def test_annealed_langevin_is_deterministic_given_a_generator():
    sigmas = [1.0, 0.3, 0.1]
    score = gaussian_score(0.0, 1.0, sigmas)
    run = lambda seed, **kw: dv.annealed_langevin(score, (8, 3), sigmas, steps_per_level=5, step_size=1e-3,
                                                  generator=gen(seed), **kw).sample
    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))
    x_init = torch.zeros(8, 3)
    assert torch.equal(run(0, x_init=x_init), run(0, x_init=x_init)) and torch.equal(x_init, torch.zeros(8, 3))


def test_annealed_langevin_bad_inputs():
    score, shape = (lambda x, i: -x), (4, 2)
    cases = [
        (dict(sigmas=[0.1, 1.0]), ValueError, "strictly descending"),
        (dict(sigmas=[1.0, 0.0]), ValueError, r"finite and > 0"),
        (dict(sigmas=[]), ValueError, "non-empty 1-D"),
        (dict(sigmas=[1.0], steps_per_level=0), ValueError, "steps_per_level must be a positive int"),
        (dict(sigmas=[1.0], step_size=-1.0), ValueError, r"step_size must be a finite number in \(0"),
        (dict(sigmas=[1.0], generator=0), TypeError, "generator must be a torch.Generator"),
        (dict(sigmas=[1.0], x_init=torch.zeros(4, 3)), ValueError, r"x_init must have shape \(4, 2\)"),
        (dict(sigmas=[1.0], record=1), TypeError, "record must be True or False"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            dv.annealed_langevin(score, shape, **kwargs)
    with pytest.raises(TypeError, match="score_fn must be callable"):
        dv.annealed_langevin(None, shape, [1.0])
    with pytest.raises(ValueError, match="shape must be a tuple of positive ints"):
        dv.annealed_langevin(score, (4, 0), [1.0])


def test_geometric_timesteps_follow_a_geometric_ladder_and_feed_the_score_ladder():
    schedule = dv.linear_schedule(1000)
    ts = dv.geometric_timesteps(schedule, 10, 3.0)
    sigma = ((1 - schedule.alphas_cumprod) / schedule.alphas_cumprod).sqrt()
    assert ts.tolist() == sorted(set(ts.tolist()), reverse=True) and ts[-1] == 0
    targets = np.geomspace(3.0, sigma[0].item(), 10)
    for t, target in zip(ts.tolist(), targets):  # each is the nearest in log σ, by brute force
        assert t == int(np.argmin(np.abs(np.log(sigma.numpy()) - np.log(target))))
    ladder = dv.ddpm_score_ladder(lambda x, t: torch.zeros_like(x), schedule, None, timesteps=ts)
    assert torch.equal(ladder.timesteps, ts) and torch.allclose(ladder.sigmas, sigma[ts])
    with pytest.raises(ValueError, match=r"strictly descending"):
        dv.ddpm_score_ladder(lambda x, t: x, schedule, None, timesteps=[0, 5])
    with pytest.raises(ValueError, match=r"sigma_max must exceed sigma_min"):
        dv.geometric_timesteps(schedule, 5, 0.001)
