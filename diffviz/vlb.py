"""The variational bound of a diffusion model, term by term, in bits per dimension.

Ho et al. 2020, Eq. 5 (paper indices): −log p_θ(x_0) ≤ L_T + Σ_{t=2..T} L_{t−1} + L_0, with
  L_T     = KL(q(x_T | x_0) ‖ N(0, I))                       → ``prior_bpd`` (no parameters)
  L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))    → ``vlb_term`` at code t ≥ 1
  L_0     = −log p_θ(x_0 | x_1), a discretized Gaussian      → ``vlb_term`` at code t = 0
In code indices (code t = k is the paper's t = k + 1) the terms are indexed by the step they
undo: ``vlb_term(t)`` is the cost of the reverse step out of x_t, for t = 0, …, T − 1.

p_θ(x_{t−1} | x_t) has the mean of the posterior with x̂_0 = ``predict_x0`` in place of x_0 (Eq. 11,
no clipping) and the variance the sampler uses: β̃_t ("fixed_small"), β_t ("fixed_large"), or
Nichol & Dhariwal's interpolation ("learned_range", their Eq. 15) from the network's raw output
v ∈ [−1, 1]: log σ² = f·log β_t + (1 − f)·log β̃_t, f = (v + 1)/2. β̃ is 0 at code t = 0, so the
log-variance there uses β̃ at code t = 1 for every variance type, as Ho et al.'s released code
does. The decoder L_0 is Eq. 13: 256 bins of width 2/255 on [−1, 1], the outermost open to ±∞.

Bits per dimension: nats / ln 2, averaged over every dimension but the batch.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from . import validate
from .diffusion import (check_schedule, check_step_inputs, predict_x0_unchecked, q_posterior_unchecked,
                        q_sample_from_tables, q_sample_tables)
from .schedules import extract
from .variances import VARIANCE_TYPES, check_model_variance, model_log_variance, split_model_output

HALF_BIN = 1.0 / 255.0  # half the width of one of the 256 pixel levels on [−1, 1]


class ELBO(NamedTuple):
    total: torch.Tensor  # (B,) the bound in bits/dim: prior + Σ_t terms (or T × their mean over sampled t)
    prior: torch.Tensor  # (B,) L_T in bits/dim
    terms: torch.Tensor  # (K, B) the terms at ``timesteps``, bits/dim
    timesteps: torch.Tensor  # (K,) code t of each term: all of 0..T−1, or the sampled ones


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) per element, in nats (broadcasting)."""
    return 0.5 * (logvar2 - logvar1 - 1.0 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x, mean, log_scale) -> torch.Tensor:
    """log P(x's bin) under N(mean, e^{2·log_scale}) per element, in nats (Ho et al. 2020, Eq. 13).

    x lies on the 256 levels of [−1, 1]; its bin is [x − 1/255, x + 1/255], the lowest bin extends
    to −∞ and the highest to +∞. Computed in float64 with log Φ, so far tails stay finite.
    """
    x, mean, log_scale = (v.double() for v in torch.broadcast_tensors(x, mean, log_scale))
    inv_scale = torch.exp(-log_scale)
    upper, lower = (x - mean + HALF_BIN) * inv_scale, (x - mean - HALF_BIN) * inv_scale
    log_cdf_upper = torch.special.log_ndtr(upper)  # log Φ(upper): the lowest bin
    log_sf_lower = torch.special.log_ndtr(-lower)  # log (1 − Φ(lower)): the highest bin
    # Φ(upper) − Φ(lower), taken on the side of 0 where both are small, so nothing cancels
    flip = lower > 0
    a, b = torch.where(flip, -upper, lower), torch.where(flip, -lower, upper)
    log_mid = torch.special.log_ndtr(b) + torch.log1p(-torch.exp(torch.special.log_ndtr(a) - torch.special.log_ndtr(b)))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_sf_lower, log_mid))


def _bits_per_dim(nats: torch.Tensor) -> torch.Tensor:
    return nats.flatten(1).mean(1) / math.log(2.0)


def vlb_term(schedule, x0, x_t, t, eps, variance="fixed_small", model_variance=None) -> torch.Tensor:
    """One term of the bound for the reverse step out of x_t, in bits/dim, (B,).

    Code t ≥ 1: KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)). Code t = 0: −log p_θ(x_0 | x_1) under
    the discretized Gaussian decoder (x_0 on the 256 levels of [−1, 1]).
    Args: x0, x_t, eps (B, ...) — eps is the network's ε̂ at (x_t, t); t int or (B,) in [0, T−1];
          variance one of ``variances.VARIANCE_TYPES``; model_variance (B, ...), the raw v, for "learned_range".
    """
    schedule = check_schedule(schedule)
    model_variance = check_model_variance(variance, model_variance, x_t)
    t = check_step_inputs(schedule, t, x_t=x_t, x0=x0, eps=eps)
    return vlb_term_unchecked(schedule, x0.double(), x_t.double(), t, eps.double(), variance, model_variance)


def vlb_term_unchecked(schedule, x0, x_t, t, eps, variance, model_variance):
    """``vlb_term`` for checked float64 arguments (``elbo`` and the L_hybrid loss call it per step);
    differentiable in ``eps`` and ``model_variance``."""
    true_mean, true_var = q_posterior_unchecked(schedule, x0, x_t, t)
    model_mean = q_posterior_unchecked(schedule, predict_x0_unchecked(schedule, x_t, t, eps), x_t, t).mean
    log_var = model_log_variance(schedule, t, x_t, variance, model_variance)
    kl = normal_kl(true_mean, true_var.clamp_min(1e-300).log(), model_mean, log_var)
    decoder = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * log_var)
    t_full = torch.as_tensor(t).reshape(-1, *[1] * (x0.ndim - 1)).to(x0.device)
    return _bits_per_dim(torch.where(t_full == 0, decoder, kl).expand_as(x0))


def prior_bpd(schedule, x0) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) in bits/dim, (B,): q(x_T | x_0) = N(√ᾱ x_0, (1 − ᾱ) I) at code
    t = T − 1. Small when the schedule ends at almost pure noise; no network involved."""
    schedule = check_schedule(schedule)
    x0 = validate.float_tensor("x0", x0, min_ndim=2).double()
    alpha_bar = schedule.alphas_cumprod[-1].double()
    mean = alpha_bar.sqrt() * x0
    return _bits_per_dim(normal_kl(mean, (1 - alpha_bar).log(), torch.zeros_like(x0), torch.zeros_like(x0)))


@torch.no_grad()
def elbo(eps_model, schedule, x0, y=None, num_timesteps_sampled=None, variance="fixed_small",
         generator=None, progress=True) -> ELBO:
    """The variational bound −log p_θ(x_0) ≤ ELBO in bits/dim for each image of x0 (B, ...).

    ``num_timesteps_sampled=None``: every term, T network calls on the batch (exact up to ε's draw).
    An int K: K timesteps drawn uniformly (with replacement) from ``generator``; Σ_t L_t is
    estimated without bias by T · mean of the K terms, but with a large variance: the smallest t
    carry most of the bound (for the shipped model the decoder at t = 0 alone is over 40% of it), so a
    draw that hits t = 0 jumps. Each term draws its own ε for x_t.
    A ``learn_sigma`` model returns ε̂ and v stacked on dim 1 (2C channels): "learned_range" uses its
    v, a fixed variance ignores it.
    """
    schedule = check_schedule(schedule)
    validate.one_of("variance", variance, VARIANCE_TYPES)
    x0 = validate.float_tensor("x0", x0, min_ndim=2)
    T = schedule.num_timesteps
    validate.check_generator(generator)
    if num_timesteps_sampled is None:
        timesteps = torch.arange(T)
    else:
        count = validate.positive_int("num_timesteps_sampled", num_timesteps_sampled)
        timesteps = torch.randint(0, T, (count,), generator=generator)
    iterator = timesteps.tolist()
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="variational bound", leave=False)
    terms, tables, x0_64 = [], q_sample_tables(schedule, x0.device, x0.dtype), x0.double()
    for t in iterator:
        eps = torch.randn(x0.shape, generator=generator, device="cpu").to(x0)
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
        x_t = q_sample_from_tables(tables, x0, t_batch, eps)  # Eq. 4
        out, v = split_model_output(eps_model(x_t, t_batch) if y is None else eps_model(x_t, t_batch, y), x_t)
        if variance != "learned_range":
            v = None  # a learn_sigma model scored with a fixed variance: its v is not used
        elif v is None:
            raise ValueError("variance='learned_range' needs a model that outputs ε̂ and v (2C channels, learn_sigma)")
        terms.append(vlb_term_unchecked(schedule, x0_64, x_t.double(), t_batch, out.double(), variance,
                                        None if v is None else v.double()))
    terms = torch.stack(terms)  # (K, B)
    prior = prior_bpd(schedule, x0)
    body = terms.sum(0) if num_timesteps_sampled is None else T * terms.mean(0)
    return ELBO(prior + body, prior, terms, timesteps)


