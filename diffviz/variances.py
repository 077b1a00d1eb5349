"""The variance σ_t² of a reverse step p_θ(x_{t−1} | x_t), by the names diffusers and improved-diffusion use.

- "fixed_small": σ_t² = β̃_t, the posterior variance (Ho et al. 2020, Sec. 3.2);
- "fixed_large": σ_t² = β_t, the forward step's variance;
- "learned_range": the network outputs v per pixel and
  log σ_t² = f·log β_t + (1 − f)·log β̃_t with f = (v + 1)/2 (Nichol & Dhariwal 2021, Eq. 15).
  v ∈ [−1, 1] spans [β̃_t, β_t]; like the paper (and improved-diffusion, diffusers) v is not clamped,
  so a v just outside extrapolates a little. A model with ``learn_sigma=True`` outputs 2C channels:
  ε̂ in the first C, v in the last C (``split_model_output``).
β̃ is 0 at code t = 0, so the log uses β̃ of code t = 1 there ("clipped", as Ho et al.'s and Nichol
& Dhariwal's code do). A sampler adds no noise at code t = 0 whatever the variance.
"""
from __future__ import annotations

import torch

from . import validate
from .schedules import extract

VARIANCE_TYPES = ("fixed_small", "fixed_large", "learned_range")


def check_model_variance(variance: str, model_variance, like: torch.Tensor):
    """The rule for ``model_variance``: given exactly when ``variance`` is "learned_range", shaped
    like ``like``, and finite (v ∈ [−1, 1] spans [β̃, β]; outside, Eq. 15 extrapolates)."""
    validate.one_of("variance", variance, VARIANCE_TYPES)
    if (variance == "learned_range") != (model_variance is not None):
        given = "given" if model_variance is not None else "None"
        raise ValueError("model_variance is needed with variance='learned_range' and only then, "
                         f"got variance={variance!r} and model_variance {given}")
    if model_variance is None:
        return None
    model_variance = validate.float_tensor("model_variance", model_variance)
    if model_variance.shape != like.shape:
        raise ValueError(f"model_variance must have the shape of x_t {tuple(like.shape)}, got {tuple(model_variance.shape)}")
    if not torch.isfinite(model_variance.detach()).all():
        raise ValueError("model_variance holds NaN or inf (it is the network's raw output v, Nichol & Dhariwal Eq. 15)")
    return model_variance


def split_model_output(model_output: torch.Tensor, x_t: torch.Tensor):
    """(ε̂, v) from a network's output: a model with ``learn_sigma=True`` returns 2C channels (dim 1),
    ε̂ in the first C and the raw variance v of Eq. 15 in the last C, as improved-diffusion's and
    diffusers' learned-variance models do; a C-channel output is (ε̂, None).

    Args: model_output (B, C, ...) or (B, 2C, ...); x_t (B, C, ...), the model's input.
    """
    if model_output.shape == x_t.shape:
        return model_output, None
    doubled = (x_t.shape[0], 2 * x_t.shape[1], *x_t.shape[2:])
    if model_output.shape != doubled:
        raise ValueError(f"the model returned shape {tuple(model_output.shape)} for an input of shape "
                         f"{tuple(x_t.shape)}; expected ε̂ of the input's shape, or {doubled} (ε̂ and v, learn_sigma)")
    return model_output.chunk(2, dim=1)


def model_log_variance(schedule, t, like, variance="fixed_small", model_variance=None) -> torch.Tensor:
    """log σ_t² in float64: (B, 1, ..., 1) for the fixed types, like ``model_variance`` for
    "learned_range". At code t = 0 the β̃ of code t = 1 stands in for β̃_0 = 0 (for "fixed_large"
    too, as Ho et al.'s code does); arguments already checked."""
    clipped = schedule.posterior_variance.clone()
    clipped[0] = clipped[1] if schedule.num_timesteps > 1 else schedule.betas[0]
    log_small = extract(clipped.log(), t, like, dtype=torch.float64)
    if variance == "fixed_small":
        return log_small
    if variance == "fixed_large":
        large = torch.cat([clipped[:1], schedule.betas[1:]])
        return extract(large.log(), t, like, dtype=torch.float64)
    f = (model_variance.double() + 1) / 2  # "learned_range": v ∈ [−1, 1] → f ∈ [0, 1]
    return f * extract(schedule.betas.log(), t, like, dtype=torch.float64) + (1 - f) * log_small
