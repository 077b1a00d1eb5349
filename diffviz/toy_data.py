"""2-D toy point clouds: swiss roll, moons, circles, checkerboard and a mixture of 8 Gaussians.

Each set is centred and divided by ONE fixed constant (isotropic, so shapes are not distorted),
chosen so the average per-coordinate variance is ≈ 1; the constants are part of the definition
and do not depend on n or the seed. Randomness comes only from ``seed`` (numpy.random.default_rng).
``diffviz.data.load_dataset`` wraps these points in a ``Dataset``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .validate import finite_number, positive_int

TOY_DATASETS = ("swiss_roll", "moons", "gaussian_mixture", "checkerboard", "circles")
TOY_NUM_CLASSES = {"moons": 2, "circles": 2, "gaussian_mixture": 8}  # sets without labels are absent
TOY_SPLITS = ("train", "test")


@dataclass(frozen=True)
class GaussianMixtureParams:
    """Exact parameters of the "gaussian_mixture" toy set: p(x) = Σ_k w_k N(x; μ_k, s_k² I)."""

    means: torch.Tensor    # (K, 2) float64, μ_k = r (cos 2πk/K, sin 2πk/K)
    stds: torch.Tensor     # (K,) float64, s_k, the per-coordinate standard deviation
    weights: torch.Tensor  # (K,) float64, w_k, summing to 1


def gaussian_mixture_params(num_components: int = 8, radius: float = math.sqrt(2.0),
                            std: float = 0.1) -> GaussianMixtureParams:
    """The classic "8 Gaussians on a circle". The defaults are what load_dataset uses:
    radius √2 and std 0.1 give a per-coordinate variance of r²/2 + s² = 1.01.

    Returns: GaussianMixtureParams, e.g. for GaussianMixtureDenoiser(p.means, p.stds, p.weights, ...).
    """
    num_components = positive_int("num_components", num_components)
    radius = finite_number("radius", radius, low=0)
    std = finite_number("std", std, low=0, low_open=True)
    angles = 2 * math.pi * torch.arange(num_components, dtype=torch.float64) / num_components
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)  # (K, 2)
    stds = torch.full((num_components,), std, dtype=torch.float64)
    weights = torch.full((num_components,), 1.0 / num_components, dtype=torch.float64)
    return GaussianMixtureParams(means=means, stds=stds, weights=weights)


# ---------------------------------------------------------------------- 2-D toy data
# Each generator returns raw points (n, 2) float64 and labels (n,) or None. The fixed
# (centre, scale) below were measured once on 2·10⁶ points; x = (raw − centre) / scale.
_TOY_CENTRE_SCALE = {
    "swiss_roll": ((2.0, 0.21), 6.81),
    "moons": ((0.5, 0.25), 0.712),
    "circles": ((0.0, 0.0), 0.561),
    "checkerboard": ((0.0, 0.0), 2 / math.sqrt(3)),  # exact: x₁ ~ U(−2, 2) has std 2/√3
    "gaussian_mixture": ((0.0, 0.0), 1.0),           # already defined at unit scale
}


def _swiss_roll(rng, n):
    """t ~ U(1.5π, 4.5π); (t cos t, t sin t) + N(0, 0.5²) -- sklearn's roll seen from above."""
    t = 1.5 * math.pi * (1 + 2 * rng.random(n))
    return np.stack([t * np.cos(t), t * np.sin(t)], 1) + 0.5 * rng.standard_normal((n, 2)), None


def _moons(rng, n):
    """Two interleaved half circles (as sklearn.datasets.make_moons) + N(0, 0.1²); label = moon."""
    t, y = math.pi * rng.random(n), rng.integers(0, 2, n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    return np.where(y[:, None] == 0, upper, lower) + 0.1 * rng.standard_normal((n, 2)), y


def _circles(rng, n):
    """Concentric circles of radius 1 and 0.5 + N(0, 0.05²); label 0 = outer, 1 = inner."""
    t, y = 2 * math.pi * rng.random(n), rng.integers(0, 2, n)
    radius = np.where(y == 0, 1.0, 0.5)[:, None]
    return radius * np.stack([np.cos(t), np.sin(t)], 1) + 0.05 * rng.standard_normal((n, 2)), y


def _checkerboard(rng, n):
    """Uniform on the 8 dark squares of a 4x4 board spanning [−2, 2]² (as in FFJORD)."""
    x1 = 4 * rng.random(n) - 2
    x2 = rng.random(n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return np.stack([x1, x2], 1), None


def _gaussian_mixture(rng, n):
    """k ~ Categorical(w); x = μ_k + s_k·z, z ~ N(0, I); label = k."""
    params = gaussian_mixture_params()
    k = rng.choice(len(params.weights), size=n, p=params.weights.numpy())
    z = rng.standard_normal((n, 2))
    return params.means.numpy()[k] + params.stds.numpy()[k, None] * z, k


_TOY_GENERATORS = {"swiss_roll": _swiss_roll, "moons": _moons, "circles": _circles,
                   "checkerboard": _checkerboard, "gaussian_mixture": _gaussian_mixture}


def toy_points(name: str, split: str = "train", n: int = 10_000, seed: int = 0):
    """n points of toy set ``name``: x (n, 2) float32 and labels y (n,) int64, or None for sets
    without classes. "train" and "test" draw from independent streams default_rng([seed, 0 or 1]).
    Arguments are trusted: ``load_dataset`` checks them."""
    rng = np.random.default_rng([seed, TOY_SPLITS.index(split)])
    raw, labels = _TOY_GENERATORS[name](rng, n)  # (n, 2), (n,) or None
    centre, scale = _TOY_CENTRE_SCALE[name]
    x = torch.from_numpy((raw - np.array(centre)) / scale).float()  # (n, 2)
    y = None if labels is None else torch.from_numpy(np.asarray(labels)).long()
    return x, y


def mixture_spread(points, params: GaussianMixtureParams, far: float = 0.3):
    """How well 2-D samples reproduce the mixture's components: each point is assigned to its nearest
    centre μ_k. Returns (spread, far_share): the standard deviation of the offsets x − μ_k per
    coordinate (the data's own is s_k, 0.1 for the default mixture), and the share of points farther
    than ``far`` from every centre (3 s_k = 0.3: about 1.1% of real points).

    Args: points (N, 2) tensor or array; params from ``gaussian_mixture_params``.
    """
    x = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != params.means.shape[1] or x.shape[0] == 0:
        raise ValueError(f"points must have shape (N, {params.means.shape[1]}) with N >= 1, got {tuple(x.shape)}")
    far = finite_number("far", far, low=0, low_open=True)
    distance = torch.cdist(x, params.means)  # (N, K)
    offsets = x - params.means[distance.argmin(1)]
    return offsets.std().item(), (distance.min(1).values > far).double().mean().item()
