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

from .unet_blocks import timestep_embedding
from .validate import check_labels, check_timesteps, positive_int


@dataclass
class ToyConfig:
    data_dim: int = 2  # D, dimension of each data point
    hidden: int = 128  # width of the hidden layers
    num_layers: int = 3  # residual blocks (each SiLU → Linear → SiLU → Linear)
    time_embed_dim: int = 64  # width of the sinusoidal time embedding
    num_classes: int | None = None  # None = unconditional; else labels 0..num_classes-1 (+ null)
    num_timesteps: int = 1000  # T of the training schedule: forward refuses t outside [0, T-1]
    # (a config saved before this field existed loads with the default)
    learn_sigma: bool = False  # also output v of Nichol & Dhariwal Eq. 15: (B, 2D), ε̂ then v

    def __post_init__(self):
        if not isinstance(self.learn_sigma, bool):
            raise TypeError(f"learn_sigma must be True or False, got {self.learn_sigma!r}")
        for name in ("data_dim", "hidden", "num_layers", "time_embed_dim", "num_timesteps"):
            positive_int(name, getattr(self, name))
        if self.num_classes is not None:
            positive_int("num_classes", self.num_classes)
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be even (sin and cos halves), got {self.time_embed_dim}")


class ToyMLP(nn.Module):
    """ε_θ(x_t, t[, y]) for points in R^D. Shapes: x (B, D), t (B,), y (B,) or None."""

    def __init__(self, config: ToyConfig | None = None):
        super().__init__()
        if config is not None and not isinstance(config, ToyConfig):
            raise TypeError(f"config must be a ToyConfig or None, got {type(config).__name__}")
        self.config = config = config or ToyConfig()
        H = config.hidden
        self.x_in = nn.Linear(config.data_dim, H)
        self.time_mlp = nn.Sequential(nn.Linear(config.time_embed_dim, H), nn.SiLU(), nn.Linear(H, H))
        self.class_embed = nn.Embedding(config.num_classes + 1, H) if config.num_classes else None
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(H, H), nn.SiLU(), nn.Linear(H, H)) for _ in range(config.num_layers)
        )
        self.out = nn.Linear(H, config.data_dim * (2 if config.learn_sigma else 1))
        self.check_values = True  # read t's and y's values in forward to check them

    def forward(self, x, t, y=None):
        """ε̂ = ε_θ(x_t, t, y).

        Args: x (B, D) in the dtype of the weights; t 0-based timesteps in [0, num_timesteps − 1]:
              a Python or numpy int, or a (B,) integer (or float) tensor; y class labels in
              [0, num_classes] (num_classes = null class) as an int or a (B,) integer tensor, or None
              (= null class; must be None for an unconditional model). ``model.check_values = False``
              skips reading t's and y's values (``sample`` checks them once instead).
        Returns: ε̂ (B, D); with ``learn_sigma`` ε̂ and v side by side, (B, 2D).
        """
        cfg = self.config
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a (B, {cfg.data_dim}) torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != cfg.data_dim:
            raise ValueError(f"x must have shape (B, {cfg.data_dim}), got {tuple(x.shape)}")
        if x.dtype != self.out.weight.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the model's weights are {self.out.weight.dtype}: "
                            f"pass x.to({self.out.weight.dtype}) (or convert the model with model.to({x.dtype}))")
        B, values = x.shape[0], self.check_values and not torch.compiler.is_compiling()
        t = check_timesteps(t, cfg.num_timesteps, B, check_values=values, allow_float=True)
        t = torch.full((B,), t, device=x.device) if isinstance(t, int) else t.reshape(-1).expand(B)  # (B,)
        h = self.x_in(x) + self.time_mlp(timestep_embedding(t.to(x.device), cfg.time_embed_dim))  # (B, H)
        if self.class_embed is not None:
            y = check_labels(y, B, cfg.num_classes + 1, check_values=values,
                             note=f" ({cfg.num_classes} = the null class)")
            y = cfg.num_classes if y is None else y
            y = torch.full((B,), y, dtype=torch.long, device=x.device) if isinstance(y, int) else y.expand(B)
            h = h + self.class_embed(y.to(x.device))
        elif y is not None:
            raise ValueError("y was given but the model is unconditional (num_classes=None); pass y=None")
        for block in self.blocks:
            h = h + block(h)  # (B, H)
        return self.out(F.silu(h))  # (B, D), or (B, 2D) with learn_sigma
