"""The building blocks of ``diffviz.unet.UNet``: the timestep embedding, residual blocks,
self-attention, and the down/up-sampling layers.

Shape letters: B batch, C channels, H, W height and width, E embedding width.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017, Sec. 3.5; as in Ho et al. 2020):
    emb[i] = sin(t · ω_i), emb[half + i] = cos(t · ω_i),  ω_i = max_period^(−i / (half − 1)).

    Args: t (B,) timesteps (int or float; 0-based, code t = k is the paper's t = k + 1); dim even.
    Returns: (B, dim) float32.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even int >= 2 (sin and cos halves), got {dim!r}")
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        raise TypeError(f"t must be a (B,) tensor of timesteps, got {t!r}")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1)
    args = t.float()[:, None] * torch.exp(exponent)[None, :]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv → (+ embedding) → GroupNorm → SiLU → dropout → conv, plus a skip."""

    def __init__(self, in_ch, out_ch, embed_dim, groups, dropout):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.embed_proj = nn.Linear(embed_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (Ho et al.'s init_scale=0)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x, emb):  # x (B, C_in, H, W), emb (B, E)
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.embed_proj(F.silu(emb))[:, :, None, None]  # time (+ class) enters here
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h  # (B, C_out, H, W)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions, with a residual connection."""

    def __init__(self, channels, num_heads, groups):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the attended channel count {channels}")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)  # starts as the identity
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x):  # x (B, C, H, W)
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # each (B, heads, H*W, C/heads)
        h = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √d) v
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj_out(h)


class LevelBlock(nn.Module):
    """One residual block, followed by self-attention at the chosen resolutions."""

    def __init__(self, in_ch, out_ch, config, attention: bool):  # config: a UNetConfig
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, config.time_embed_dim, config.groups, config.dropout)
        self.attn = SelfAttention(out_ch, config.num_heads, config.groups) if attention else nn.Identity()

    def forward(self, x, emb):
        return self.attn(self.res(x, emb))


class Downsample(nn.Module):
    """3x3 convolution with stride 2: (B, C, H, W) → (B, C, ceil(H/2), ceil(W/2))."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb):
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour resize to ``size`` (the matching skip's H, W), then a 3x3 convolution."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, size):
        return self.conv(F.interpolate(x, size=size, mode="nearest"))
