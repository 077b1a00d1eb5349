"""The ε-prediction U-Net of Ho et al. 2020 (Appendix B), small enough to read in one sitting.

    x (B, C, H, W), t (B,) ──► conv_in ──► down path ──► middle ──► up path ──► out ──► ε̂ (B, C, H, W)
                                     └──── skip connections ────────┘

- t is the 0-based timestep in [0, T-1] (code t = k is the paper's t = k + 1). It enters through a
  sinusoidal embedding (Vaswani et al. 2017, Sec. 3.5) and an MLP, and is added inside every
  residual block after its first convolution. A class label, when the model is conditional, is a
  learned embedding added to the time embedding; row ``num_classes`` is the learned "null class"
  used for classifier-free guidance (Ho & Salimans 2022).
- Downsampling is a stride-2 convolution (H → ceil(H/2)), so odd sizes work: 28 → 14 → 7 → 4.
  Upsampling is nearest-neighbour to the size of the matching skip, then a 3×3 convolution.
- Shape letters: B batch, C channels, H, W height and width, E embedding width.

Forward has no data-dependent Python control flow, so it can be ``torch.compile``d; the value check
on ``y`` is skipped while compiling (or when ``model.check_values = False``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    in_channels: int = 1  # image channels: 1 (grayscale) or 3 (RGB)
    out_channels: int | None = None  # channels of ε̂; None = in_channels
    image_size: int = 28  # H = W of the inputs; decides where attention sits, checked in forward
    base_channels: int = 32  # channels after conv_in; level i has base_channels * channel_mults[i]
    channel_mults: tuple = (1, 2, 2)  # one entry per resolution level; len - 1 downsamplings
    num_res_blocks: int = 1  # residual blocks per level on the way down (up: one more)
    attention_resolutions: tuple = (7,)  # feature-map sizes (H) that get self-attention
    num_heads: int = 1  # attention heads (must divide each attended channel count)
    dropout: float = 0.0  # dropout inside residual blocks (Ho et al. use 0.1 on CIFAR-10)
    num_classes: int | None = None  # None = unconditional; else labels 0..num_classes-1 (+ null)
    groups: int = 8  # GroupNorm groups (must divide every channel count; Ho et al. use 32)
    time_embed_dim: int | None = None  # E, width of the time embedding; None = 4 * base_channels

    def __post_init__(self):
        self.channel_mults = tuple(self.channel_mults)  # JSON gives lists back
        self.attention_resolutions = tuple(self.attention_resolutions)
        _check_int("in_channels", self.in_channels)
        _check_int("image_size", self.image_size)
        _check_int("base_channels", self.base_channels)
        _check_int("num_res_blocks", self.num_res_blocks)
        _check_int("num_heads", self.num_heads)
        _check_int("groups", self.groups)
        if not self.channel_mults or not all(isinstance(m, int) and m >= 1 for m in self.channel_mults):
            raise ValueError(f"channel_mults must be a non-empty tuple of positive ints, got {self.channel_mults!r}")
        if self.num_classes is not None:
            _check_int("num_classes", self.num_classes)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for mult in self.channel_mults:
            ch = self.base_channels * mult
            if ch % self.groups:
                raise ValueError(f"groups={self.groups} must divide every channel count, got {ch} channels")
        if self.out_channels is None:
            self.out_channels = self.in_channels
        if self.time_embed_dim is None:
            self.time_embed_dim = 4 * self.base_channels

    def level_sizes(self) -> list[int]:
        """Feature-map size H at each level, e.g. image_size 28, 3 levels → [28, 14, 7]."""
        sizes = [self.image_size]
        for _ in self.channel_mults[1:]:
            sizes.append((sizes[-1] + 1) // 2)  # a stride-2, padding-1, 3x3 conv gives ceil(H/2)
        return sizes


def _check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


# Presets. "attention_levels" picks levels (0 = full size) and becomes attention_resolutions for the
# chosen image_size. Parameter counts are for 1-channel 28x28; "cifar" is the DDPM CIFAR-10 model.
PRESETS = {
    "tiny": dict(base_channels=24, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(2,)),  # 0.63M
    "small": dict(base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(2,)),  # 1.6M
    "medium": dict(base_channels=48, channel_mults=(1, 2, 2), num_res_blocks=2, attention_levels=(1, 2)),  # 3.8M
    "cifar": dict(base_channels=128, channel_mults=(1, 2, 2, 2), num_res_blocks=2, attention_levels=(1,),
                  dropout=0.1, groups=32),  # 35.7M at 3x32x32 (Ho et al. 2020, Appendix B)
}


def preset(name: str, **overrides) -> UNetConfig:
    """A ``UNetConfig`` from ``PRESETS`` ("tiny", "small", "medium", "cifar"), with ``overrides``
    (any UNetConfig field, e.g. ``image_size=32, in_channels=3, num_classes=10``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; known presets: {', '.join(PRESETS)}")
    kwargs = dict(PRESETS[name])
    levels = kwargs.pop("attention_levels")
    config = UNetConfig(**{**kwargs, **overrides})
    if "attention_resolutions" not in overrides:
        sizes = config.level_sizes()
        config = replace(config, attention_resolutions=tuple(sizes[i] for i in levels if i < len(sizes)))
    return config


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017, Sec. 3.5; as in Ho et al. 2020):
    emb[i] = sin(t · ω_i), emb[half + i] = cos(t · ω_i),  ω_i = max_period^(−i / (half − 1)).

    Args: t (B,) timesteps (int or float; 0-based, code t = k is the paper's t = k + 1); dim even.
    Returns: (B, dim) float32.
    """
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

    def __init__(self, in_ch, out_ch, config: UNetConfig, attention: bool):
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


class UNet(nn.Module):
    """ε_θ(x_t, t[, y]): predicts the noise in x_t. See the module docstring for the layout."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        self.check_values = True  # check y's values in forward (skipped under torch.compile)
        ch, E = config.base_channels, config.time_embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(ch, E), nn.SiLU(), nn.Linear(E, E))
        self.class_embed = nn.Embedding(config.num_classes + 1, E) if config.num_classes else None
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)
        self.down, skip_channels = self._build_down()
        mid_ch = ch * config.channel_mults[-1]
        self.mid = nn.ModuleList([LevelBlock(mid_ch, mid_ch, config, attention=True),
                                  LevelBlock(mid_ch, mid_ch, config, attention=False)])
        self.up = self._build_up(skip_channels)
        self.out = nn.Sequential(nn.GroupNorm(config.groups, ch), nn.SiLU(),
                                 nn.Conv2d(ch, config.out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # the untrained model predicts ε̂ = 0
        nn.init.zeros_(self.out[-1].bias)

    def _build_down(self):
        cfg, sizes = self.config, self.config.level_sizes()
        blocks, ch = nn.ModuleList(), cfg.base_channels
        skip_channels = [ch]  # conv_in's output is the first skip
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                out_ch = cfg.base_channels * mult
                blocks.append(LevelBlock(ch, out_ch, cfg, sizes[level] in cfg.attention_resolutions))
                ch = out_ch
                skip_channels.append(ch)
            if level < len(cfg.channel_mults) - 1:
                blocks.append(Downsample(ch))
                skip_channels.append(ch)
        return blocks, skip_channels

    def _build_up(self, skip_channels):
        cfg, sizes = self.config, self.config.level_sizes()
        blocks, ch = nn.ModuleList(), cfg.base_channels * cfg.channel_mults[-1]
        skip_channels = list(skip_channels)
        for level in reversed(range(len(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                out_ch = cfg.base_channels * cfg.channel_mults[level]
                attention = sizes[level] in cfg.attention_resolutions
                blocks.append(LevelBlock(ch + skip_channels.pop(), out_ch, cfg, attention))
                ch = out_ch
            if level > 0:
                blocks.append(Upsample(ch))
        return blocks

    def embed(self, t, y, batch_size, device):
        """Time embedding MLP(sinusoid(t)), plus the class embedding of y (None → null class). (B, E)"""
        if isinstance(t, int):
            t = torch.full((batch_size,), t, device=device)
        elif t.ndim == 0:
            t = t.reshape(1).expand(batch_size)  # (B,)
        emb = self.time_mlp(timestep_embedding(t.to(device), self.config.base_channels))
        if self.class_embed is not None:
            if y is None:
                y = torch.full((batch_size,), self.config.num_classes, device=device, dtype=torch.long)
            emb = emb + self.class_embed(y.to(device))
        return emb

    def forward(self, x, t, y=None):
        """ε̂ = ε_θ(x_t, t, y).

        Args: x (B, C, H, W) noisy images; t (B,) int64/float timesteps in [0, T-1] or a Python int
              for the whole batch; y (B,) int64 class labels in [0, num_classes] (num_classes =
              the null class) or None (= null class). An unconditional model rejects y.
        Returns: ε̂ (B, out_channels, H, W).
        """
        t, y = self._check_inputs(x, t, y)
        emb = self.embed(t, y, x.shape[0], x.device)  # (B, E)
        h = self.conv_in(x)  # (B, ch, H, W)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h, skips[-1].shape[-2:])
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)

    def _check_inputs(self, x, t, y):
        cfg = self.config
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a (B, C, H, W) tensor, got {got}")
        B, C, H, W = x.shape
        if C != cfg.in_channels:
            raise ValueError(f"x has {C} channels but the model takes in_channels={cfg.in_channels}")
        if H != cfg.image_size or W != cfg.image_size:
            raise ValueError(f"x is {H}x{W} but the model was built for image_size={cfg.image_size}")
        if isinstance(t, bool) or not isinstance(t, (int, torch.Tensor)):
            raise TypeError(f"t must be an int or a (B,) tensor, got {type(t).__name__}")
        if isinstance(t, torch.Tensor) and t.ndim > 0 and tuple(t.shape) != (B,):
            raise ValueError(f"t must have shape ({B},) to match x, got {tuple(t.shape)}")
        if y is None:
            return t, y
        if cfg.num_classes is None:
            raise ValueError("y was given but the model is unconditional (num_classes=None); pass y=None")
        if isinstance(y, int) and not isinstance(y, bool):
            y = torch.full((B,), y, dtype=torch.long, device=x.device)
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long:
            got = y.dtype if isinstance(y, torch.Tensor) else type(y).__name__
            raise TypeError(f"y must be an int64 tensor of class labels (or an int), got {got}")
        if tuple(y.shape) != (B,):
            raise ValueError(f"y must have shape ({B},) to match x, got {tuple(y.shape)}")
        if self.check_values and not torch.compiler.is_compiling():
            if bool((y < 0).any()) or bool((y > cfg.num_classes).any()):
                raise ValueError(f"y must be in [0, {cfg.num_classes}] ({cfg.num_classes} = null class), "
                                 f"got values in [{int(y.min())}, {int(y.max())}]")
        return t, y


def num_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def shape_tour(model: UNet, x: torch.Tensor, t, y=None) -> list[tuple[str, tuple]]:
    """Run ``model(x, t, y)`` once and return (block name, output shape) for every block, in order:
    conv_in, down.0 … , mid.0, mid.1, up.0 … , out. For printing in a notebook."""
    tour, handles = [], []
    named = [("conv_in", model.conv_in), ("out", model.out)]
    named += [(f"{part}.{i}", block) for part in ("down", "mid", "up") for i, block in enumerate(getattr(model, part))]
    for name, module in named:
        kind = type(module).__name__
        if isinstance(module, LevelBlock) and isinstance(module.attn, SelfAttention):
            kind += " + attention"
        hook = lambda mod, args, out, label=f"{name} ({kind})": tour.append((label, tuple(out.shape)))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x, t, y)
    finally:
        for handle in handles:
            handle.remove()
    return tour
