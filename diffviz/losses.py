"""The training losses: L_simple (Ho et al. 2020, Eq. 14), its min-SNR-γ weighting (Hang et al. 2023),
and L_hybrid for a model that also learns its variance (Nichol & Dhariwal 2021, Sec. 3.1).

    L_simple = E_{t, x_0, ε} ‖ε − ε̂_θ(x_t, t)‖²           (mean over every dimension)
    L_hybrid = L_simple + λ · L_vlb,  λ = 0.001,  L_vlb = Σ_t L_t  estimated by T · L_t at the batch's t

L_t is ``vlb.vlb_term`` in bits/dim with the mean of p_θ built from ε̂ with its gradient STOPPED: the
bound trains only v, the variance output, while L_simple alone trains the mean (Sec. 3.1: "we apply
a stop-gradient to the μ_θ(x_t, t) output for the L_vlb term"). improved-diffusion writes the same
sum as mse + vb · T / 1000 (its RESCALED_MSE); with T = 1000 the bound's term enters with weight 1.
t is 0-based (code t = k is the paper's t = k + 1).

``loss_type`` swaps the squared ε error of L_simple for another per-element error e = ε̂ − ε, as the
Annotated Diffusion notebook (Rogge & Rasul 2022) does with the Huber loss:
    "l2":    e²
    "l1":    |e|
    "huber": ½e² where |e| < 1, else |e| − ½   (smooth L1, torch's F.smooth_l1_loss with beta = 1)
Each is averaged over an example's dimensions, then over the batch (min-SNR-weighted when asked).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .variances import split_model_output
from .vlb import vlb_term_unchecked

VLB_WEIGHT = 0.001  # λ of L_hybrid (Nichol & Dhariwal 2021, Sec. 3.1)
LOSS_TYPES = ("l2", "l1", "huber")  # the per-element ε error: squared, absolute, smooth L1 (beta = 1)


def diffusion_loss(schedule, model_output, noise, x0, x_t, t, weights=None, vlb_weight=VLB_WEIGHT,
                   loss_type="l2") -> torch.Tensor:
    """The loss of one batch: L_simple, or L_hybrid when ``model_output`` carries v (2C channels).

    Args: model_output (B, C, ...) = ε̂, or (B, 2C, ...) = ε̂ and v (a ``learn_sigma`` model);
          noise, x0, x_t (B, C, ...) — the ε that made x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε; t (B,) int64;
          weights (T,) per-timestep weights of the ε error (min-SNR-γ) or None; vlb_weight λ;
          loss_type the ε error, one of LOSS_TYPES (module docstring); the L_vlb term is the same for all.
    Returns: a 0-dim float32 tensor, not yet backpropagated.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; use one of {', '.join(LOSS_TYPES)}")
    eps_pred, v = split_model_output(model_output.float(), x_t)
    per_example = eps_error(eps_pred, noise, loss_type).flatten(1).mean(1)  # (B,)
    loss = per_example.mean() if weights is None else (weights[t] * per_example).mean()
    if v is None:
        return loss
    return loss + vlb_weight * schedule.num_timesteps * vlb_loss(schedule, eps_pred, v, x0, x_t, t).mean()


def eps_error(eps_pred, noise, loss_type) -> torch.Tensor:
    """The per-element error of ε̂ (module docstring), same shape as ``noise``."""
    if loss_type == "l1":
        return (eps_pred - noise).abs()
    if loss_type == "huber":
        return F.smooth_l1_loss(eps_pred, noise, reduction="none", beta=1.0)  # ½e² if |e| < 1, else |e| − ½
    return (eps_pred - noise).pow(2)  # "l2"


def vlb_loss(schedule, eps_pred, v, x0, x_t, t) -> torch.Tensor:
    """L_t in bits/dim per example, (B,), with the mean's gradient stopped: only v learns from it."""
    frozen = eps_pred.detach().double()
    terms = vlb_term_unchecked(schedule, x0.double(), x_t.double(), t, frozen, "learned_range", v.double())
    return terms.float()
