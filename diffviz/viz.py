"""Compute layer for the plots and widgets: torch in, plain numpy arrays out.

Nothing here draws or builds a widget. The explorers (``diffviz.explorers``) call these functions when
a control moves, and their static twins and filmstrips call the very same functions for the frames
they store, so a widget and its handout figure always show the same numbers.

Timesteps are 0-based integers t in [0, T−1]; code t = k is the paper's t = k + 1.
All noise comes from seeded ``torch.Generator``s (``seed`` arguments, default 0).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .diffusion import predict_x0, q_sample
from .sampling import Trajectory, guided_eps, sample
from .schedules import NoiseSchedule, get_schedule
from .validate import finite_array

EPS_DISPLAY_RANGE = 3.0  # noise images are shown as ε / 3: ±3σ maps to black / white


def generator(seed: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (every widget draws its noise from one)."""
    return torch.Generator().manual_seed(int(seed))


def as_image_batch(image, name: str = "image") -> torch.Tensor:
    """(C, H, W) or (N, C, H, W), C in {1, 3}, finite values in [-1, 1] → (N, C, H, W) float32 CPU."""
    x = torch.as_tensor(finite_array(name, image)).float()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape (C, H, W) or (N, C, H, W) with C = 1 or 3, "
                         f"got {tuple(x.shape)}")
    return x


def named_schedules(schedules, num_timesteps: int = 1000) -> dict[str, NoiseSchedule]:
    """Names ("linear", "cosine", ...) or NoiseSchedules, or a dict label → either, as
    {label: NoiseSchedule}. Names are built with ``num_timesteps`` steps."""
    if isinstance(schedules, (str, NoiseSchedule)):
        schedules = [schedules]
    items = schedules.items() if isinstance(schedules, dict) else [(None, s) for s in schedules]
    out = {}
    for label, s in items:
        s = get_schedule(s, num_timesteps)
        label = label or s.name
        if label in out:
            label = f"{label} ({len(out) + 1})"
        out[label] = s
    if not out:
        raise ValueError("schedules must name at least one schedule, got an empty sequence")
    return out


def common_num_timesteps(schedules: dict[str, NoiseSchedule]) -> int:
    """The T all ``schedules`` share (a t slider needs one); ValueError when they differ."""
    Ts = {label: s.num_timesteps for label, s in schedules.items()}
    if len(set(Ts.values())) != 1:
        raise ValueError(f"schedules must share one num_timesteps T, got {Ts}")
    return next(iter(Ts.values()))


def evenly_spaced(values, max_count: int) -> list:
    """At most ``max_count`` items of ``values``, evenly spaced, first and last included."""
    values = list(values)
    if len(values) <= max_count:
        return values
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, max_count)).astype(int))
    return [values[i] for i in idx]


def chosen_or_spaced(values, chosen, max_count: int) -> list:
    """``chosen`` exactly as given when the caller picked it, else ``evenly_spaced(values, max_count)``."""
    return list(chosen) if chosen is not None else evenly_spaced(values, max_count)


# ----------------------------------------------------------------------------- forward process
def forward_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: int, noise: torch.Tensor) -> np.ndarray:
    """x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε (Ho et al. 2020, Eq. 4) with a fixed ε, via ``q_sample``.
    Args: x0, noise (N, ...); t int in [0, T−1] (paper t + 1). Returns x_t as float32 numpy."""
    return q_sample(schedule, x0, int(t), noise=noise).numpy()


def pixel_histogram(values, bins: int = 60, value_range=(-4.0, 4.0)):
    """Density histogram of all values (the pixels of x_t). Returns (density (bins,), edges (bins+1,))."""
    return np.histogram(np.asarray(values).ravel(), bins=bins, range=value_range, density=True)


def standard_normal_pdf(x) -> np.ndarray:
    """φ(x) = exp(−x²/2) / √(2π), the N(0, 1) density x_t approaches as t → T."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)


def forward_coefficients(schedule: NoiseSchedule) -> dict:
    """The two weights of Eq. 4 against t: {"t", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar"} (T,)."""
    alpha_bar = schedule.alphas_cumprod.numpy()
    return {"t": np.arange(len(alpha_bar)), "sqrt_alpha_bar": np.sqrt(alpha_bar),
            "sqrt_one_minus_alpha_bar": np.sqrt(1 - alpha_bar)}


def schedule_curves(schedule: NoiseSchedule) -> dict:
    """{"t", "beta", "alpha_bar", "log_snr"}, each (T,) float64 numpy, log SNR = log ᾱ_t − log(1 − ᾱ_t)."""
    return {"t": np.arange(schedule.num_timesteps), "beta": schedule.betas.numpy(),
            "alpha_bar": schedule.alphas_cumprod.numpy(), "log_snr": schedule.log_snr.numpy()}


def terminal_snr(schedule: NoiseSchedule) -> dict:
    """ᾱ_T, √ᾱ_T and SNR(T) at the last step (code t = T − 1). √ᾱ_T is the share of x_0 left in x_T:
    when it is far from 0, x_T ~ N(0, I) at sampling time is not what training saw (Lin et al. 2023)."""
    alpha_bar_T = float(schedule.alphas_cumprod[-1])
    return {"alpha_bar_T": alpha_bar_T, "sqrt_alpha_bar_T": math.sqrt(alpha_bar_T),
            "snr_T": alpha_bar_T / (1 - alpha_bar_T)}


# ----------------------------------------------------------------------------- models
def model_device(model) -> torch.device:
    """Where an ε-model's parameters live (CPU for plain callables)."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


@torch.no_grad()
def run_model(model, x_t: torch.Tensor, t: int, y=None, guidance_scale=None) -> torch.Tensor:
    """ε̂ = model(x_t, t[, y]) for one timestep t (int, paper t + 1), in eval mode, on the model's
    device; with ``y`` and ``guidance_scale`` the classifier-free-guided ε̂ of ``guided_eps``.
    Returns ε̂ (N, ...) float32 on the CPU."""
    device = model_device(model)
    was_training = isinstance(model, nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        t_batch = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=device)
        y = None if y is None else torch.as_tensor(y, dtype=torch.long, device=device).expand(x_t.shape[0])
        eps = guided_eps(model, x_t.to(device), t_batch, y, guidance_scale)
    finally:
        if was_training:
            model.train()
    if not isinstance(eps, torch.Tensor) or eps.shape != x_t.shape:
        got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
        raise ValueError(f"the model must return ε̂ with the shape of x_t {tuple(x_t.shape)}, got {got}")
    return eps.float().cpu()


def noise_prediction(model, schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor, t: int,
                     y=None) -> dict:
    """Noise x_0 to t with a known ε, ask the model for ε̂, and remove all of it in one jump:
    x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε (Eq. 4);  x̂_0 = (x_t − √(1−ᾱ_t)·ε̂) / √ᾱ_t (``predict_x0``).

    Returns numpy arrays (N, C, H, W): "x_t", "noise" ε, "eps_pred" ε̂, "eps_error" ε̂ − ε, "x0_pred",
    and floats "mse" = mean (ε̂ − ε)², "step_noise_std" = √β_t (the noise ONE step adds — much less
    than the whole ε the network is trained to predict).
    """
    x_t = q_sample(schedule, x0, int(t), noise=noise)
    eps_pred = run_model(model, x_t, t, y)
    x0_pred = predict_x0(schedule, x_t, int(t), eps_pred)
    error = eps_pred - noise
    return {"x_t": x_t.numpy(), "noise": noise.numpy(), "eps_pred": eps_pred.numpy(),
            "eps_error": error.numpy(), "x0_pred": x0_pred.numpy(), "mse": float((error**2).mean()),
            "step_noise_std": math.sqrt(float(schedule.betas[int(t)]))}


def noise_for_display(eps) -> np.ndarray:
    """ε (any shape) → ε / EPS_DISPLAY_RANGE clipped to [-1, 1], so ±3σ shows as black / white."""
    return np.clip(np.asarray(eps) / EPS_DISPLAY_RANGE, -1.0, 1.0)


# ----------------------------------------------------------------------------- sampling
def trajectory_step(trajectory: Trajectory, step: int) -> dict:
    """Step ``step`` (0 = first, noisiest) of a recorded trajectory as numpy arrays:
    {"t" (paper t + 1), "x_t", "eps" ε̂, "x0_hat" x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t}."""
    if trajectory.x_t is None:
        raise ValueError("the trajectory was sampled with record=False; sample it with record=True")
    if not 0 <= step < len(trajectory):
        raise ValueError(f"step={step} is out of range [0, {len(trajectory) - 1}]")
    return {"t": int(trajectory.timesteps[step]), "x_t": trajectory.x_t[step].numpy(),
            "eps": trajectory.eps[step].numpy(), "x0_hat": trajectory.x0_hat[step].numpy()}


def run_sampler(model, schedule: NoiseSchedule, x_T: torch.Tensor, sampler: str = "ddim",
                num_steps: int | None = None, eta: float = 0.0, seed: int = 0, y=None,
                guidance_scale=None, record: bool = False, timestep_spacing: str = "trailing",
                **options) -> Trajectory:
    """``sample`` from a FIXED x_T with a freshly seeded generator, so that changing one knob
    (sampler, steps, spacing, η, class, guidance) changes nothing else. ``options`` (``device``,
    ``cuda_graph``, ...) go to ``sample`` as they are. Returns the Trajectory."""
    return sample(model, schedule, tuple(x_T.shape), sampler=sampler, num_steps=num_steps, eta=eta,
                  generator=generator(seed), y=y, guidance_scale=guidance_scale, record=record, x_T=x_T,
                  timestep_spacing=timestep_spacing, **options)


def points_at(trajectory: Trajectory, t: int) -> np.ndarray:
    """The reverse-process state at timestep t: x_t (the input of the step at t) for t ≥ 0, the final
    sample for t = −1. ``t`` must be one of ``trajectory.timesteps`` or −1."""
    if t < 0:
        return trajectory.sample.numpy()
    hits = (trajectory.timesteps == int(t)).nonzero()
    if hits.numel() == 0:
        raise ValueError(f"t={t} is not a timestep this trajectory visited")
    return trajectory.x_t[int(hits[0, 0])].numpy()
