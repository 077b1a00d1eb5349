"""The score view: a noise predictor is a score model, and a score model can drive Langevin dynamics.

The score of the noisy marginal is ∇_x log q_t(x_t). For x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε the best noise
prediction is ε*(x_t, t) = E[ε | x_t] = −√(1 − ᾱ_t)·∇ log q_t(x_t) (Vincent 2011, denoising score
matching; Song et al. 2021, Sec. 2.2, which writes DDPM's loss as score matching), so a trained ε̂
gives the score:
    ∇ log q_t(x_t) ≈ −ε̂(x_t, t) / √(1 − ᾱ_t).

The same marginals in the variance-exploding (VE) picture of Song & Ermon 2019: x̃ = x_t / √ᾱ_t =
x_0 + σ_t·ε with σ_t = √((1 − ᾱ_t)/ᾱ_t), whose score is ∇ log p_σ(x̃) = −ε̂(√ᾱ_t·x̃, t) / σ_t.
``ddpm_score_ladder`` builds that ladder of noise levels from any ε-model, and ``annealed_langevin``
samples from it (Song & Ermon 2019, Algorithm 1).

Timesteps are 0-based in [0, T−1]; code t = k is the paper's t = k + 1 (see ``diffviz.schedules``).
Noise levels are indexed i = 0..L−1 here, largest σ first (the paper's σ_1 > ... > σ_L).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch

from .diffusion import check_schedule, check_step_inputs
from .schedules import extract, sampling_timesteps
from .validate import check_bool, check_generator, check_num_steps, check_shape, finite_number, float_tensor, positive_int


def score_from_eps(schedule, eps, t):
    """The score of the noisy marginal from a noise prediction (Vincent 2011; Song et al. 2021, Sec. 2.2):
    ∇_x log q_t(x_t) = −ε / √(1 − ᾱ_t).

    Args: eps (B, ...) floating point, ε̂(x_t, t) (exact for ε* = E[ε | x_t]);
          t int or (B,) int64 in [0, T−1] (code t = k is the paper's t = k + 1).
    Returns: the score, same shape and dtype as eps.
    """
    t = check_step_inputs(schedule, t, eps=eps)
    sqrt_one_minus_alpha_bar_t = extract((1 - schedule.alphas_cumprod).sqrt(), t, eps)  # (B, 1, ..., 1)
    return -eps / sqrt_one_minus_alpha_bar_t


def eps_from_score(schedule, score, t):
    """The inverse of ``score_from_eps``: ε = −√(1 − ᾱ_t) · ∇_x log q_t(x_t).

    Args: score (B, ...) floating point; t int or (B,) int64 in [0, T−1].
    Returns: ε, same shape and dtype as score.
    """
    t = check_step_inputs(schedule, t, score=score)
    sqrt_one_minus_alpha_bar_t = extract((1 - schedule.alphas_cumprod).sqrt(), t, score)  # (B, 1, ..., 1)
    return -sqrt_one_minus_alpha_bar_t * score


class ScoreLadder(NamedTuple):
    sigmas: torch.Tensor  # (L,) float64, VE noise levels σ_i = √((1 − ᾱ_t)/ᾱ_t), descending
    timesteps: torch.Tensor  # (L,) int64, the DDPM timestep t behind each level, descending
    score_fn: Callable  # score_fn(x̃ (B, ...), i) → ∇ log p_{σ_i}(x̃), for ``annealed_langevin``


class LangevinOutput(NamedTuple):
    sample: torch.Tensor  # (*shape) the state after the last step of the last level
    levels: Optional[torch.Tensor]  # (L, *shape) the state at the end of each level (record=True), else None


def geometric_timesteps(schedule, num_levels, sigma_max, sigma_min=None) -> torch.Tensor:
    """Timesteps whose VE noise levels σ_t = √((1 − ᾱ_t)/ᾱ_t) come closest (in log σ) to a geometric
    ladder from ``sigma_max`` down to ``sigma_min`` (default: the schedule's smallest σ, at t = 0), as
    Song & Ermon 2019 (Sec. 4.2) space their levels; σ_max about the largest distance between data
    points. Returns (L',) int64, descending, without repeats (L' ≤ ``num_levels``)."""
    check_schedule(schedule)
    num_levels = check_num_steps(num_levels, schedule.num_timesteps, name="num_levels")
    log_sigma = 0.5 * ((1 - schedule.alphas_cumprod) / schedule.alphas_cumprod).log()  # (T,) ascending in t
    low = log_sigma[0].item() if sigma_min is None else math.log(finite_number("sigma_min", sigma_min, low=0, low_open=True))
    high = math.log(finite_number("sigma_max", sigma_max, low=0, low_open=True))
    if high <= low:
        raise ValueError(f"sigma_max must exceed sigma_min ({math.exp(low):.3g}), got {sigma_max!r}")
    targets = torch.linspace(high, low, num_levels, dtype=torch.float64)  # (L,) descending
    nearest = (log_sigma[None, :] - targets[:, None]).abs().argmin(1)  # (L,)
    return torch.unique_consecutive(nearest)


def ddpm_score_ladder(eps_model, schedule, num_levels, timestep_spacing="linspace", timesteps=None) -> ScoreLadder:
    """A DDPM ε-model as a noise-conditional score model (the VP → VE correspondence).

    For timestep t, x̃ = x_t/√ᾱ_t = x_0 + σ_t·ε with σ_t = √((1 − ᾱ_t)/ᾱ_t), and
    ∇ log p_{σ_t}(x̃) = √ᾱ_t · ∇ log q_t(√ᾱ_t·x̃) = −ε̂(√ᾱ_t·x̃, t) / σ_t.

    Args: eps_model(x_t (B, ...), t (B,) int64) → ε̂ (B, ...): a trained model, or any callable such as
          ``oracle.GaussianMixtureDenoiser``; num_levels L in [1, T]: the levels sit at the timesteps
          ``sampling_timesteps(T, L, timestep_spacing)`` visits (largest t, hence largest σ, first).
          The default "linspace" spans t = T − 1 to t = 0, so the last level has the smallest σ the
          schedule knows (√(β_1/(1 − β_1)) = 0.01 for the linear one, Song & Ermon's σ_L); "trailing"
          would stop at t = T/L − 1, a much noisier last level. ``timesteps`` (descending), e.g. from
          ``geometric_timesteps``, replace num_levels and the spacing.
    Returns: ScoreLadder(sigmas, timesteps, score_fn) with score_fn(x̃, i) for level i in [0, L−1].
    """
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t), got {type(eps_model).__name__}")
    check_schedule(schedule)
    if timesteps is None:
        num_levels = check_num_steps(num_levels, schedule.num_timesteps, name="num_levels")
        timesteps = sampling_timesteps(schedule.num_timesteps, num_levels, timestep_spacing)  # (L,) descending
    else:
        timesteps = torch.as_tensor(timesteps, dtype=torch.long).reshape(-1)
        if timesteps.numel() == 0 or (timesteps[1:] >= timesteps[:-1]).any() or timesteps[0] >= schedule.num_timesteps \
                or timesteps[-1] < 0:
            raise ValueError(f"timesteps must be strictly descending ints in [0, {schedule.num_timesteps - 1}], "
                             f"got {timesteps.tolist()}")
    alpha_bar = schedule.alphas_cumprod[timesteps]  # (L,) float64
    sigmas = ((1 - alpha_bar) / alpha_bar).sqrt()  # (L,) descending

    def score_fn(x, i):
        t = torch.full((x.shape[0],), int(timesteps[i]), dtype=torch.long, device=x.device)  # (B,)
        eps_pred = eps_model(alpha_bar[i].sqrt().item() * x, t)  # ε̂(√ᾱ_t·x̃, t)
        return -eps_pred / sigmas[i].item()

    return ScoreLadder(sigmas, timesteps, score_fn)


def _check_sigmas(sigmas) -> torch.Tensor:
    try:
        values = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"sigmas must be a 1-D sequence or tensor of numbers, got {sigmas!r}") from err
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(values.shape)}")
    if not torch.isfinite(values).all() or (values <= 0).any():
        raise ValueError(f"sigmas must be finite and > 0, got {values.tolist()}")
    if (values[1:] >= values[:-1]).any():
        raise ValueError(f"sigmas must be strictly descending (σ_1 > ... > σ_L), got {values.tolist()}")
    return values


def _start(shape, sigma_max, generator, x_init, device):
    """x_init (checked) or a draw of N(0, σ_1² I) on the generator's device, moved to ``device``."""
    if x_init is not None:
        float_tensor("x_init", x_init)
        if tuple(x_init.shape) != shape:
            raise ValueError(f"x_init must have shape {shape}, got {tuple(x_init.shape)}")
        return x_init.to(device) if device is not None else x_init.clone()
    device = torch.device(device) if device is not None else (
        generator.device if generator is not None else torch.device("cpu"))
    noise_device = generator.device if generator is not None else device
    return (sigma_max * torch.randn(shape, generator=generator, device=noise_device)).to(device)


@torch.no_grad()
def annealed_langevin(score_fn, shape, sigmas, steps_per_level=100, step_size=2e-5, generator=None,
                      x_init=None, record=False, device=None) -> LangevinOutput:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1). For each level σ_i, largest first:
        α_i = ε · σ_i² / σ_L²,   then T times:   x ← x + (α_i / 2) · s(x, σ_i) + √α_i · z,  z ~ N(0, I).

    The step α_i shrinks with σ_i² so that the signal-to-noise of a step stays the same at every
    level; ε (``step_size``) is the step at the last, smallest level, and ε/σ_L² must stay well below 1
    (≈ 0.1–0.5) or the first levels overshoot. Song & Ermon use ε = 2e-5 with σ_L = 0.01, T = 100.
    No denoising step is added at the end: the sample carries noise of about σ_L.

    Args: score_fn(x (B, ...), i) → score at level i (an int in [0, L−1], σ_i = sigmas[i]), same shape
          as x: one clear interface, the level index, as NCSN's network is conditioned on it
          (``ddpm_score_ladder`` makes one from an ε-model);
          shape (B, ...) of the samples; sigmas (L,) strictly descending positive noise levels;
          steps_per_level T ≥ 1; step_size ε > 0; generator for every random draw;
          x_init (B, ...) the start (default N(0, σ_1² I), drawn from ``generator``, float32);
          record: keep the state at the end of every level; device: where x lives (default x_init's,
          else the generator's, else the CPU).
    Returns: LangevinOutput(sample (*shape), levels (L, *shape) on the CPU or None).
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, level_index), got {type(score_fn).__name__}")
    shape = check_shape(shape)
    sigmas = _check_sigmas(sigmas)
    steps_per_level = positive_int("steps_per_level", steps_per_level)
    step_size = finite_number("step_size", step_size, low=0, low_open=True)
    check_generator(generator)
    check_bool("record", record)
    x = _start(shape, sigmas[0].item(), generator, x_init, device)  # (B, ...)
    noise_device = generator.device if generator is not None else x.device
    levels = []
    for i, sigma_i in enumerate(sigmas.tolist()):
        alpha_i = step_size * sigma_i**2 / sigmas[-1].item() ** 2  # α_i = ε·σ_i²/σ_L²
        for _ in range(steps_per_level):
            z = torch.randn(shape, generator=generator, device=noise_device, dtype=x.dtype).to(x.device)
            x = x + 0.5 * alpha_i * score_fn(x, i) + alpha_i**0.5 * z
        if record:
            levels.append(x.detach().cpu().clone())
    return LangevinOutput(x, torch.stack(levels) if record else None)
