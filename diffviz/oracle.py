"""Exact denoisers for data whose distribution we know: a yardstick for learned models.

If x_0 follows a mixture of isotropic Gaussians Σ_k w_k N(μ_k, s_k² I), then x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε
follows Σ_k w_k N(√ᾱ_t μ_k, v_k I) with v_k = ᾱ_t s_k² + 1 − ᾱ_t, and the best possible noise
prediction (the minimiser of L_simple) is
    ε*(x_t, t) = E[ε | x_t] = −√(1 − ᾱ_t) · ∇ log p_t(x_t) = √(1 − ᾱ_t) · Σ_k r_k(x_t) (x_t − √ᾱ_t μ_k) / v_k,
with r_k the posterior responsibilities of the components (Vincent 2011; Song et al. 2021, Eq. 12
relates ε to the score). A single Gaussian is the one-component case.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .diffusion import check_schedule, predict_x0, q_sample
from .schedules import NoiseSchedule, respace, sampling_timesteps
from .validate import check_generator, check_num_steps, check_timesteps, float_tensor, positive_int
from .variances import split_model_output


def _float64(name, value) -> torch.Tensor:
    """A finite float64 tensor from numbers, a sequence or a tensor, or an error naming ``name``."""
    try:
        value = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be numbers (a sequence, an array or a tensor), got {value!r}") from err
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} holds NaN or inf")
    return value


class GaussianMixtureDenoiser:
    """Callable ``eps(x_t, t)`` giving ε* for a mixture of isotropic Gaussians (float64 inside).

    Args: means (K, D); stds (K,) or a float; weights (K,) summing to 1 (uniform when None);
          schedule: the NoiseSchedule the data was noised with.
    Calling it: x_t (B, D) or (B, ...) flattening to D features; t (B,) int64 in [0, T−1]
    (code t = k is the paper's t = k + 1). Returns ε* with x_t's shape and dtype.
    """

    def __init__(self, means, stds, weights=None, schedule: NoiseSchedule = None):
        self.means = _float64("means", means)
        if self.means.ndim != 2 or 0 in self.means.shape:
            raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(self.means.shape)}")
        K = self.means.shape[0]
        stds = _float64("stds", stds)
        if stds.ndim > 1 or (stds.ndim == 1 and stds.shape[0] not in (1, K)):
            raise ValueError(f"stds must be a number or have shape ({K},) (one per mean), got {tuple(stds.shape)}")
        self.stds = stds.expand(K).clone()
        if (self.stds < 0).any():
            raise ValueError(f"stds must be >= 0, got {stds.tolist()}")
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else _float64("weights", weights)
        if w.shape != (K,) or (w < 0).any() or abs(w.sum().item() - 1) > 1e-6:
            raise ValueError(f"weights must be K={K} non-negative numbers summing to 1, got {weights!r}")
        self.weights = w
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule (the one the data is noised with), "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.check_values = True  # read t's values to check them (``sample`` checks once, then turns this off)

    def _check(self, x_t, t, y=None):
        float_tensor("x_t", x_t)
        D = self.means.shape[1]
        if math.prod(x_t.shape[1:]) != D:
            raise ValueError(f"x_t must have shape (B, {D}) (or (B, ...) with {D} features per sample, the "
                             f"means' D), got {tuple(x_t.shape)}")
        if y is not None:
            raise ValueError("the Gaussian-mixture denoiser is unconditional: pass y=None")
        return check_timesteps(t, self.schedule.num_timesteps, x_t.shape[0], check_values=self.check_values)

    def _noised_components(self, x_t, t):
        """x flattened (B, D), ᾱ_t (B, 1), component centres √ᾱ_t μ_k (B, K, D), variances v_k (B, K)."""
        t = torch.as_tensor(t).reshape(-1).expand(x_t.shape[0]).cpu()
        x = x_t.reshape(x_t.shape[0], -1).double().cpu()
        alpha_bar = self.schedule.alphas_cumprod[t].reshape(-1, 1)
        centres = alpha_bar.sqrt()[:, :, None] * self.means[None]
        var = alpha_bar * self.stds[None] ** 2 + (1 - alpha_bar)
        return x, alpha_bar, centres, var

    def responsibilities(self, x_t, t):
        """r_k(x_t) = P(component k | x_t) at timestep t. Returns (B, K) float64."""
        t = self._check(x_t, t)
        return self._responsibilities(x_t, t)

    def log_responsibilities(self, x_t, t):
        """log r_k(x_t) = log P(component k | x_t) at timestep t, differentiable in x_t: the exact noisy
        classifier's log-probabilities (logits for classifier guidance). Returns (B, K) float64."""
        t = self._check(x_t, t)
        return torch.log_softmax(self._log_joint(x_t, t), dim=1)

    def _log_joint(self, x_t, t):
        """log w_k + log N(x_t; √ᾱ_t μ_k, v_k I) up to a constant, (B, K)."""
        x, _, centres, var = self._noised_components(x_t, t)
        sq = ((x[:, None, :] - centres) ** 2).sum(-1)  # (B, K)
        return torch.log(self.weights)[None] - 0.5 * sq / var - 0.5 * x.shape[1] * torch.log(var)

    def _responsibilities(self, x_t, t):
        return torch.softmax(self._log_joint(x_t, t), dim=1)

    def log_prob(self, x_t, t):
        """log q_t(x_t) = log Σ_k w_k N(x_t; √ᾱ_t μ_k, v_k I), (B,) float64, differentiable in x_t: its
        gradient is the score ∇ log q_t that ε* rescales, ε* = −√(1 − ᾱ_t) · ∇ log q_t."""
        t = self._check(x_t, t)
        x, _, centres, var = self._noised_components(x_t, t)
        sq = ((x[:, None, :] - centres) ** 2).sum(-1)  # (B, K)
        log_normal = -0.5 * sq / var - 0.5 * x.shape[1] * torch.log(2 * math.pi * var)
        return torch.logsumexp(torch.log(self.weights)[None] + log_normal, dim=1)

    def __call__(self, x_t, t, y=None):
        t = self._check(x_t, t, y)
        x, alpha_bar, centres, var = self._noised_components(x_t, t)
        r = self._responsibilities(x_t, t)  # (B, K)
        score_terms = (x[:, None, :] - centres) / var[:, :, None]  # (B, K, D)
        eps = (1 - alpha_bar).sqrt() * (r[:, :, None] * score_terms).sum(1)  # (B, D)
        return eps.reshape(x_t.shape).to(device=x_t.device, dtype=x_t.dtype)

    def sample_data(self, n, generator=None):
        """n draws of x_0 from the mixture. Returns (n, D) float64."""
        n, generator = positive_int("n", n), check_generator(generator)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z


class OptimalVariance(NamedTuple):
    """Per step of a DDPM chain, in the order ``sample`` runs it (descending t); all (S,) float64."""

    timesteps: torch.Tensor  # training timestep the model is called with at each step
    posterior_variance: torch.Tensor  # β̃ of the chain's step ("fixed_small"); 0 at the last step
    betas: torch.Tensor  # β of the chain's step ("fixed_large")
    optimal: torch.Tensor  # σ*², the variance that makes p(x_{t−1} | x_t) closest to q(x_{t−1} | x_t)

    @property
    def fraction(self) -> torch.Tensor:
        """f* = (log σ*² − log β̃)/(log β − log β̃): where σ*² sits between β̃ (0) and β (1) in log space,
        the f of Nichol & Dhariwal's Eq. 15; NaN at the last step, where β̃ = 0 (no noise is added there)."""
        log_tilde = self.posterior_variance.log()
        f = (self.optimal.log() - log_tilde) / (self.betas.log() - log_tilde)
        return torch.where(self.posterior_variance > 0, f, torch.full_like(f, float("nan")))


@torch.no_grad()
def optimal_variance(eps_model, schedule, x0, num_steps=None, generator=None) -> OptimalVariance:
    """The best single σ² for each step of the DDPM chain that ``sample(..., num_steps=num_steps)`` runs,
    for a model whose mean is built from ε̂ (Ho et al. 2020, Eq. 11), estimated on the data ``x0``.

    The true reverse step q(x_{t−1} | x_t) averages the posterior N(μ̃(x_t, x_0), β̃ I) (Ho et al., Eqs. 6–7)
    over x_0 ~ q(x_0 | x_t), so its covariance is β̃ I + c² Cov(x_0 | x_t), c = √ᾱ_{t−1} β_t / (1 − ᾱ_t).
    A Gaussian with that mean and variance σ² I is closest in KL (averaged over x_t) when σ² is the
    average variance per dimension:  σ*² = β̃_t + c² · E‖x_0 − x̂_0(x_t)‖² / d,  with x̂_0 from ε̂
    (the same moment matching as Bao et al. 2022, "Analytic-DPM", Theorem 1). With the exact denoiser
    x̂_0 = E[x_0 | x_t]: data fixed by x_t gives β̃, data ~ N(0, I) gives exactly β.
    With ``num_steps`` < T the chain is the respaced one (β̃, β and c of its own steps).

    Args: eps_model(x_t, t) → ε̂ (or ε̂ and v, which is ignored); x0 (N, ...) samples of the data,
          in the dtype the model takes; one fresh ε per step from ``generator``.
    """
    check_schedule(schedule)
    x0 = float_tensor("x0", x0, min_ndim=2)
    T = schedule.num_timesteps
    num_steps = check_num_steps(T if num_steps is None else num_steps, T)
    check_generator(generator)
    kept = sampling_timesteps(T, num_steps, "trailing").flip(0)  # ascending: chain step j ↔ kept[j]
    chain = schedule if num_steps == T else respace(schedule, kept)
    c = chain.alphas_cumprod_prev.sqrt() * chain.betas / (1 - chain.alphas_cumprod)  # (S,) x_0's weight in μ̃
    mse = torch.empty(num_steps, dtype=torch.float64)
    for j, t in enumerate(kept.tolist()):
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
        x_t = q_sample(schedule, x0, t_batch, torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(x0))
        eps = split_model_output(eps_model(x_t, t_batch), x_t)[0]
        x0_hat = predict_x0(schedule, x_t.double(), t_batch, eps.double())
        mse[j] = (x0.double() - x0_hat).pow(2).mean()  # E‖x_0 − x̂_0‖² / d
    optimal = chain.posterior_variance + c ** 2 * mse
    return OptimalVariance(kept.flip(0), chain.posterior_variance.flip(0), chain.betas.flip(0), optimal.flip(0))


def with_optimal_variance(eps_model, optimal: OptimalVariance):
    """A learned-variance model made from an ε-model and ``optimal_variance``'s σ*²: it returns ε̂ and
    v = 2f* − 1 stacked (2C channels), so ``sample(..., variance="learned_range", num_steps=S)`` on the
    same chain adds exactly σ*² at every step (v = 0 at the last step, which adds no noise)."""
    if not isinstance(optimal, OptimalVariance):
        raise TypeError(f"optimal must be an OptimalVariance (from optimal_variance), got {type(optimal).__name__}")
    v_of_t = dict(zip(optimal.timesteps.tolist(), (2 * optimal.fraction.nan_to_num(0.5) - 1).tolist()))

    def model(x_t, t, y=None):
        eps = eps_model(x_t, t) if y is None else eps_model(x_t, t, y)
        t_value = int(torch.as_tensor(t).reshape(-1)[0])
        if t_value not in v_of_t:
            raise ValueError(f"t={t_value} is not a step of the chain σ*² was computed for ({len(v_of_t)} steps)")
        return torch.cat([eps, torch.full_like(eps, v_of_t[t_value])], dim=1)

    return model
