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
    (dict(variance="learned_range", model_variance=torch.full((2, 1, 4, 4), float("nan"))), r"model_variance holds NaN"),
    (dict(variance="learned_range", model_variance=torch.zeros(2, 4)), r"must have the shape of x_t \(2, 1, 4, 4\)"),
    (dict(variance="learned"), r"variance must be one of"),
])
def test_ddpm_step_variance_errors_name_the_problem(kwargs, message):
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises((ValueError, TypeError), match=message):
        dv.ddpm_step(dv.linear_schedule(1000), x, 5, x, noise=x, **kwargs)


class WithVariance:
    """An exact mixture denoiser that also outputs a constant v, as a learn_sigma model would: (B, 2D)."""

    def __init__(self, denoiser, v):
        self.denoiser, self.v = denoiser, v

    def __call__(self, x_t, t, y=None):
        eps = self.denoiser(x_t, t)
        return torch.cat([eps, torch.full_like(eps, self.v)], dim=1)


@pytest.mark.parametrize("num_steps", [None, 10])
def test_sample_learned_range_at_v_minus_one_and_one_is_fixed_small_and_fixed_large(num_steps):
    """The whole chain, full or respaced: v = −1 is β̃ and v = 1 is β of the chain being run, bit for bit
    up to float64 → float32 rounding."""
    schedule = dv.linear_schedule(100)
    denoiser = dv.GaussianMixtureDenoiser(torch.tensor([[-1.0, 0.0], [1.0, 0.5]]), 0.2, schedule=schedule)
    for v, fixed in ((-1.0, "fixed_small"), (1.0, "fixed_large")):
        runs = [dv.sample(model, schedule, (64, 2), num_steps=num_steps, variance=variance,
                          generator=torch.Generator().manual_seed(3)).sample
                for model, variance in ((WithVariance(denoiser, v), "learned_range"), (denoiser, fixed))]
        assert torch.allclose(*runs, atol=1e-5), (v, (runs[0] - runs[1]).abs().max())


def test_sample_learned_range_between_the_ends_spreads_between_them():
    """v = 0 (the geometric mean of β̃ and β) gives a final spread between the two fixed variances'."""
    schedule = dv.linear_schedule(100)
    denoiser = dv.GaussianMixtureDenoiser(torch.zeros(1, 2), 0.3, schedule=schedule)
    spread = {v: dv.sample(WithVariance(denoiser, v), schedule, (4000, 2), num_steps=5, variance="learned_range",
                           generator=torch.Generator().manual_seed(0)).sample.std().item() for v in (-1.0, 0.0, 1.0)}
    assert spread[-1.0] < spread[0.0] < spread[1.0], spread


def test_guidance_is_applied_to_eps_only_and_v_comes_from_the_conditional_call():
    calls = []

    def model(x_t, t, y=None):
        calls.append(y)
        eps = torch.full_like(x_t, 1.0 if y is None else 3.0)
        return torch.cat([eps, torch.full_like(x_t, -0.5 if y is None else 0.25)], dim=1)

    x = torch.zeros(2, 2)
    eps, v = dv.sampling.guided_eps_and_variance(model, x, torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long), 2.0)
    assert torch.equal(eps, torch.full_like(x, 1.0 + 2.0 * (3.0 - 1.0))) and torch.equal(v, torch.full_like(x, 0.25))
    assert torch.equal(dv.guided_eps(model, x, 0, torch.ones(2, dtype=torch.long), 2.0), eps)  # v split off
    eps0, v0 = dv.sampling.guided_eps_and_variance(model, x, 0, torch.ones(2, dtype=torch.long), 0.0)
    assert torch.equal(eps0, torch.ones_like(x)) and torch.equal(v0, torch.full_like(x, -0.5))


def test_ddim_uses_eps_of_a_learned_variance_model():
    schedule = dv.linear_schedule(50)
    denoiser = dv.GaussianMixtureDenoiser(torch.zeros(1, 2), 0.3, schedule=schedule)
    runs = [dv.sample(m, schedule, (8, 2), sampler="ddim", num_steps=10, generator=torch.Generator().manual_seed(1)).sample
            for m in (WithVariance(denoiser, 0.7), denoiser)]
    assert torch.equal(*runs)


def test_sample_learned_range_errors_name_the_problem():
    schedule = dv.linear_schedule(10)
    denoiser = dv.GaussianMixtureDenoiser(torch.zeros(1, 2), 0.5, schedule=schedule)
    with pytest.raises(ValueError, match=r"'learned_range' needs a model that outputs ε̂ and v .* returned ε̂ only"):
        dv.sample(denoiser, schedule, (2, 2), variance="learned_range")
    with pytest.raises(ValueError, match=r"DDIM's σ comes from eta"):
        dv.sample(WithVariance(denoiser, 0.0), schedule, (2, 2), sampler="ddim", variance="learned_range")
    with pytest.raises(ValueError, match=r"learn_sigma=False"):
        dv.sample(dv.ToyMLP(dv.ToyConfig(num_timesteps=10)), schedule, (2, 2), variance="learned_range")
    with pytest.raises(ValueError, match=r"returned shape \(2, 3\) for an input of shape \(2, 2\)"):
        dv.sample(lambda x, t: torch.zeros(2, 3), schedule, (2, 2))


def test_learn_sigma_models_output_eps_and_v():
    unet = dv.UNet(dv.unet.preset("tiny", learn_sigma=True))
    assert unet.config.out_channels == 2 and unet(torch.zeros(3, 1, 28, 28), 5).shape == (3, 2, 28, 28)
    toy = dv.ToyMLP(dv.ToyConfig(learn_sigma=True))
    assert toy(torch.zeros(3, 2), 5).shape == (3, 4)
    with pytest.raises(ValueError, match=r"learn_sigma=True needs out_channels = 2 \* in_channels = 2"):
        dv.UNetConfig(learn_sigma=True, out_channels=1)
    with pytest.raises(TypeError, match=r"learn_sigma must be True or False"):
        dv.ToyConfig(learn_sigma="yes")


def test_elbo_of_a_learned_variance_model_uses_v_only_with_learned_range():
    """v = −1 scored with "learned_range" is the ε-only model scored with "fixed_small"; a fixed
    variance ignores v."""
    schedule = dv.linear_schedule(20)
    denoiser = dv.GaussianMixtureDenoiser(torch.zeros(1, 4), 0.5, schedule=schedule)
    x0 = torch.randint(0, 256, (3, 4), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1
    bound = lambda model, variance: dv.elbo(model, schedule, x0, variance=variance, progress=False,  # noqa: E731
                                            generator=torch.Generator().manual_seed(5)).total
    reference = bound(denoiser, "fixed_small")
    assert torch.allclose(bound(WithVariance(denoiser, -1.0), "learned_range"), reference, atol=1e-5)
    assert torch.equal(bound(WithVariance(denoiser, 0.3), "fixed_small"), reference)
    with pytest.raises(ValueError, match=r"needs a model that outputs ε̂ and v"):
        bound(denoiser, "learned_range")


@pytest.mark.parametrize("num_steps", [None, 10])
@pytest.mark.parametrize("s", [1.0, 0.3])
def test_optimal_variance_matches_the_closed_form_for_gaussian_data(s, num_steps):
    """Data N(0, s² I) with its exact denoiser: Cov(x_0 | x_t) = s²(1 − ᾱ)/(ᾱ s² + 1 − ᾱ) per dimension,
    so σ*² = β̃ + c² · that, c = √ᾱ_prev β/(1 − ᾱ) of the chain; at s = 1 it is β itself (Ho et al.'s
    upper extreme). Monte Carlo over 20k points in 2-D: within 4%."""
    from diffviz.oracle import optimal_variance
    schedule = dv.linear_schedule(100)
    denoiser = dv.GaussianMixtureDenoiser(torch.zeros(1, 2), s, schedule=schedule)
    x0 = denoiser.sample_data(20_000, generator=torch.Generator().manual_seed(0))
    got = optimal_variance(denoiser, schedule, x0, num_steps=num_steps, generator=torch.Generator().manual_seed(1))
    kept = got.timesteps.flip(0).tolist()  # ascending, as the chain's steps
    alpha_bar = schedule.alphas_cumprod[kept]
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    beta = 1 - alpha_bar / alpha_bar_prev
    tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    c = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    expected = tilde + c ** 2 * s ** 2 * (1 - alpha_bar) / (alpha_bar * s ** 2 + 1 - alpha_bar)
    assert torch.allclose(got.betas.flip(0), beta) and torch.allclose(got.posterior_variance.flip(0), tilde)
    assert torch.allclose(got.optimal.flip(0), expected, rtol=0.04), (got.optimal.flip(0) / expected)
    if s == 1.0:
        assert torch.allclose(got.optimal, got.betas, rtol=0.04)
    else:  # strictly inside [β̃, β] where the two differ (at t = 0, σ*² is within 0.1% of β: below MC resolution)
        inside = (got.optimal > got.posterior_variance) & (got.optimal < got.betas)
        assert inside[(got.betas > 1.05 * got.posterior_variance) & (got.timesteps > 0)].all()


def test_mixture_spread_of_real_points_is_the_component_std():
    from diffviz.data import gaussian_mixture_params, mixture_spread
    params = gaussian_mixture_params()
    points = dv.load_dataset("gaussian_mixture", split="test", n=20_000).x
    spread, far = mixture_spread(points, params)
    assert spread == pytest.approx(0.1, rel=0.03)
    assert far == pytest.approx(math.exp(-4.5), abs=0.004)  # P(‖z‖ > 3) for z ~ N(0, I₂)
    assert mixture_spread(params.means, params) == (0.0, 0.0)
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        mixture_spread(torch.zeros(3, 3), params)


def test_with_optimal_variance_makes_sample_add_exactly_sigma_star():
    """learned_range with v = 2f* − 1 reproduces σ*²: one DDPM step from a fixed x_t and z, by hand."""
    from diffviz.oracle import optimal_variance, with_optimal_variance
    schedule = dv.linear_schedule(100)
    denoiser = dv.GaussianMixtureDenoiser(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), 0.2, schedule=schedule)
    x0 = denoiser.sample_data(2000, generator=torch.Generator().manual_seed(0))
    optimal = optimal_variance(denoiser, schedule, x0, num_steps=5, generator=torch.Generator().manual_seed(1))
    assert torch.isnan(optimal.fraction[-1]) and ((optimal.fraction[:-1] > 0) & (optimal.fraction[:-1] < 1)).all()
    model = with_optimal_variance(denoiser, optimal)
    chain = dv.respace(schedule, optimal.timesteps)
    x_t, z = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    t_model, i = int(optimal.timesteps[1]), 3  # the second step run is chain index 3 of 0..4
    eps, v = model(x_t, torch.full((4,), t_model)).chunk(2, dim=1)
    step = dv.ddpm_step(chain, x_t, i, eps, noise=z, variance="learned_range", model_variance=v)
    mean = dv.ddpm_step(chain, x_t, i, eps, noise=torch.zeros_like(z)).prev_sample
    assert torch.allclose(step.prev_sample, mean + optimal.optimal[1].sqrt() * z, atol=1e-10)
    with pytest.raises(ValueError, match=r"t=3 is not a step of the chain"):
        model(x_t, torch.full((4,), 3))
