"""diffviz.schedule_mapping and sample(..., inference_schedule=): another schedule's ᾱ at inference.

The mapping is checked against a brute-force float64 argmin over every training timestep (numpy, in
log-SNR), and the sampler run along the mapped timesteps against a scalar variance recursion.
Timesteps are 0-based: code t = k is the paper's t = k + 1.
"""
import numpy as np
import pytest
import torch

import diffviz as dv
from diffviz.schedule_mapping import nearest_log_snr

T = 1000
LINEAR, COSINE = dv.linear_schedule(T), dv.cosine_schedule(T)
SPACINGS = ("trailing", "leading", "linspace")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def brute_force_nearest(train, inference, num_steps, spacing):
    """argmin over ALL training t of |λ_train(t) − λ_inf(τ)|, λ = log(ᾱ/(1 − ᾱ)) from ᾱ in float64 numpy."""
    def log_snr(schedule):
        a = schedule.alphas_cumprod.numpy()
        return np.log(a / (1.0 - a))

    taus = dv.sampling_timesteps(inference.num_timesteps, num_steps, spacing).numpy()
    distance = np.abs(log_snr(train)[None, :] - log_snr(inference)[taus][:, None])  # (S, T)
    return distance.argmin(axis=1), distance.min(axis=1)


@pytest.mark.parametrize("name", ["linear", "cosine", "quadratic", "sigmoid"])
def test_a_schedule_onto_itself_is_the_identity(name):
    schedule = dv.get_schedule(name, T)
    full = dv.timesteps_for_schedule(schedule, schedule)
    assert full.timesteps.tolist() == list(range(T - 1, -1, -1)) and full.num_merged == 0
    assert torch.all(full.error_log_snr == 0)
    assert torch.equal(full.alphas_cumprod_mapped, full.alphas_cumprod_asked)
    for steps in (1, 7, 50):
        for spacing in SPACINGS:
            mapping = dv.timesteps_for_schedule(schedule, dv.get_schedule(name, T), steps, spacing)
            assert mapping.timesteps.tolist() == dv.sampling_timesteps(T, steps, spacing).tolist()


@pytest.mark.parametrize("train,inference", [(LINEAR, COSINE), (COSINE, LINEAR), (LINEAR, dv.cosine_schedule(50)),
                                             (dv.linear_schedule(100), COSINE)])
@pytest.mark.parametrize("steps,spacing", [(10, "trailing"), (25, "linspace"), (50, "leading"), (None, "trailing")])
def test_every_mapped_alpha_bar_is_the_nearest_available(train, inference, steps, spacing):
    mapping = dv.timesteps_for_schedule(train, inference, steps, spacing)
    expected, gap = brute_force_nearest(train, inference, steps, spacing)
    assert mapping.mapped_timesteps.tolist() == expected.tolist()
    assert np.allclose(mapping.error_log_snr.abs().numpy(), gap, rtol=1e-9, atol=1e-9)
    assert torch.equal(mapping.alphas_cumprod_mapped, train.alphas_cumprod[mapping.mapped_timesteps])
    # what the sampler visits: the mapped ones, descending, each once
    kept = mapping.timesteps.tolist()
    assert kept == sorted(set(expected.tolist()), reverse=True)
    assert mapping.num_merged == len(expected) - len(kept) and len(mapping) == len(kept)


def test_linear_to_cosine_10_steps_golden_and_range_rules():
    mapping = dv.timesteps_for_schedule(LINEAR, COSINE, 10)
    assert mapping.timesteps.tolist() == [999, 605, 481, 394, 323, 260, 203, 150, 98, 48]
    # cosine's ᾱ at t = 999 (2.4e-9) lies below linear's smallest (4.0e-5): it maps to T − 1, and says so
    assert mapping.alphas_cumprod_asked[0] < LINEAR.alphas_cumprod[-1]
    assert mapping.mapped_timesteps[0] == T - 1 and mapping.error_log_snr[0] > 9
    assert mapping.error_log_snr[1:].abs().max() < 0.02  # inside the range: close
    # a short training schedule (ᾱ ≥ 0.36): all the noisier cosine steps pile up on t = 99, kept once
    short = dv.timesteps_for_schedule(dv.linear_schedule(100), COSINE, 10)
    assert short.timesteps[0] == 99 and short.num_merged > 0 and (short.mapped_timesteps == 99).sum() > 1
    # an inference ᾱ above the training schedule's largest maps to t = 0
    rough = dv.linear_schedule(T, beta_start=0.01, beta_end=0.02)
    assert dv.timesteps_for_schedule(rough, LINEAR, T).mapped_timesteps[-1] == 0


def test_nearest_log_snr_at_the_ends_and_on_ties():
    train = torch.tensor([3.0, 1.0, -1.0, -float("inf")])  # ᾱ = 0 at the last timestep
    asked = torch.tensor([10.0, 2.0, 0.0, -0.5, -5.0, -float("inf"), float("inf")])
    assert nearest_log_snr(train, asked).tolist() == [0, 0, 1, 2, 2, 3, 0]  # ties (2.0, 0.0) → smaller t
    assert nearest_log_snr(train[:3], asked[-2:]).tolist() == [2, 0]  # ±inf beyond finite ends: those ends
    with_zero = dv.from_betas([0.1, 0.5, 1.0])  # ᾱ = 0.9, 0.45, 0 (λ = −inf): 0.9 and 0.45 as brute force finds
    log_snr = LINEAR.log_snr
    assert [int((log_snr - np.log(a / (1 - a))).abs().argmin()) for a in (0.45, 0.9)] == [277, 97]
    assert dv.timesteps_for_schedule(LINEAR, with_zero).mapped_timesteps.tolist() == [T - 1, 277, 97]


def test_no_inference_schedule_or_the_training_one_is_bit_identical():
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    oracle = dv.GaussianMixtureDenoiser(means, 0.3, schedule=LINEAR)
    for sampler, steps in (("ddpm", 20), ("ddim", 10), ("ddpm", None)):
        kwargs = dict(sampler=sampler, num_steps=steps, eta=0.5 if sampler == "ddim" else 0.0)
        before = dv.sample(oracle, LINEAR, (64, 2), generator=gen(2), **kwargs)
        for other in (None, dv.linear_schedule(T)):
            after = dv.sample(oracle, LINEAR, (64, 2), generator=gen(2), inference_schedule=other, **kwargs)
            assert torch.equal(after.sample, before.sample) and torch.equal(after.x_t, before.x_t)
            assert torch.equal(after.timesteps, before.timesteps)


def predicted_variance(schedule, kept, sampler, s2):
    """Var(x_0) of a sampler visiting ``kept`` for N(μ, s² I) data with the exact ε*: every step is affine,
    x_prev = A·x_t + c + B·z, so v_prev = A²·v + B² (DDIM η = 0: Song et al. Eq. 12; DDPM: the respaced
    chain's posterior, Ho et al. Eqs. 6–7), written from the papers, not from diffviz.diffusion."""
    abar, var = schedule.alphas_cumprod.tolist(), 1.0
    for i, t in enumerate(kept):
        a, a_prev = abar[t], (abar[kept[i + 1]] if i + 1 < len(kept) else 1.0)
        v = a * s2 + 1 - a
        x0_gain, eps_gain = a**0.5 * s2 / v, (1 - a) ** 0.5 / v
        if sampler == "ddim":
            A, sig2 = a_prev**0.5 * x0_gain + (1 - a_prev) ** 0.5 * eps_gain, 0.0
        else:
            beta = 1 - a / a_prev
            sig2 = (1 - a_prev) / (1 - a) * beta
            A = a_prev**0.5 * beta / (1 - a) * x0_gain + (1 - beta) ** 0.5 * (1 - a_prev) / (1 - a)
        var = A**2 * var + sig2
    return var


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_along_another_schedule_with_the_exact_denoiser(sampler):
    seen = []
    mean, std = torch.tensor([[1.0, -0.5]]), 0.5
    oracle = dv.GaussianMixtureDenoiser(mean, std, schedule=LINEAR)

    def watched(x, t, y=None):
        seen.append(int(t[0]))
        return oracle(x, t)

    traj = dv.sample(watched, LINEAR, (6000, 2), sampler=sampler, num_steps=10, generator=gen(1),
                     inference_schedule=COSINE)
    kept = dv.timesteps_for_schedule(LINEAR, COSINE, 10).timesteps.tolist()
    assert traj.timesteps.tolist() == kept == seen
    assert torch.allclose(traj.sample.mean(0), mean[0], atol=0.03)
    var = predicted_variance(LINEAR, kept, sampler, std**2)
    assert torch.allclose(traj.sample.std(0), torch.full((2,), var**0.5), rtol=0.03)
    # with a 50-step cosine schedule, num_steps=None means all 50 of ITS steps (not the training T)
    short = dv.sample(oracle, LINEAR, (4, 2), sampler=sampler, inference_schedule=dv.cosine_schedule(50),
                      record=False)
    assert short.timesteps.tolist() == dv.timesteps_for_schedule(LINEAR, dv.cosine_schedule(50)).timesteps.tolist()
    # the same mixture, two components: weights come back along the cosine ᾱ, too
    mixture = dv.GaussianMixtureDenoiser(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.3, weights=[0.3, 0.7],
                                         schedule=LINEAR)
    x = dv.sample(mixture, LINEAR, (3000, 2), sampler=sampler, num_steps=50, generator=gen(3), record=False,
                  inference_schedule=COSINE).sample
    assert (x[:, 0] < 0).float().mean().item() == pytest.approx(0.3, abs=0.03)


def test_bad_inputs_name_the_argument():
    oracle = dv.GaussianMixtureDenoiser(torch.zeros(1, 2), 1.0, schedule=LINEAR)
    with pytest.raises(TypeError, match="inference_schedule must be a NoiseSchedule.*got str"):
        dv.sample(oracle, LINEAR, (2, 2), inference_schedule="cosine")
    with pytest.raises(TypeError, match="train_schedule must be a NoiseSchedule"):
        dv.timesteps_for_schedule(LINEAR.betas, COSINE)
    with pytest.raises(ValueError, match=r"num_steps must be an int in \[1, 50\]"):
        dv.timesteps_for_schedule(LINEAR, dv.cosine_schedule(50), 100)
    with pytest.raises(ValueError, match="num_steps must be an int in"):
        dv.sample(oracle, LINEAR, (2, 2), num_steps=100, inference_schedule=dv.cosine_schedule(50))
    with pytest.raises(TypeError, match="num_steps"):
        dv.timesteps_for_schedule(LINEAR, COSINE, 2.5)
    with pytest.raises(ValueError, match="timestep_spacing 'middle'"):
        dv.timesteps_for_schedule(LINEAR, COSINE, 10, "middle")
