"""The training losses: L_simple (Ho et al. 2020, Eq. 14), its min-SNR-γ weighting (Hang et al. 2023),
and L_hybrid for a model that also learns its variance (Nichol & Dhariwal 2021, Sec. 3.1).

    L_simple = E_{t, x_0, ε} ‖ε − ε̂_θ(x_t, t)‖²           (mean over every dimension)
    L_hybrid = L_simple + λ · L_vlb,  λ = 0.001,  L_vlb = Σ_t L_t  estimated by T · L_t at the batch's t

L_t is ``vlb.vlb_term`` in bits/dim with the mean of p_θ built from ε̂ with its gradient STOPPED: the
bound trains only v, the variance output, while L_simple alone trains the mean (Sec. 3.1: "we apply
a stop-gradient to the μ_θ(x_t, t) output for the L_vlb term"). improved-diffusion writes the same
sum as mse + vb · T / 1000 (its RESCALED_MSE); with T = 1000 the bound's term enters with weight 1.
t is 0-based (code t = k is the paper's t = k + 1).
"""
from __future__ import annotations

import torch

from .variances import split_model_output
from .vlb import vlb_term_unchecked

VLB_WEIGHT = 0.001  # λ of L_hybrid (Nichol & Dhariwal 2021, Sec. 3.1)


def diffusion_loss(schedule, model_output, noise, x0, x_t, t, weights=None, vlb_weight=VLB_WEIGHT) -> torch.Tensor:
    """The loss of one batch: L_simple, or L_hybrid when ``model_output`` carries v (2C channels).

    Args: model_output (B, C, ...) = ε̂, or (B, 2C, ...) = ε̂ and v (a ``learn_sigma`` model);
          noise, x0, x_t (B, C, ...) — the ε that made x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε; t (B,) int64;
          weights (T,) per-timestep weights of the ε error (min-SNR-γ) or None; vlb_weight λ.
    Returns: a 0-dim float32 tensor, not yet backpropagated.
    """
    eps_pred, v = split_model_output(model_output.float(), x_t)
    per_example = (eps_pred - noise).pow(2).flatten(1).mean(1)  # (B,)
    loss = per_example.mean() if weights is None else (weights[t] * per_example).mean()
    if v is None:
        return loss
    return loss + vlb_weight * schedule.num_timesteps * vlb_loss(schedule, eps_pred, v, x0, x_t, t).mean()


def vlb_loss(schedule, eps_pred, v, x0, x_t, t) -> torch.Tensor:
    """L_t in bits/dim per example, (B,), with the mean's gradient stopped: only v learns from it."""
    frozen = eps_pred.detach().double()
    terms = vlb_term_unchecked(schedule, x0.double(), x_t.double(), t, frozen, "learned_range", v.double())
    return terms.float()
