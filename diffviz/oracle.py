"""Exact denoisers for data whose distribution we know: a yardstick for learned models.

If x_0 follows a mixture of isotropic Gaussians Σ_k w_k N(μ_k, s_k² I), then x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε
follows Σ_k w_k N(√ᾱ_t μ_k, v_k I) with v_k = ᾱ_t s_k² + 1 − ᾱ_t, and the best possible noise
prediction (the minimiser of L_simple) is
    ε*(x_t, t) = E[ε | x_t] = −√(1 − ᾱ_t) · ∇ log p_t(x_t) = √(1 − ᾱ_t) · Σ_k r_k(x_t) (x_t − √ᾱ_t μ_k) / v_k,
with r_k the posterior responsibilities of the components (Vincent 2011; Song et al. 2021, Eq. 12
relates ε to the score). A single Gaussian is the one-component case.
"""
from __future__ import annotations

import torch

from .schedules import NoiseSchedule


class GaussianMixtureDenoiser:
    """Callable ``eps(x_t, t)`` giving ε* for a mixture of isotropic Gaussians (float64 inside).

    Args: means (K, D); stds (K,) or a float; weights (K,) summing to 1 (uniform when None);
          schedule: the NoiseSchedule the data was noised with.
    Calling it: x_t (B, D) or (B, ...) flattening to D features; t (B,) int64 in [0, T−1]
    (code t = k is the paper's t = k + 1). Returns ε* with x_t's shape and dtype.
    """

    def __init__(self, means, stds, weights=None, schedule: NoiseSchedule = None):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(self.means.shape)}")
        K = self.means.shape[0]
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(K).clone()
        if (self.stds < 0).any():
            raise ValueError("stds must be >= 0")
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (K,) or (w < 0).any() or abs(w.sum().item() - 1) > 1e-6:
            raise ValueError(f"weights must be K={K} non-negative numbers summing to 1, got {weights!r}")
        self.weights = w
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError("schedule must be a NoiseSchedule")
        self.schedule = schedule

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
        x, _, centres, var = self._noised_components(x_t, t)
        sq = ((x[:, None, :] - centres) ** 2).sum(-1)  # (B, K)
        log_p = torch.log(self.weights)[None] - 0.5 * sq / var - 0.5 * x.shape[1] * torch.log(var)
        return torch.softmax(log_p, dim=1)

    def __call__(self, x_t, t, y=None):
        x, alpha_bar, centres, var = self._noised_components(x_t, t)
        r = self.responsibilities(x_t, t)  # (B, K)
        score_terms = (x[:, None, :] - centres) / var[:, :, None]  # (B, K, D)
        eps = (1 - alpha_bar).sqrt() * (r[:, :, None] * score_terms).sum(1)  # (B, D)
        return eps.reshape(x_t.shape).to(device=x_t.device, dtype=x_t.dtype)

    def sample_data(self, n, generator=None):
        """n draws of x_0 from the mixture. Returns (n, D) float64."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z
