"""Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs", Sec. 4).

A classifier p_φ(y | x_t) trained on noisy images steers an (unconditional) ε-model towards class y.
By Bayes, ∇ log p(x_t | y) = ∇ log p(x_t) + ∇ log p(y | x_t), and ε = −√(1 − ᾱ_t) · ∇ log p(x_t)
(Song et al. 2021), so the noise prediction of the conditional model is (their Eq. 14)

    ε̂(x_t | y) = ε_θ(x_t) − s · √(1 − ᾱ_t) · ∇_{x_t} log p_φ(y | x_t),

with s = 1 the exact conditional and s > 1 a sharper one (p(y | x)^s). Any sampler that uses ε̂ —
DDIM (their Algorithm 2) or DDPM — can use the guided ε̂ instead. For DDPM, their Algorithm 1
shifts the mean by s·Σ·∇ log p_φ(y | x_t) instead; since Σ = σ_t² ≈ β_t and the ε̂ → μ map scales
ε̂ by β_t / √(1 − ᾱ_t) / √α_t, the two agree to first order in β_t.

``sample(..., y=labels, classifier=fn, classifier_scale=s)`` runs it; ``classifier_gradient`` draws
the gradient images. ``fn(x_t, t)`` returns logits (B, K); t is 0-based in [0, T − 1] (code t = k
is the paper's t = k + 1). Shape letters: B batch, K classes.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .validate import check_labels, check_timesteps, finite_number, float_tensor, label_tensor


def _classifier_config(classifier, name):
    """(K, T) from ``classifier.config`` when it has one (a ``NoisyClassifier``), else (None, None)."""
    if not callable(classifier):
        raise TypeError(f"{name} must be callable as {name}(x_t, t) → logits (B, K), got {type(classifier).__name__}")
    config = getattr(getattr(classifier, "_orig_mod", classifier), "config", None)
    return getattr(config, "num_classes", None), getattr(config, "num_timesteps", None)


def classifier_gradient_unchecked(classifier, x_t, t, y, y_max=None) -> torch.Tensor:
    """``classifier_gradient`` for checked arguments: t (B,) int64 and y (B,) int64 on x_t's device.
    Only the logits' shape is checked (against B and, when given, the largest label ``y_max``)."""
    with torch.enable_grad():  # the samplers run under no_grad: the gradient is taken here only
        x_in = x_t.detach().requires_grad_(True)
        logits = classifier(x_in, t)  # (B, K)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != x_t.shape[0]:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"classifier(x_t, t) must return logits of shape ({x_t.shape[0]}, K), got {got}")
        if y_max is not None and y_max >= logits.shape[1]:
            raise ValueError(f"y holds label {y_max} but the classifier returns K = {logits.shape[1]} logits "
                             f"(labels 0..{logits.shape[1] - 1})")
        log_p = torch.log_softmax(logits.double(), dim=1)  # (B, K) log p_φ(k | x_t)
        selected = log_p.gather(1, y.reshape(-1, 1)).sum()  # Σ_b log p_φ(y_b | x_t,b): rows are independent
        (grad,) = torch.autograd.grad(selected, x_in)
    return grad.detach()  # (B, ...)


def classifier_gradient(classifier, x_t, t, y) -> torch.Tensor:
    """∇_{x_t} log p_φ(y | x_t) = ∇_{x_t} log softmax(f_φ(x_t, t))_y, one gradient image per sample
    (Dhariwal & Nichol 2021, Algorithm 1's g).

    Args: classifier(x_t, t) → logits (B, K), differentiable in x_t; x_t (B, ...) float;
          t an int or (B,) int64 in [0, T − 1] (code t = k is the paper's t = k + 1);
          y an int or (B,) int64 target classes in [0, K − 1].
    Returns: the gradient, x_t's shape and dtype.
    """
    num_classes, num_timesteps = _classifier_config(classifier, "classifier")
    x_t = float_tensor("x_t", x_t)
    B = x_t.shape[0]
    t = check_timesteps(t, num_timesteps or 2**62, B, check_values=num_timesteps is not None)
    y = check_labels(y, B, num_classes)
    if y is None:
        raise ValueError("y must be the target class: an int or a (B,) integer tensor, got None")
    t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(B)  # (B,)
    y = torch.as_tensor(y, device=x_t.device).reshape(-1).expand(B)  # (B,)
    return classifier_gradient_unchecked(classifier, x_t, t, y, int(y.max()))


class ClassifierGuidance(NamedTuple):
    """The checked settings of a classifier-guided run (made by ``check_classifier_guidance``)."""

    classifier: Callable  # fn(x_t, t) → logits (B, K)
    y: torch.Tensor  # (B,) int64 target classes, on the sampler's device
    scale: float  # s ≥ 0
    y_max: int  # the largest label, checked against K at every call (a shape, no device sync)

    def guide(self, schedule, x_t, t, eps_pred):
        """ε̂ − s · √(1 − ᾱ_t) · ∇_{x_t} log p_φ(y | x_t)  (Dhariwal & Nichol 2021, Eq. 14).

        Args: x_t (B, ...); t (B,) int64, all the same training timestep; eps_pred (B, ...) the ε̂ to guide.
        Returns: the guided ε̂, eps_pred's shape and dtype (eps_pred itself when s = 0)."""
        if self.scale == 0:
            return eps_pred
        one_minus_alpha_bar_t = 1 - schedule.alphas_cumprod[int(t[0])].item()  # float64 on the CPU: no sync
        grad = classifier_gradient_unchecked(self.classifier, x_t, t, self.y, self.y_max)
        return (eps_pred - self.scale * one_minus_alpha_bar_t ** 0.5 * grad).to(eps_pred.dtype)


def check_classifier_guidance(classifier, classifier_scale, y, batch: int):
    """``sample``'s checks of the classifier arguments, done once. Returns (scale, labels): scale
    None without a classifier (else a float ≥ 0; a classifier without a scale gets s = 1), labels
    y as ``check_labels`` gives them, in [0, K − 1] when the classifier's config names K."""
    if classifier is None:
        if classifier_scale is not None:
            raise ValueError(f"classifier_scale={classifier_scale!r} needs a classifier: pass classifier=fn "
                             f"with fn(x_t, t) → logits (B, K)")
        return None, y
    num_classes, _ = _classifier_config(classifier, "classifier")
    scale = 1.0 if classifier_scale is None else finite_number("classifier_scale", classifier_scale, low=0)
    if y is None:
        raise ValueError("classifier guidance needs y, the target class of each sample (an int or (B,) labels)")
    return scale, check_labels(y, batch, num_classes)


def make_guidance(classifier, scale, y, batch: int, device) -> ClassifierGuidance | None:
    """A ``ClassifierGuidance`` for arguments that passed ``check_classifier_guidance`` (None without a
    classifier); y becomes a (B,) int64 tensor on ``device``."""
    if classifier is None:
        return None
    y = label_tensor(y, batch, device)  # (B,)
    return ClassifierGuidance(classifier, y, float(scale), int(y.max()))
