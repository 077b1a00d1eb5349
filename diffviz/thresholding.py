"""What a sampler does to x̂_0 before it steps: nothing, static or dynamic thresholding.

A sampler step computes x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t and then moves toward it. With a strong
guidance scale, or an imperfect network at large t, x̂_0 leaves [−1, 1] far behind, and the samples
over-saturate. Two fixes, named as diffusers names them:
- ``clip_sample=True`` — static thresholding: clamp x̂_0 to [−1, 1] (Ho et al.'s released code);
- ``thresholding=True`` — dynamic thresholding (Saharia et al. 2022, Sec. 2.3): per sample,
  s = the ``dynamic_thresholding_ratio`` quantile of |x̂_0|, clamped to [1, ``sample_max_value``];
  x̂_0 ← clamp(x̂_0, −s, s)/s. Saturated pixels are pushed inward instead of piling up at ±1.
"""
from __future__ import annotations

import torch

from . import validate


def threshold_spec(clip_sample=False, thresholding=False, dynamic_thresholding_ratio=0.995,
                   sample_max_value=1.0):
    """Check the thresholding arguments once; returns None (nothing), "clip", or
    ("dynamic", ratio, max_value) — what ``apply_threshold`` takes."""
    clip, dynamic = validate.check_bool("clip_sample", clip_sample), validate.check_bool("thresholding", thresholding)
    if clip and dynamic:
        raise ValueError("clip_sample and thresholding are two ways to bound x̂_0: choose one")
    ratio = validate.finite_number("dynamic_thresholding_ratio", dynamic_thresholding_ratio, low=0, high=1,
                                   low_open=True)
    max_value = validate.finite_number("sample_max_value", sample_max_value, low=1)
    if dynamic:
        return ("dynamic", ratio, max_value)
    return "clip" if clip else None


def apply_threshold(x0, spec):
    """x̂_0 after the thresholding ``spec`` of ``threshold_spec`` (arguments already checked)."""
    if spec is None:
        return x0
    if spec == "clip":
        return x0.clamp(-1, 1)
    _, ratio, max_value = spec
    s = torch.quantile(x0.detach().abs().flatten(1).float(), ratio, dim=1).clamp(1.0, max_value)  # (B,)
    s = s.to(x0.dtype).reshape(-1, *[1] * (x0.ndim - 1))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def dynamic_threshold(x0, ratio=0.995, max_value=1.0) -> torch.Tensor:
    """Dynamic thresholding of x̂_0 (Saharia et al. 2022, Sec. 2.3; diffusers' ``thresholding``):
    per sample, s = the ``ratio`` quantile of |x̂_0| over its pixels, clamped to [1, max_value];
    x̂_0 ← clamp(x̂_0, −s, s) / s. A sample already inside [−1, 1] is unchanged (s = 1).
    Args: x0 (B, ...); ratio in (0, 1]; max_value ≥ 1. Returns (B, ...) in [−1, 1].
    """
    x0 = validate.float_tensor("x0", x0, min_ndim=2)
    return apply_threshold(x0, threshold_spec(thresholding=True, dynamic_thresholding_ratio=ratio,
                                              sample_max_value=max_value))
