"""The Gaussian diffusion equations: forward process, posterior, and one reverse step.

Shapes: x_0, x_t, ε are (B, ...) of any rank — (B, C, H, W) for images, (B, 2) for 2-D toys.
``t`` is an int (the same step for the whole batch) or a (B,) int64 tensor, 0-based in [0, T-1];
code ``t = k`` is the paper's ``t = k + 1`` (see ``diffviz.schedules``).

The sampler steps never call a model: they take the model's ε prediction as an argument, like
diffusers' ``scheduler.step``. ``diffviz.sampling.sample`` runs the loop.

Every public function checks its arguments (``diffviz.validate``), once: data must be floating
point (an integer image is refused, not converted: 0..255 pixels are not data in [-1, 1]); t an int,
a numpy int or an integer tensor in range. ``sample`` checks its own arguments once and then runs
its steps through ``ddpm_step_unchecked`` / ``ddim_step_unchecked``, which trust them.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import validate
from .schedules import NoiseSchedule, extract
from .thresholding import apply_threshold, threshold_spec
from .variances import check_model_variance, model_log_variance


class Posterior(NamedTuple):
    mean: torch.Tensor  # (B, ...) μ̃_t(x_t, x_0)
    variance: torch.Tensor  # (B, 1, ..., 1) β̃_t, broadcastable to the mean


class StepOutput(NamedTuple):
    prev_sample: torch.Tensor  # (B, ...) x_{t−1} (x at the previous, less noisy, step)
    pred_original_sample: torch.Tensor  # (B, ...) x̂_0 predicted at this step


def check_schedule(schedule) -> NoiseSchedule:
    """``schedule`` if it is a NoiseSchedule (a name is not enough here: use ``get_schedule(name)``)."""
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule (e.g. diffviz.linear_schedule(1000)), "
                        f"got {type(schedule).__name__}")
    return schedule


def check_timesteps(schedule: NoiseSchedule, t, x: torch.Tensor, name: str = "t", low: int = 0, high=None):
    """Validate ``t`` for a batch ``x`` (an int, a numpy int, a 0-d or (B,) integer tensor, in
    [low, high], default [0, T−1]); returns an int or a (B,) int64 tensor on the CPU."""
    t = validate.check_timesteps(t, schedule.num_timesteps, x.shape[0], name=name, low=low, high=high)
    if isinstance(t, int):
        return t
    if t.ndim == 0:
        return int(t)
    return t.long().cpu()


def _check_same_shape(**tensors):
    (first_name, first), *rest = tensors.items()
    for name, tensor in rest:
        if tensor.shape != first.shape:
            raise ValueError(
                f"{name} must have the shape of {first_name} {tuple(first.shape)}, got {tuple(tensor.shape)}"
            )


def _check_noise(like: torch.Tensor, noise, generator):
    """The public functions' check of (noise, generator); ``_gaussian_noise`` then trusts them."""
    validate.check_generator(generator)
    if noise is not None:
        validate.float_tensor("noise", noise)
        _check_same_shape(x=like, noise=noise)


def _gaussian_noise(like: torch.Tensor, noise, generator):
    if noise is not None:
        return noise.to(device=like.device, dtype=like.dtype)
    device = generator.device if generator is not None else like.device
    z = torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype)
    return z.to(like.device)


def check_step_inputs(schedule, t, **tensors):
    """The shared checks of the public functions below: a NoiseSchedule, floating-point tensors of one
    shape (the first named one is the batch), and a timestep ``t`` for it. Returns the checked t."""
    check_schedule(schedule)
    for name, tensor in tensors.items():
        validate.float_tensor(name, tensor)
    _check_same_shape(**tensors)
    return check_timesteps(schedule, t, next(iter(tensors.values())))


def q_sample(schedule, x0, t, noise=None, generator=None):
    """Sample x_t ~ q(x_t | x_0) in one jump (Ho et al. 2020, Eq. 4):
    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,  ε ~ N(0, I).

    Args: x0 (B, ...) floating point (integer images are refused: convert them to [-1, 1] first);
          t int or (B,) int64 in [0, T−1] (code t = k is the paper's t = k + 1);
          noise ε, same shape as x0 (drawn from ``generator`` when None).
    Returns: x_t, same shape as x0.
    """
    t = check_step_inputs(schedule, t, x0=x0)
    _check_noise(x0, noise, generator)
    noise = _gaussian_noise(x0, noise, generator)
    alpha_bar = schedule.alphas_cumprod  # (T,) float64; coefficients are formed before the cast
    sqrt_alpha_bar_t = extract(alpha_bar.sqrt(), t, x0)  # (B, 1, ..., 1)
    sqrt_one_minus_alpha_bar_t = extract((1 - alpha_bar).sqrt(), t, x0)
    return sqrt_alpha_bar_t * x0 + sqrt_one_minus_alpha_bar_t * noise


def q_sample_tables(schedule, device, dtype=torch.float32):
    """(√ᾱ, √(1 − ᾱ)), each (T,), on ``device``: the coefficients ``q_sample_from_tables`` indexes
    (formed in float64, then cast, exactly as ``q_sample`` does)."""
    alpha_bar = check_schedule(schedule).alphas_cumprod  # (T,) float64
    return alpha_bar.sqrt().to(device, dtype), (1 - alpha_bar).sqrt().to(device, dtype)


def q_sample_from_tables(tables, x0, t, noise):
    """``q_sample`` for the training fast path (``diffviz.fast``): the same numbers, but no
    timestep check and no copy of t to the CPU, so no host-device sync (it can run inside a
    CUDA graph). t must be a (B,) int64 tensor on x0's device with values in [0, T−1];
    ``tables`` come from ``q_sample_tables``.
    """
    sqrt_alpha_bar, sqrt_one_minus_alpha_bar = tables  # (T,) each
    shape = (-1,) + (1,) * (x0.ndim - 1)  # (B, 1, ..., 1)
    return sqrt_alpha_bar[t].view(shape) * x0 + sqrt_one_minus_alpha_bar[t].view(shape) * noise


def q_step(schedule, x_prev, t, noise=None, generator=None):
    """One Markov step of the forward process (Ho et al. 2020, Eq. 2):
    x_t = √(1 − β_t) · x_{t−1} + √β_t · ε.

    Args: x_prev (B, ...) is x_{t−1} (for code t = 0 that is x_0); t int or (B,) in [0, T−1];
          noise, same shape (drawn from ``generator`` when None).
    Returns: x_t. Iterating this from x_0 for t = 0..k has the distribution of ``q_sample(x0, k)``.
    """
    t = check_step_inputs(schedule, t, x_prev=x_prev)
    _check_noise(x_prev, noise, generator)
    noise = _gaussian_noise(x_prev, noise, generator)
    beta = schedule.betas
    return extract((1 - beta).sqrt(), t, x_prev) * x_prev + extract(beta.sqrt(), t, x_prev) * noise


def q_posterior(schedule, x0, x_t, t) -> Posterior:
    """Mean and variance of q(x_{t−1} | x_t, x_0) (Ho et al. 2020, Eqs. 6–7):
    μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t
    β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t

    Args: x0, x_t (B, ...); t int or (B,) in [0, T−1]. At code t = 0, ᾱ_{t−1} = 1: mean = x0, β̃ = 0.
    Returns: Posterior(mean (B, ...), variance (B, 1, ..., 1)).
    """
    t = check_step_inputs(schedule, t, x_t=x_t, x0=x0)
    return q_posterior_unchecked(schedule, x0, x_t, t)


def q_posterior_unchecked(schedule, x0, x_t, t) -> Posterior:
    """``q_posterior`` for arguments already checked (the samplers and ``diffviz.vlb`` check once)."""
    beta_t, alpha_t = schedule.betas, schedule.alphas  # (T,) float64: coefficients formed before the cast
    alpha_bar_t, alpha_bar_prev = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    coef_x0 = extract(alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t), t, x_t)  # (B, 1, ..., 1)
    coef_xt = extract(alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t), t, x_t)
    variance = extract(schedule.posterior_variance, t, x_t)
    return Posterior(coef_x0 * x0 + coef_xt * x_t, variance)


def predict_x0(schedule, x_t, t, eps):
    """The "full noise removal" x̂_0: Eq. 4 of Ho et al. 2020 solved for x_0,
    x̂_0 = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t.

    Removing the whole predicted noise ε̂ in one jump, from any t: this is what the network
    predicts, not the small difference between x_t and x_{t−1}.
    Args: x_t, eps (B, ...); t int or (B,) in [0, T−1]. Returns: x̂_0 (B, ...).
    """
    return predict_x0_unchecked(schedule, x_t, check_step_inputs(schedule, t, x_t=x_t, eps=eps), eps)


def predict_x0_unchecked(schedule, x_t, t, eps):
    """``predict_x0`` for arguments already checked (``sample`` checks once, then calls this)."""
    alpha_bar_t = schedule.alphas_cumprod  # (T,) float64
    sqrt_recip_alpha_bar_t = extract(alpha_bar_t.rsqrt(), t, x_t)  # (B, 1, ..., 1)
    sqrt_recip_snr_t = extract(((1 - alpha_bar_t) / alpha_bar_t).sqrt(), t, x_t)  # √(1−ᾱ_t)/√ᾱ_t
    return sqrt_recip_alpha_bar_t * x_t - sqrt_recip_snr_t * eps


def predict_eps(schedule, x_t, t, x0):
    """The noise that takes x_0 to x_t: ε = (x_t − √ᾱ_t · x_0) / √(1 − ᾱ_t) (Eq. 4 solved for ε)."""
    return _eps_from_x0(schedule, x_t, check_step_inputs(schedule, t, x_t=x_t, x0=x0), x0)


def _eps_from_x0(schedule, x_t, t, x0):
    alpha_bar_t = schedule.alphas_cumprod  # (T,) float64
    return (x_t - extract(alpha_bar_t.sqrt(), t, x_t) * x0) / extract((1 - alpha_bar_t).sqrt(), t, x_t)


def ddpm_step(schedule, x_t, t, eps, noise=None, variance="fixed_small", generator=None,
              clip_sample=False, thresholding=False, dynamic_thresholding_ratio=0.995,
              sample_max_value=1.0, model_variance=None) -> StepOutput:
    """One ancestral step x_t → x_{t−1} (Ho et al. 2020, Algorithm 2, line 4):
    x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t · z,  z ~ N(0, I), and z = 0 at the last step (code t = 0).

    μ̃_t(x_t, x̂_0) equals 1/√α_t · (x_t − β_t / √(1 − ᾱ_t) · ε̂) (Eq. 11); it is computed through
    x̂_0 = ``predict_x0`` so that ``clip_sample`` can clamp x̂_0 to [−1, 1] first (as Ho et al.'s
    code and diffusers do; off by default, which is exactly Algorithm 2), or ``thresholding``
    apply dynamic thresholding to it (``diffviz.thresholding``).
    ``variance``: "fixed_small" is σ_t² = β̃_t, "fixed_large" is σ_t² = β_t (Sec. 3.2; diffusers' names),
    "learned_range" interpolates between them with the network's raw ``model_variance`` v
    (v = −1: β̃, v = 1: β; Nichol & Dhariwal 2021, Eq. 15; ``diffviz.variances``).

    Args: x_t, eps (B, ...); t int or (B,) in [0, T−1]; noise z (same shape) or ``generator``.
    Returns: StepOutput(prev_sample=x_{t−1}, pred_original_sample=x̂_0).
    """
    model_variance = check_model_variance(variance, model_variance, x_t)
    threshold = threshold_spec(clip_sample, thresholding, dynamic_thresholding_ratio, sample_max_value)
    t = check_step_inputs(schedule, t, x_t=x_t, eps=eps)
    _check_noise(x_t, noise, generator)
    return ddpm_step_unchecked(schedule, x_t, t, eps, noise, variance, generator, threshold, model_variance)


def ddpm_step_unchecked(schedule, x_t, t, eps, noise, variance, generator, threshold,
                        model_variance=None) -> StepOutput:
    """The body of ``ddpm_step``, for arguments already checked (``sample`` checks once, then calls
    this); ``threshold`` is a ``thresholding.threshold_spec``."""
    x0_pred = apply_threshold(predict_x0_unchecked(schedule, x_t, t, eps), threshold)
    mean = q_posterior_unchecked(schedule, x0_pred, x_t, t).mean
    log_var = model_log_variance(schedule, t, x_t, variance, model_variance)  # float64, σ_t² of ``variances``
    not_last = extract((torch.arange(schedule.num_timesteps) > 0).double(), t, x_t, torch.float64)  # no noise at t = 0
    sigma = (not_last * (0.5 * log_var).exp()).to(x_t.dtype)
    return StepOutput(mean + sigma * _gaussian_noise(x_t, noise, generator), x0_pred)


def ddim_sigma(schedule, t, t_prev, eta, like, dtype=None):
    """σ_t(η) of Song et al. 2020, Eq. 16:
    σ = η · √((1 − ᾱ_prev) / (1 − ᾱ_t)) · √(1 − ᾱ_t / ᾱ_prev), with ᾱ_prev = 1 when t_prev = −1.
    Args: t, t_prev checked ints or (B,) tensors (as ``ddim_step`` passes them); eta ≥ 0.
    Returns: (B, 1, ..., 1) with ``like``'s rank and device, in ``dtype`` (default like's).
    """
    alpha_bar_t = extract(schedule.alphas_cumprod, t, like, torch.float64)  # float64 until the end
    alpha_bar_prev = _alpha_bar_prev(schedule, t_prev, like, torch.float64)
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()
    return sigma.to(dtype or like.dtype)


def _alpha_bar_prev(schedule, t_prev, like, dtype=None):
    """ᾱ at ``t_prev``; t_prev = −1 means "before the first step", where ᾱ = 1."""
    padded = torch.cat([torch.ones(1, dtype=torch.float64), schedule.alphas_cumprod])
    return extract(padded, t_prev + 1, like, dtype)


def ddim_step(schedule, x_t, t, t_prev, eps, eta=0.0, noise=None, generator=None,
              clip_sample=False, thresholding=False, dynamic_thresholding_ratio=0.995,
              sample_max_value=1.0) -> StepOutput:
    """One DDIM step x_t → x_{t_prev} (Song et al. 2020, Eq. 12):
    x_prev = √ᾱ_prev · x̂_0 + √(1 − ᾱ_prev − σ²) · ε̂ + σ · z,  σ = σ_t(η) from Eq. 16.

    η = 0 is deterministic (DDIM); η = 1 with t_prev = t − 1 has σ² = β̃_t, the DDPM posterior.
    Args: x_t, eps (B, ...); t int or (B,) in [0, T−1]; t_prev < t, in [−1, T−2], where −1 means
          ᾱ_prev = 1 (the final jump to x̂_0); eta a finite number ≥ 0; noise z or ``generator``.
    Returns: StepOutput(prev_sample=x_{t_prev}, pred_original_sample=x̂_0).
    """
    eta = validate.finite_number("eta", eta, low=0)
    threshold = threshold_spec(clip_sample, thresholding, dynamic_thresholding_ratio, sample_max_value)
    t = check_step_inputs(schedule, t, x_t=x_t, eps=eps)
    t_prev = check_timesteps(schedule, t_prev, x_t, name="t_prev", low=-1, high=schedule.num_timesteps - 2)
    if torch.any(torch.as_tensor(t_prev) >= torch.as_tensor(t)):
        raise ValueError(f"t_prev must be smaller than t, got t={t}, t_prev={t_prev}")
    _check_noise(x_t, noise, generator)
    return ddim_step_unchecked(schedule, x_t, t, t_prev, eps, eta, noise, generator, threshold)


def ddim_step_unchecked(schedule, x_t, t, t_prev, eps, eta, noise, generator, threshold) -> StepOutput:
    """The body of ``ddim_step``, for arguments already checked (``sample`` checks once, then calls
    this); ``threshold`` is a ``thresholding.threshold_spec``."""
    x0_pred = predict_x0_unchecked(schedule, x_t, t, eps)
    if threshold is not None:
        x0_pred = apply_threshold(x0_pred, threshold)
        eps = _eps_from_x0(schedule, x_t, t, x0_pred)  # keep ε̂ consistent with the bounded x̂_0
    alpha_bar_prev = _alpha_bar_prev(schedule, t_prev, x_t, torch.float64)  # (B, 1, ..., 1)
    sigma = ddim_sigma(schedule, t, t_prev, eta, x_t, torch.float64)
    coef_eps = (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt().to(x_t.dtype)
    prev = alpha_bar_prev.sqrt().to(x_t.dtype) * x0_pred + coef_eps * eps
    if eta > 0:
        prev = prev + sigma.to(x_t.dtype) * _gaussian_noise(x_t, noise, generator)
    return StepOutput(prev, x0_pred)
