"""Noise schedules: the betas of the forward process and everything derived from them.

The timestep convention used everywhere in diffviz
--------------------------------------------------
Timesteps are 0-based integers ``t`` in ``[0, T-1]`` (T = ``num_timesteps``). Code ``t = k`` is the
paper's ``t = k + 1`` (Ho et al. 2020 count from 1 to T). So ``betas[0]`` is the paper's β_1,
``alphas_cumprod[t]`` is ᾱ_{t+1} in the paper, and ``alphas_cumprod_prev[t]`` is the ᾱ of the step
before, with ``alphas_cumprod_prev[0] == 1`` (the paper's ᾱ_0 = 1: x_0 is clean data).

Names follow huggingface/diffusers, the vocabulary students meet next: ``betas``, ``alphas``,
``alphas_cumprod``, ``alphas_cumprod_prev``, ``num_train_timesteps`` (here ``num_timesteps``).
``posterior_variance`` is β̃_t (Ho et al. 2020, Eq. 7), the "fixed_small" variance; β_t itself is the
"fixed_large" one.

All schedule tensors are 1-D float64 CPU tensors of length T: coefficients are computed once in
float64 and cast to the data's dtype when used (see ``extract``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from .validate import check_num_steps, finite_number, positive_int

SCHEDULES = ("linear", "cosine", "quadratic", "sigmoid")


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A variance schedule β_1..β_T and the quantities derived from it (all (T,) float64).

    Build one with ``linear_schedule``, ``cosine_schedule``, ``get_schedule`` or ``from_betas``.
    """

    betas: torch.Tensor  # (T,) β_t, forward-process variance of step t (Ho et al. 2020, Eq. 2)
    name: str = "custom"  # which family made it ("linear", "cosine", ...)
    params: dict = field(default_factory=dict)  # the arguments that rebuild it (for JSON configs)

    def __post_init__(self):
        try:
            betas = torch.as_tensor(self.betas, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"betas must be a 1-D sequence or tensor of numbers, got {self.betas!r}") from err
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not torch.isfinite(betas).all():
            raise ValueError("betas contain NaN or inf")
        if (betas <= 0).any() or (betas > 1).any():
            raise ValueError(
                f"betas must lie in (0, 1], got min {betas.min().item():.3g}, max {betas.max().item():.3g}"
            )
        object.__setattr__(self, "betas", betas)

    # ----- derived quantities: computed once from the (immutable) betas, in float64 -----
    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps."""
        return self.betas.numel()

    @cached_property
    def alphas(self) -> torch.Tensor:
        """α_t = 1 − β_t."""
        return 1.0 - self.betas

    @cached_property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t = ∏_{s ≤ t} α_s (Ho et al. 2020, notation above Eq. 4)."""
        return torch.cumprod(self.alphas, dim=0)

    @cached_property
    def alphas_cumprod_prev(self) -> torch.Tensor:
        """ᾱ_{t−1}, with ᾱ before the first step equal to 1: ``alphas_cumprod_prev[0] == 1``."""
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])

    @cached_property
    def posterior_variance(self) -> torch.Tensor:
        """β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (Ho et al. 2020, Eq. 7); β̃ at code t = 0 is 0."""
        return (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod) * self.betas

    @cached_property
    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio SNR(t) = ᾱ_t / (1 − ᾱ_t) (Kingma et al. 2021)."""
        alpha_bar_t = self.alphas_cumprod
        return alpha_bar_t / (1.0 - alpha_bar_t)

    @cached_property
    def log_snr(self) -> torch.Tensor:
        """log SNR(t), computed stably as log ᾱ_t − log(1 − ᾱ_t)."""
        alpha_bar_t = self.alphas_cumprod
        return torch.log(alpha_bar_t) - torch.log1p(-alpha_bar_t)

    # ----- serialisation -----
    def to_config(self) -> dict:
        """A JSON-able dict that ``NoiseSchedule.from_config`` turns back into this schedule."""
        if self.name in SCHEDULES:
            return {"name": self.name, "num_timesteps": self.num_timesteps, **self.params}
        return {"name": self.name, "betas": self.betas.tolist()}

    @staticmethod
    def from_config(config: dict) -> "NoiseSchedule":
        """Inverse of ``to_config``."""
        config = dict(config)
        name = config.pop("name", None)
        if "betas" in config:
            return from_betas(config["betas"], name=name or "custom")
        return get_schedule(name, **config)

    def __repr__(self):
        return (
            f"NoiseSchedule(name={self.name!r}, num_timesteps={self.num_timesteps}, "
            f"alpha_bar_T={self.alphas_cumprod[-1].item():.3e})"
        )


def from_betas(betas, name: str = "custom") -> NoiseSchedule:
    """A schedule from explicit betas (a sequence or a 1-D tensor in (0, 1])."""
    return NoiseSchedule(betas, name=name)


def _check_unit_interval(name, value):
    return finite_number(name, value, low=0, low_open=True, high=1)  # in (0, 1]


def linear_schedule(num_timesteps=1000, beta_start=1e-4, beta_end=0.02) -> NoiseSchedule:
    """Ho et al. 2020, Sec. 4: β_t rises linearly from ``beta_start`` to ``beta_end``.

    The paper's constants (1e-4, 0.02) assume T = 1000. They are used as given for any T (as in
    diffusers); with small T the final ᾱ_T stays far from 0 — see notebook 02.
    """
    num_timesteps = positive_int("num_timesteps", num_timesteps)
    _check_unit_interval("beta_start", beta_start)
    _check_unit_interval("beta_end", beta_end)
    betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    params = {"beta_start": beta_start, "beta_end": beta_end}
    return NoiseSchedule(betas, name="linear", params=params)


def cosine_schedule(num_timesteps=1000, s=0.008, max_beta=0.999) -> NoiseSchedule:
    """Nichol & Dhariwal 2021, Eq. 17: ᾱ_t = f(t) / f(0), f(t) = cos²((t/T + s) / (1 + s) · π/2).

    The betas are β_t = 1 − ᾱ_t / ᾱ_{t−1}, clipped at ``max_beta`` (their Sec. 3.2) so that the
    last steps near t = T do not become singular. Code t = k uses the paper's t = k + 1:
    ``betas[k] = min(1 − f(k+1) / f(k), max_beta)``.
    """
    num_timesteps = positive_int("num_timesteps", num_timesteps)
    finite_number("s", s, low=0)
    _check_unit_interval("max_beta", max_beta)
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps  # paper t/T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return NoiseSchedule(betas, name="cosine", params={"s": s, "max_beta": max_beta})


def quadratic_schedule(num_timesteps=1000, beta_start=1e-4, beta_end=0.02) -> NoiseSchedule:
    """√β_t rises linearly from √beta_start to √beta_end (diffusers' "scaled_linear")."""
    num_timesteps = positive_int("num_timesteps", num_timesteps)
    _check_unit_interval("beta_start", beta_start)
    _check_unit_interval("beta_end", beta_end)
    root = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64)
    params = {"beta_start": beta_start, "beta_end": beta_end}
    return NoiseSchedule(root**2, name="quadratic", params=params)


def sigmoid_schedule(num_timesteps=1000, beta_start=1e-4, beta_end=0.02) -> NoiseSchedule:
    """β_t = beta_start + (beta_end − beta_start) · sigmoid(u_t), u_t evenly spaced on [−6, 6]."""
    num_timesteps = positive_int("num_timesteps", num_timesteps)
    _check_unit_interval("beta_start", beta_start)
    _check_unit_interval("beta_end", beta_end)
    u = torch.linspace(-6, 6, num_timesteps, dtype=torch.float64)
    betas = beta_start + (beta_end - beta_start) * torch.sigmoid(u)
    params = {"beta_start": beta_start, "beta_end": beta_end}
    return NoiseSchedule(betas, name="sigmoid", params=params)


_FACTORIES = {
    "linear": linear_schedule,
    "cosine": cosine_schedule,
    "quadratic": quadratic_schedule,
    "sigmoid": sigmoid_schedule,
}


def get_schedule(name, num_timesteps=1000, **kwargs) -> NoiseSchedule:
    """The schedule called ``name`` ("linear", "cosine", "quadratic" or "sigmoid").

    Extra keyword arguments go to the family's function (e.g. ``s=`` for cosine).
    """
    if isinstance(name, NoiseSchedule):
        return name
    if not isinstance(name, str) or name not in _FACTORIES:
        raise ValueError(f"unknown schedule {name!r}; known schedules: {', '.join(SCHEDULES)}")
    try:
        return _FACTORIES[name](num_timesteps, **kwargs)
    except TypeError as err:  # an argument the family does not take
        raise TypeError(f"schedule {name!r}: {err}") from None


def extract(values: torch.Tensor, t, x: torch.Tensor, dtype=None) -> torch.Tensor:
    """Pick ``values[t]`` and shape it to broadcast against ``x``.

    Args: values (T,) float64 schedule tensor; t an int or a (B,) int64 tensor in [0, T-1];
          x (B, ...) any rank — only its batch size, rank, dtype and device are used;
          dtype: override x's dtype (e.g. float64 to keep combining coefficients exactly).
    Returns: (B, 1, ..., 1) with x.ndim dims (or (1, ..., 1) for an int t), on x's device.
    """
    if isinstance(t, int):  # a fill, not a copy: no host-device sync when x is on a GPU
        return torch.full([1] * x.ndim, values[t].item(), device=x.device, dtype=dtype or x.dtype)
    out = values[t.cpu()].reshape([t.shape[0]] + [1] * (x.ndim - 1))
    return out.to(device=x.device, dtype=dtype or x.dtype)


def sampling_timesteps(num_timesteps: int, num_steps: int, spacing: str = "trailing") -> torch.Tensor:
    """Which training timesteps a sampler with ``num_steps`` steps visits, in descending order.

    Spacings as diffusers defines them (Lin et al. 2023, Table 2), for T = ``num_timesteps``:
      "leading":  k · (T // S) for k = 0..S−1           (T=1000, S=10: 900, 800, ..., 0)
      "trailing": round(T − k · T/S) − 1 for k = 0..S−1 (T=1000, S=10: 999, 899, ..., 99)
      "linspace": round(linspace(0, T−1, S))            (T=1000, S=10: 999, 888, ..., 0)
    Returns: (S,) int64, strictly descending, values in [0, T−1].
    """
    num_timesteps = positive_int("num_timesteps", num_timesteps)
    num_steps = check_num_steps(num_steps, num_timesteps)
    if not isinstance(spacing, str):
        raise ValueError(f"unknown timestep_spacing {spacing!r}; use 'leading', 'trailing' or 'linspace'")
    if spacing == "leading":
        steps = torch.arange(num_steps, dtype=torch.float64) * (num_timesteps // num_steps)
    elif spacing == "trailing":
        steps = torch.arange(num_timesteps, 0, -num_timesteps / num_steps, dtype=torch.float64)
        steps = torch.round(steps) - 1
    elif spacing == "linspace":
        steps = torch.round(torch.linspace(0, num_timesteps - 1, num_steps, dtype=torch.float64))
    else:
        raise ValueError(f"unknown timestep_spacing {spacing!r}; use 'leading', 'trailing' or 'linspace'")
    return torch.sort(steps.long(), descending=True).values


def respace(schedule: NoiseSchedule, timesteps) -> NoiseSchedule:
    """A shorter schedule that visits only ``timesteps`` (Nichol & Dhariwal 2021, Sec. 4).

    The kept ᾱ values are unchanged; the betas are recomputed from them:
    β'_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}}, with ᾱ before the first kept step equal to 1.
    Index i of the result corresponds to training timestep ``timesteps`` sorted ascending [i].
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    timesteps = torch.as_tensor(np.asarray(timesteps)) if not isinstance(timesteps, torch.Tensor) else timesteps
    if timesteps.is_floating_point() or timesteps.dtype == torch.bool or timesteps.ndim != 1:
        raise TypeError(f"timesteps must be a 1-D sequence of integers, got {timesteps!r}")
    kept = torch.sort(timesteps.long().unique()).values
    T = schedule.num_timesteps
    if kept.numel() == 0 or kept[0] < 0 or kept[-1] >= T:
        raise ValueError(f"timesteps must be non-empty and lie in [0, {T - 1}], got {timesteps!r}")
    alpha_bar = schedule.alphas_cumprod[kept]
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    betas = 1.0 - alpha_bar / alpha_bar_prev
    return NoiseSchedule(betas, name=f"{schedule.name}-respaced")
