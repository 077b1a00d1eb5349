"""A noise-aware classifier p_φ(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, Sec. 4).

Classifier guidance needs ∇_{x_t} log p_φ(y | x_t) at every noise level, so the classifier is
trained on noisy images x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. 2020, Eq. 4) with t drawn uniformly,
and is told t (Dhariwal & Nichol use the U-Net's down path plus an attention pool; ours is a
smaller cousin):

    x_t (B, C, H, W) ─► conv_in, stride 2 (28 → 14) ─► [ResBlock, Downsample] … ─► ResBlock (4 × 4)
    t (B,) ─► sinusoidal embedding ─► MLP ─┘ (added inside every ResBlock)
    ─► GroupNorm, SiLU, mean over H·W ─► Linear ─► logits (B, K)

t is the 0-based timestep in [0, T − 1] (code t = k is the paper's t = k + 1). The shipped model
(``load_pretrained("mnist-noisy-classifier")``) is trained by ``benchmarks/train_noisy_classifier.py``.
Shape letters: B batch, C channels, H, W height and width, E embedding width, K classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import check_schedule, q_sample
from .unet_blocks import Downsample, ResBlock, timestep_embedding
from .validate import check_generator, check_labels, check_timesteps, float_tensor, positive_int


@dataclass
class NoisyClassifierConfig:
    in_channels: int = 1  # image channels
    image_size: int = 28  # H = W of the inputs, checked in forward
    channels: tuple = (32, 64, 64)  # ResBlock widths, one per resolution (14, 7, 4 for 28×28 inputs)
    num_classes: int = 10  # K
    groups: int = 8  # GroupNorm groups (must divide every width)
    time_embed_dim: int = 128  # E, width of the time embedding
    num_timesteps: int = 1000  # T of the noise schedule: forward refuses t outside [0, T − 1]

    def __post_init__(self):
        self.channels = tuple(self.channels)  # JSON gives lists back
        for name in ("in_channels", "image_size", "num_classes", "groups", "time_embed_dim", "num_timesteps"):
            positive_int(name, getattr(self, name))
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 or c % self.groups
                                    for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of positive ints divisible by groups="
                             f"{self.groups}, got {self.channels!r}")


class NoisyClassifier(nn.Module):
    """logits = f_φ(x_t, t): log p_φ(y | x_t) up to a constant per sample (see the module docstring)."""

    def __init__(self, config: NoisyClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or NoisyClassifierConfig()
        if not isinstance(config, NoisyClassifierConfig):
            raise TypeError(f"config must be a NoisyClassifierConfig, got {type(config).__name__}")
        self.check_values = True  # check t's values in forward (``sample`` checks once instead)
        c0, E = config.channels[0], config.time_embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(c0, E), nn.SiLU(), nn.Linear(E, E))
        self.conv_in = nn.Conv2d(config.in_channels, c0, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList()
        in_ch = c0
        for i, out_ch in enumerate(config.channels):
            if i > 0:
                self.blocks.append(Downsample(in_ch))
            self.blocks.append(ResBlock(in_ch, out_ch, E, config.groups, 0.0))
            in_ch = out_ch
        self.norm = nn.GroupNorm(config.groups, in_ch)
        self.head = nn.Linear(in_ch, config.num_classes)

    def forward(self, x_t, t):
        """Args: x_t (B, C, H, W) noisy images in the [-1, 1] data scale; t (B,) int64 in [0, T − 1]
        (or an int for the whole batch). Returns: logits (B, K)."""
        cfg = self.config
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise ValueError(f"x_t must have shape (B, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), "
                             f"got {tuple(x_t.shape)}")
        t = check_timesteps(t, cfg.num_timesteps, x_t.shape[0], check_values=self.check_values, allow_float=True)
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])  # (B,)
        emb = self.time_mlp(timestep_embedding(t, cfg.channels[0]).to(x_t.dtype))  # (B, E)
        h = self.conv_in(x_t)  # (B, c0, H/2, W/2)
        for block in self.blocks:
            h = block(h, emb)
        h = F.silu(self.norm(h)).mean(dim=(2, 3))  # (B, C_last): average over positions
        return self.head(h)  # (B, K)


def noisy_batch(schedule, x0, generator=None, t=None):
    """(x_t, t) for training or evaluation: t ~ U{0, …, T − 1} per image (unless given: an int or
    (B,)), x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. 2020, Eq. 4), all draws from ``generator``."""
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.num_timesteps, (B,), generator=generator)
    t = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(B).clone()  # (B,)
    noise = torch.randn(x0.shape, generator=generator)
    return q_sample(schedule, x0, t, noise=noise), t


def train_noisy_classifier(model, schedule, images, labels, *, steps=3000, batch_size=64, lr=2e-3,
                           weight_decay=1e-4, generator=None, log_every=0):
    """Train ``model`` in place to minimise E_{t, x_0, ε} CE(f_φ(x_t, t), y) with AdamW and a
    cosine-decaying learning rate. t ~ U{0, …, T − 1}; batches, t and ε all come from ``generator``.

    Args: model: a NoisyClassifier; schedule: the noise schedule of the diffusion model to guide;
          images (N, C, H, W) in [-1, 1]; labels (N,) int in [0, K − 1]; steps, batch_size: positive ints.
    Returns: the list of per-step losses.
    """
    check_schedule(schedule)
    images = float_tensor("images", images, min_ndim=4)
    labels = check_labels(labels, images.shape[0], model.config.num_classes, name="labels")
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    check_generator(generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    model.train()
    losses = []
    for step in range(steps):
        index = torch.randint(0, images.shape[0], (batch_size,), generator=generator)  # (B,)
        x_t, t = noisy_batch(schedule, images[index], generator)
        loss = F.cross_entropy(model(x_t, t), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps}  loss {sum(losses[-log_every:]) / log_every:.4f}", flush=True)
    model.eval()
    return losses


@torch.no_grad()
def accuracy_at(model, schedule, images, labels, t, generator=None, batch_size=500) -> float:
    """Fraction of ``images`` noised to timestep ``t`` (an int in [0, T − 1]) that ``model``
    labels correctly: argmax_k f_φ(x_t, t)_k == y. The noise comes from ``generator``."""
    check_schedule(schedule)
    t = check_timesteps(t, schedule.num_timesteps, 1)
    images = float_tensor("images", images, min_ndim=4)
    labels = check_labels(labels, images.shape[0], model.config.num_classes, name="labels")
    correct = 0
    for i in range(0, images.shape[0], batch_size):
        x_t, t_batch = noisy_batch(schedule, images[i:i + batch_size], generator, t)
        correct += (model(x_t, t_batch).argmax(1) == labels[i:i + batch_size]).sum().item()
    return correct / images.shape[0]
