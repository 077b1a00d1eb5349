"""DDIM's deterministic map, run backwards: find the noise x_T that DDIM (η = 0) turns into a given x_0.

With η = 0 a DDIM step (Song et al. 2020, Eq. 12 with σ_t = 0) is a deterministic map x_t → x_{t_prev}:
    x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂(x_t, t)) / √ᾱ_t,    x_{t_prev} = √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev)·ε̂(x_t, t).
Inversion runs the same update from t_prev up to t (Song et al. 2020, Sec. 4.3: Eq. 12 with σ = 0 is
an Euler step of an ODE, which can be run the other way; Sec. 5.4 reconstructs images through x_T):
    x̂_0 = (x_{t_prev} − √(1 − ᾱ_prev)·ε̂) / √ᾱ_prev,    x_t = √ᾱ_t·x̂_0 + √(1 − ᾱ_t)·ε̂.
The exact inverse would need ε̂(x_t, t) at the point x_t we are solving for. The standard
approximation evaluates the model at the point we have, the less noisy x_{t_prev}, with the
timestep t the sampler will call it with on the way back: ε̂ = ε̂(x_{t_prev}, t) (as diffusers'
DDIMInverseScheduler and the code of null-text inversion, Mokady et al. 2023, do). The error is
ε̂(x_t, t) − ε̂(x_{t_prev}, t), which shrinks as the steps get smaller, so the round trip
x_0 → x_T → x_0 improves with ``num_steps`` (tests/test_inversion.py measures it).

``slerp`` interpolates between two such noises without shrinking them towards the origin.

Timesteps are 0-based in [0, T−1]; code t = k is the paper's t = k + 1 (see ``diffviz.schedules``).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .diffusion import check_schedule
from .sampling import guided_eps
from .schedules import sampling_timesteps
from .validate import (check_bool, check_guidance_scale, check_labels, check_num_steps, finite_number, float_tensor,
                       label_tensor)


class Inversion(NamedTuple):
    x_T: torch.Tensor  # (B, ...) the noise that DDIM with η = 0 maps back to x_0
    timesteps: torch.Tensor  # (S,) int64, ascending: the sampler's timesteps, visited in reverse
    x_t: Optional[torch.Tensor]  # (S, B, ...) x at timesteps[i] (x_t[-1] is x_T), on the CPU; None unless record
    eps: Optional[torch.Tensor]  # (S, B, ...) the ε̂ used to reach x_t[i], on the CPU; None unless record


def _alpha_bar(schedule, t: int) -> float:
    """ᾱ at timestep t, with ᾱ = 1 at t = −1 ("before the first step"), as ``diffusion.ddim_step`` uses."""
    return 1.0 if t < 0 else schedule.alphas_cumprod[t].item()


def _check_inputs(eps_model, schedule, x0, num_steps, y, guidance_scale, record):
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t[, y]), got {type(eps_model).__name__}")
    check_schedule(schedule)
    float_tensor("x0", x0)
    if x0.shape[0] == 0:
        raise ValueError(f"x0 must hold at least one sample (B, ...), got shape {tuple(x0.shape)}")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 holds NaN or inf values")
    num_steps = check_num_steps(num_steps, schedule.num_timesteps)
    y = check_labels(y, x0.shape[0])
    guidance_scale = check_guidance_scale(guidance_scale, y)
    check_bool("record", record)
    return num_steps, y, guidance_scale


@torch.no_grad()
def ddim_invert(eps_model, schedule, x0, num_steps=50, y=None, guidance_scale=None,
                timestep_spacing="trailing", record=False) -> Inversion:
    """DDIM inversion x_0 → x_T (Song et al. 2020, Eq. 12 with σ = 0, run from t_prev to t):
    x̂_0 = (x_{t_prev} − √(1 − ᾱ_prev)·ε̂) / √ᾱ_prev,   x_t = √ᾱ_t·x̂_0 + √(1 − ᾱ_t)·ε̂,
    with ε̂ = ε̂(x_{t_prev}, t) (the model at the current, less noisy point: see the module docstring)
    and ᾱ_prev = 1 for the first step, from t_prev = −1 (x_0 itself), exactly as ``ddim_step`` treats it.

    The timesteps are those ``sample(..., sampler="ddim", num_steps=num_steps,
    timestep_spacing=timestep_spacing)`` visits, in reverse order, so that
    ``sample(eps_model, schedule, x0.shape, sampler="ddim", eta=0, num_steps=num_steps, x_T=inv.x_T)``
    returns approximately x0. No randomness is used.

    Args: eps_model(x_t (B, ...), t (B,) int64[, y]) → ε̂; x0 (B, ...) floating point, the data to
          invert (the computation runs in x0's dtype, on x0's device); num_steps S in [1, T];
          y: class labels (int or (B,)) and guidance_scale w for classifier-free guidance, combined
          by ``sampling.guided_eps`` as the sampler does; record: keep every state and ε̂.
    Returns: Inversion(x_T, timesteps (S,) ascending, x_t, eps).
    """
    num_steps, y, guidance_scale = _check_inputs(eps_model, schedule, x0, num_steps, y, guidance_scale, record)
    timesteps = sampling_timesteps(schedule.num_timesteps, num_steps, timestep_spacing).flip(0)  # (S,) ascending
    y = label_tensor(y, x0.shape[0], x0.device)  # (B,) or None
    x = x0
    states, noises = [], []
    t_prev = -1
    for t in timesteps.tolist():
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)  # (B,)
        eps_pred = guided_eps(eps_model, x, t_batch, y, guidance_scale).to(x.dtype)  # ε̂(x_{t_prev}, t)
        alpha_bar_prev, alpha_bar_t = _alpha_bar(schedule, t_prev), _alpha_bar(schedule, t)
        x0_pred = (x - (1 - alpha_bar_prev) ** 0.5 * eps_pred) / alpha_bar_prev**0.5  # = x at t_prev = −1
        x = alpha_bar_t**0.5 * x0_pred + (1 - alpha_bar_t) ** 0.5 * eps_pred
        if record:
            states.append(x.detach().cpu().clone())
            noises.append(eps_pred.detach().cpu().clone())
        t_prev = t
    if not record:
        return Inversion(x, timesteps, None, None)
    return Inversion(x, timesteps, torch.stack(states), torch.stack(noises))


def slerp(a, b, weight, dot_threshold=0.9995):
    """Spherical linear interpolation (Shoemake 1985), per sample over all non-batch dims:
    slerp(a, b; w) = sin((1 − w)·θ)/sin θ · a + sin(w·θ)/sin θ · b,   cos θ = ⟨a, b⟩ / (‖a‖·‖b‖).

    For Gaussian noise in many dimensions a straight line a + w·(b − a) passes close to the origin
    (‖lerp‖ ≈ √(w² + (1 − w)²)·‖a‖), where no DDIM noise ever lives; slerp keeps the norm
    when ‖a‖ = ‖b‖. Samples whose directions are (nearly) parallel or opposite, |cos θ| >
    ``dot_threshold``, fall back to the lerp (the angle, or the great circle, is not defined there).

    Args: a, b (B, ...) floating point of the same shape (B = the batch, at least 2 dims);
          weight w: a number in [0, 1]; w = 0 returns a and w = 1 returns b exactly (as copies).
    Returns: (B, ...), a's dtype (computed in float64).
    """
    float_tensor("a", a, min_ndim=2)
    float_tensor("b", b, min_ndim=2)
    if a.shape != b.shape:
        raise ValueError(f"b must have the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
    weight = finite_number("weight", weight, low=0, high=1)
    dot_threshold = finite_number("dot_threshold", dot_threshold, low=0, high=1)
    if weight == 0:
        return a.clone()
    if weight == 1:
        return b.clone()
    a64, b64 = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()  # (B, N)
    norms = a64.norm(dim=1) * b64.norm(dim=1)  # (B,)
    cos = ((a64 * b64).sum(1) / norms).clamp(-1, 1)  # (B,); NaN for a zero vector
    theta = torch.arccos(cos)  # (B,)
    sin_theta = torch.sin(theta)
    spherical = (torch.sin((1 - weight) * theta) / sin_theta)[:, None] * a64 \
        + (torch.sin(weight * theta) / sin_theta)[:, None] * b64
    linear = (1 - weight) * a64 + weight * b64
    use_lerp = ~(cos.abs() <= dot_threshold)  # (B,); also where cos is NaN (a zero vector)
    out = torch.where(use_lerp[:, None], linear, spherical)
    return out.reshape(a.shape).to(a.dtype)
