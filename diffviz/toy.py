"""A small MLP ε-model for 2-D toy data (swiss roll, moons, Gaussian mixtures).

    x (B, 2) ──► Linear ──┐
                          + ──► [SiLU → Linear] residual blocks ──► SiLU → Linear ──► ε̂ (B, 2)
    t (B,) ──► sinusoid ──► MLP ──┘   (+ class embedding when conditional)

t is the 0-based timestep in [0, T-1] (code t = k is the paper's t = k + 1). On the CPU it learns a
swiss roll or an 8-Gaussian mixture in under a minute with a wide batch (e.g. 512), lr ≈ 5e-3 and
the cosine schedule; with small batches and the linear schedule it needs many more steps
(notebook 00 shows a recipe that works; see ``diffviz.training``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .unet import timestep_embedding


@dataclass
class ToyConfig:
    data_dim: int = 2  # D, dimension of each data point
    hidden: int = 128  # width of the hidden layers
    num_layers: int = 3  # residual blocks (each SiLU → Linear → SiLU → Linear)
    time_embed_dim: int = 64  # width of the sinusoidal time embedding
    num_classes: int | None = None  # None = unconditional; else labels 0..num_classes-1 (+ null)

    def __post_init__(self):
        for name in ("data_dim", "hidden", "num_layers", "time_embed_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.num_classes is not None and (not isinstance(self.num_classes, int) or self.num_classes < 1):
            raise ValueError(f"num_classes must be None or a positive int, got {self.num_classes!r}")


class ToyMLP(nn.Module):
    """ε_θ(x_t, t[, y]) for points in R^D. Shapes: x (B, D), t (B,), y (B,) or None."""

    def __init__(self, config: ToyConfig | None = None):
        super().__init__()
        self.config = config = config or ToyConfig()
        H = config.hidden
        self.x_in = nn.Linear(config.data_dim, H)
        self.time_mlp = nn.Sequential(nn.Linear(config.time_embed_dim, H), nn.SiLU(), nn.Linear(H, H))
        self.class_embed = nn.Embedding(config.num_classes + 1, H) if config.num_classes else None
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(H, H), nn.SiLU(), nn.Linear(H, H)) for _ in range(config.num_layers)
        )
        self.out = nn.Linear(H, config.data_dim)

    def forward(self, x, t, y=None):
        """ε̂ = ε_θ(x_t, t, y).

        Args: x (B, D); t (B,) timesteps in [0, T-1] or a Python int; y (B,) int64 labels in
              [0, num_classes] (num_classes = null class) or None (= null class; must be None for
              an unconditional model).
        Returns: ε̂ (B, D).
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.config.data_dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.config.data_dim}), got {got}")
        B = x.shape[0]
        if isinstance(t, bool) or not isinstance(t, (int, torch.Tensor)):
            raise TypeError(f"t must be an int or a (B,) tensor, got {type(t).__name__}")
        if isinstance(t, int):
            t = torch.full((B,), t, device=x.device)
        elif t.ndim == 0:
            t = t.reshape(1).expand(B)  # (B,)
        if t.shape != (B,):
            raise ValueError(f"t must have shape ({B},) to match x, got {tuple(t.shape)}")
        h = self.x_in(x) + self.time_mlp(timestep_embedding(t, self.config.time_embed_dim))  # (B, H)
        if self.class_embed is not None:
            if y is None:
                y = torch.full((B,), self.config.num_classes, dtype=torch.long, device=x.device)
            h = h + self.class_embed(y)
        elif y is not None:
            raise ValueError("y was given but the model is unconditional (num_classes=None); pass y=None")
        for block in self.blocks:
            h = h + block(h)  # (B, H)
        return self.out(F.silu(h))  # (B, D)
