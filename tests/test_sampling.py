"""sample() with the exact ε* of known distributions must reproduce those distributions."""
import pytest
import torch

import diffviz as dv

SCHED = dv.linear_schedule(1000)
MEAN, STD = torch.tensor([[1.0, -0.5]]), 0.5


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def predicted_final_variance(schedule, sampler, num_steps, eta, spacing, s2):
    """Var(x_0) that a sampler gives for N(μ, s²) data with the exact ε*, by a scalar recursion.

    For Gaussian data every step is affine in x_t: x_prev = A·x_t + c + B·z, so the variance obeys
    v_prev = A²·v + B². Written from the papers' equations, independently of diffviz.diffusion.
    """
    T = schedule.num_timesteps
    abar = [float(a) for a in schedule.alphas_cumprod]
    kept = dv.sampling_timesteps(T, num_steps or T, spacing).tolist()
    var = 1.0  # x_T ~ N(0, 1)
    for i, t in enumerate(kept):
        a, prev_t = abar[t], (kept[i + 1] if i + 1 < len(kept) else -1)
        a_prev = 1.0 if prev_t < 0 else abar[prev_t]
        v = a * s2 + 1 - a  # Var(x_t) under the true marginal
        x0_gain, eps_gain = a**0.5 * s2 / v, (1 - a) ** 0.5 / v  # x̂0 = x0_gain·x_t + ..., ε* = eps_gain·x_t + ...
        if sampler == "ddim":
            sig2 = eta**2 * (1 - a_prev) / (1 - a) * (1 - a / a_prev)  # Song et al. Eq. 16
            A = a_prev**0.5 * x0_gain + (1 - a_prev - sig2) ** 0.5 * eps_gain
        else:  # DDPM on the respaced chain: β'_t = 1 − ᾱ_t/ᾱ_prev, posterior Eqs. 6–7
            beta = 1 - a / a_prev
            sig2 = (1 - a_prev) / (1 - a) * beta
            A = a_prev**0.5 * beta / (1 - a) * x0_gain + (1 - beta) ** 0.5 * (1 - a_prev) / (1 - a)
        var = A**2 * var + sig2
    return var


@pytest.mark.parametrize(
    "kwargs",
    [dict(sampler="ddpm"), dict(sampler="ddpm", num_steps=100),
     dict(sampler="ddim", num_steps=50), dict(sampler="ddim", num_steps=100, eta=1.0),
     dict(sampler="ddim", num_steps=50, timestep_spacing="leading")],
)
def test_sampling_a_gaussian_with_its_exact_denoiser(kwargs):
    oracle = dv.GaussianMixtureDenoiser(MEAN, STD, schedule=SCHED)
    traj = dv.sample(oracle, SCHED, (8000, 2), generator=gen(), record=False, **kwargs)
    x = traj.sample
    assert torch.allclose(x.mean(0), MEAN[0], atol=0.03)
    # Few-step samplers shrink the spread even with a perfect denoiser (a discretisation error the
    # recursion predicts); the full 1000-step DDPM chain reproduces the data distribution.
    var = predicted_final_variance(SCHED, kwargs["sampler"], kwargs.get("num_steps"), kwargs.get("eta", 0.0),
                                   kwargs.get("timestep_spacing", "trailing"), STD**2)
    assert torch.allclose(x.std(0), torch.full((2,), var**0.5), rtol=0.03)
    if kwargs == dict(sampler="ddpm"):
        assert var**0.5 == pytest.approx(STD, rel=0.01)  # β̃ ("fixed_small") is a hair too small
        assert torch.allclose(x.std(0), torch.full((2,), STD), rtol=0.03)


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 100)])
def test_sampling_a_gaussian_mixture_recovers_weights_and_widths(sampler, steps):
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    oracle = dv.GaussianMixtureDenoiser(means, 0.3, weights=[0.3, 0.7], schedule=SCHED)
    x = dv.sample(oracle, SCHED, (3000, 2), sampler=sampler, num_steps=steps, generator=gen(1),
                  record=False).sample
    left = x[:, 0] < 0
    assert left.float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert x[left, 0].std().item() == pytest.approx(0.3, rel=0.08)
    assert x[~left, 0].mean().item() == pytest.approx(2.0, abs=0.03)


def test_trajectory_records_consistent_x0_hat():
    oracle = dv.GaussianMixtureDenoiser(MEAN, STD, schedule=SCHED)
    traj = dv.sample(oracle, SCHED, (4, 2), sampler="ddpm", num_steps=20, generator=gen())
    assert traj.x_t.shape == traj.eps.shape == traj.x0_hat.shape == (20, 4, 2)
    assert traj.timesteps.tolist() == dv.sampling_timesteps(1000, 20, "trailing").tolist()
    for i in range(20):
        t = int(traj.timesteps[i])
        assert torch.allclose(traj.x0_hat[i], dv.predict_x0(SCHED, traj.x_t[i], t, traj.eps[i]), atol=1e-5)
        assert torch.allclose(traj.eps[i], oracle(traj.x_t[i], torch.full((4,), t)), atol=1e-5)
    # the sampler's own chain: x_t[i+1] came out of step i, and the last step has no noise
    last = dv.ddpm_step(dv.respace(SCHED, traj.timesteps), traj.x_t[-1], 0, traj.eps[-1])
    assert torch.allclose(traj.sample, last.prev_sample, atol=1e-5)


def test_same_generator_same_samples_and_record_false():
    oracle = dv.GaussianMixtureDenoiser(MEAN, STD, schedule=SCHED)
    a = dv.sample(oracle, SCHED, (5, 2), num_steps=30, generator=gen(3))
    b = dv.sample(oracle, SCHED, (5, 2), num_steps=30, generator=gen(3), record=False)
    assert torch.equal(a.sample, b.sample)
    assert b.x_t is None and b.eps is None and b.x0_hat is None and len(b) == 30


def test_classifier_free_guidance_combination():
    calls = []

    def model(x, t, y=None):
        calls.append(y)
        return torch.full_like(x, 1.0 if y is None else 3.0)

    eps = dv.sampling.guided_eps(model, torch.zeros(2, 2), torch.zeros(2, dtype=torch.long),
                                 torch.tensor([1, 2]), guidance_scale=2.5)
    assert torch.allclose(eps, torch.full((2, 2), 1.0 + 2.5 * (3.0 - 1.0)))
    assert calls[0] is None and calls[1].tolist() == [1, 2]
    traj = dv.sample(model, SCHED, (2, 2), sampler="ddim", num_steps=5, y=3, guidance_scale=0.0)
    assert torch.allclose(traj.eps, torch.ones_like(traj.eps))  # w = 0: unconditional


def test_sample_rejects_bad_arguments():
    oracle = dv.GaussianMixtureDenoiser(MEAN, STD, schedule=SCHED)
    with pytest.raises(ValueError, match="sampler must be one of"):
        dv.sample(oracle, SCHED, (2, 2), sampler="euler")
    with pytest.raises(ValueError, match="num_steps"):
        dv.sample(oracle, SCHED, (2, 2), num_steps=0)
    with pytest.raises(ValueError, match="shape"):
        dv.sample(oracle, SCHED, (2, -1))
    with pytest.raises(ValueError, match="guidance_scale needs"):
        dv.sample(oracle, SCHED, (2, 2), guidance_scale=3.0)
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        dv.sample(oracle, SCHED, (2, 2), y=torch.tensor([1, 2, 3]))


# ----- golden numbers: sampling must stay the same when the code around it is reorganised -----
def _randomized(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def _golden_runs():
    """A few short runs over every knob: DDPM/DDIM, spacings, η, guidance, clipping, variance, x_T."""
    from diffviz.toy import ToyConfig, ToyMLP
    from diffviz.unet import UNet, UNetConfig

    cfg = dict(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
               attention_resolutions=(4,), groups=4)
    unet = _randomized(UNet(UNetConfig(**cfg)), 0)
    cond = _randomized(UNet(UNetConfig(**cfg, num_classes=3)), 2)
    toy = _randomized(ToyMLP(ToyConfig()), 4)
    oracle = dv.GaussianMixtureDenoiser([[1.0, -0.5]], 0.5, schedule=SCHED)
    return {
        "unet_ddpm": dv.sample(unet, SCHED, (2, 1, 8, 8), num_steps=5, generator=gen(1)),
        "unet_ddim_guided": dv.sample(cond, SCHED, (2, 1, 8, 8), sampler="ddim", num_steps=4, eta=0.5,
                                      y=[0, 2], guidance_scale=2.5, generator=gen(3),
                                      timestep_spacing="leading", clip_sample=True),
        "toy_ddpm_large": dv.sample(toy, dv.cosine_schedule(100), (5, 2), num_steps=6, generator=gen(5),
                                    timestep_spacing="linspace", variance="fixed_large"),
        "oracle_ddim": dv.sample(oracle, SCHED, (3, 2), sampler="ddim", num_steps=5,
                                 x_T=torch.randn(3, 2, generator=gen(6))),
    }


# Recorded before the validate-once refactor (torch 2.13 CPU, one thread). On that machine the new
# code gives the same bits; the tolerance only allows for another CPU's float kernels.
GOLDEN = {  # name: (timesteps, first 4 values of the sample, Σ|x̂_0| over the run, Σ|ε̂| over the run)
    "unet_ddpm": ([999, 799, 599, 399, 199], [-244.82589721679688, -169.96768188476562, -103.107666015625,
                                              -234.7092742919922], 79540.87205296755, 54.93779183924198),
    "unet_ddim_guided": ([750, 500, 250, 0], [-1.0, 1.0, 0.34358298778533936, -1.0],
                         2331.3140499815345, 7.511313941329718),
    "toy_ddpm_large": ([99, 79, 59, 40, 20, 0], [-1104.5877685546875, -926.6748657226562, -1200.9705810546875,
                                                 1550.3265380859375], 98852.6049194336, 1668.889878956601),
    "oracle_ddim": ([999, 799, 599, 399, 199], [0.506222128868103, -0.7600451111793518, 1.1869604587554932,
                                                -0.6825400590896606], 22.006544172763824, 27.943797886371613),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_sampling_matches_numbers_recorded_before_the_refactor(name):
    traj = _golden_runs()[name]
    timesteps, first, x0_sum, eps_sum = GOLDEN[name]
    assert traj.timesteps.tolist() == timesteps
    assert traj.sample.flatten()[:4].tolist() == pytest.approx(first, rel=1e-6, abs=1e-6)
    assert float(traj.x0_hat.double().abs().sum()) == pytest.approx(x0_sum, rel=1e-6)
    assert float(traj.eps.double().abs().sum()) == pytest.approx(eps_sum, rel=1e-6)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_trajectory_timesteps_are_the_ones_the_model_saw(sampler, spacing):
    """Explorers read trajectory.timesteps instead of recomputing them: they must be exactly the
    model's t at each step, for every spacing (DDPM with fewer steps runs a respaced chain)."""
    seen = []

    def model(x, t, y=None):
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    traj = dv.sample(model, SCHED, (2, 2), sampler=sampler, num_steps=7, eta=0.3, timestep_spacing=spacing,
                     record=False)
    assert traj.timesteps.tolist() == seen == dv.sampling_timesteps(1000, 7, spacing).tolist()
    assert (traj.sampler, traj.timestep_spacing, traj.guidance_scale) == (sampler, spacing, None)
    assert traj.eta == (0.3 if sampler == "ddim" else 0.0)
