"""The building blocks of ``diffviz.unet.UNet``: the timestep embedding, residual blocks,
self-attention, and the down/up-sampling layers; and the variants of the Annotated Diffusion
notebook (Rogge & Rasul 2022): ``ConvNextBlock`` (``UNetConfig.block_type="convnext"``) and
``LinearAttention`` (``UNetConfig.attention_type="linear"``).

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
        h = self.attend(q, k, v)  # (B, heads, H*W, C/heads)
        h = h.transpose(-1, -2).reshape(B, C, H, W)
        return x + self.proj_out(h)

    @staticmethod
    def attend(q, k, v):
        """softmax(q kᵀ / √d) v (Vaswani et al. 2017, Eq. 1); q, k, v (B, heads, N, d), N = H·W."""
        return F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)


class LinearAttention(SelfAttention):
    """Linear attention (Shen et al. 2021, "Efficient Attention", Eq. 4; as in the Annotated Diffusion
    notebook): out = ρ_q(Q) · (ρ_k(K)ᵀ V) · d^(−1/2), ρ_q a softmax of each position's query over its d
    features, ρ_k a softmax of each key feature over the N = H·W positions. Computing the (d, d)
    context ρ_k(K)ᵀ V first costs O(N·d²) and never builds the (N, N) matrix of ``SelfAttention``.
    Same GroupNorm → 1×1 qkv → attend → zero-initialised 1×1 proj_out → residual wrapper as
    ``SelfAttention`` (the notebook adds a GroupNorm(1, C) after its output conv; not here)."""

    @staticmethod
    def attend(q, k, v):
        """q, k, v (B, heads, N, d) → (B, heads, N, d)."""
        q = q.softmax(dim=-1) * q.shape[-1] ** -0.5  # over the d features of each position
        k = k.softmax(dim=-2)  # over the N positions, per feature
        context = torch.einsum("bhnd,bhne->bhde", k, v)  # (B, heads, d, d) = ρ_k(K)ᵀ V
        return torch.einsum("bhde,bhnd->bhne", context, q)  # (B, heads, N, d) = ρ_q(Q) · context


class ConvNextBlock(nn.Module):
    """A ConvNeXt block (Liu et al. 2022, "A ConvNet for the 2020s", Fig. 4) with a time embedding,
    as in the Annotated Diffusion notebook (Rogge & Rasul 2022):

        h = DWConv7×7(x) + MLP(emb)                     # (B, C_in, H, W): depthwise, a filter per channel
        h = Conv1×1(GroupNorm(1, C_in)(h))              # (B, mult·C_out, H, W): widen (mult = 2)
        h = Conv1×1(dropout(GroupNorm(1, ·)(GELU(h))))  # (B, C_out, H, W): back
        out = skip(x) + h                               # skip: a 1×1 conv when C_in ≠ C_out

    MLP = GELU → Linear(E, C_in); ``emb`` is the time (+ class) embedding, so a conditional model's
    label enters here too. GroupNorm(1, C) normalises over C, H, W together (the paper's LayerNorm
    role). The notebook uses 3×3 convs for the two pointwise layers; here they are 1×1 as in the
    paper. Like ``ResBlock``, the last conv starts at zero, so the block starts as ``skip(x)``.
    """

    def __init__(self, in_ch, out_ch, embed_dim, dropout=0.0, mult=2):
        super().__init__()
        self.embed_proj = nn.Sequential(nn.GELU(), nn.Linear(embed_dim, in_ch))
        self.dw_conv = nn.Conv2d(in_ch, in_ch, 7, padding=3, groups=in_ch)
        self.norm1 = nn.GroupNorm(1, in_ch)
        self.conv1 = nn.Conv2d(in_ch, mult * out_ch, 1)
        self.norm2 = nn.GroupNorm(1, mult * out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(mult * out_ch, out_ch, 1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x, emb):  # x (B, C_in, H, W), emb (B, E)
        h = self.dw_conv(x) + self.embed_proj(emb)[:, :, None, None]  # (B, C_in, H, W); time (+ class)
        h = self.conv1(self.norm1(h))  # (B, mult·C_out, H, W)
        h = self.conv2(self.dropout(self.norm2(F.gelu(h))))  # (B, C_out, H, W)
        return self.skip(x) + h  # (B, C_out, H, W)


class LevelBlock(nn.Module):
    """One residual block (``ResBlock``, or ``ConvNextBlock`` with block_type="convnext"), followed at
    the chosen resolutions by attention (``SelfAttention``, or ``LinearAttention`` with
    attention_type="linear"). Both blocks take (x, emb); ``res`` and ``attn`` name them."""

    def __init__(self, in_ch, out_ch, config, attention: bool):  # config: a UNetConfig
        super().__init__()
        if config.block_type == "convnext":
            self.res = ConvNextBlock(in_ch, out_ch, config.time_embed_dim, config.dropout)
        else:
            self.res = ResBlock(in_ch, out_ch, config.time_embed_dim, config.groups, config.dropout)
        attention_cls = LinearAttention if config.attention_type == "linear" else SelfAttention
        self.attn = attention_cls(out_ch, config.num_heads, config.groups) if attention else nn.Identity()

    def forward(self, x, emb):
        return self.attn(self.res(x, emb))

    def kind(self) -> str:
        """For ``shape_tour``: "LevelBlock", "LevelBlock + attention", "LevelBlock (ConvNeXt) + linear attention", ..."""
        kind = "LevelBlock" + (" (ConvNeXt)" if isinstance(self.res, ConvNextBlock) else "")
        if isinstance(self.attn, SelfAttention):
            kind += " + linear attention" if isinstance(self.attn, LinearAttention) else " + attention"
        return kind


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
