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
- Variants of the Annotated Diffusion notebook (Rogge & Rasul 2022): ``block_type="convnext"`` puts a
  ConvNeXt block where the residual block was, ``attention_type="linear"`` uses linear attention
  (``diffviz.unet_blocks``). The defaults ("resnet", "full") are the DDPM model above.
- Shape letters: B batch, C channels, H, W height and width, E embedding width.

Forward has no data-dependent Python control flow, so it can be ``torch.compile``d; the value checks
on ``t`` and ``y`` are skipped while compiling (or when ``model.check_values = False``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from .unet_blocks import (ConvNextBlock, Downsample, LevelBlock, LinearAttention, ResBlock, SelfAttention,
                          Upsample, timestep_embedding)
from .validate import check_labels, check_timesteps, finite_number, positive_int

__all__ = ["UNet", "UNetConfig", "PRESETS", "preset", "num_parameters", "shape_tour", "timestep_embedding",
           "ResBlock", "SelfAttention", "LevelBlock", "Downsample", "Upsample", "ConvNextBlock", "LinearAttention",
           "BLOCK_TYPES", "ATTENTION_TYPES"]

BLOCK_TYPES = ("resnet", "convnext")  # UNetConfig.block_type: ResBlock, ConvNextBlock
ATTENTION_TYPES = ("full", "linear")  # UNetConfig.attention_type: SelfAttention, LinearAttention


@dataclass
class UNetConfig:
    in_channels: int = 1  # image channels: 1 (grayscale) or 3 (RGB)
    out_channels: int | None = None  # output channels; None = in_channels (ε̂), or 2·in_channels with learn_sigma
    learn_sigma: bool = False  # also output v, the variance of Nichol & Dhariwal Eq. 15: ε̂ and v stacked (2C channels)
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
    num_timesteps: int = 1000  # T of the training schedule: forward refuses t outside [0, T-1]
    block_type: str = "resnet"  # "resnet" (Ho et al.'s ResBlock) or "convnext" (ConvNextBlock, Liu et al. 2022)
    attention_type: str = "full"  # "full" (softmax(q kᵀ/√d) v) or "linear" (Shen et al. 2021: no N×N matrix)
    # (a config saved before num_timesteps, block_type or attention_type existed loads with the defaults)

    def __post_init__(self):
        for name in ("channel_mults", "attention_resolutions"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or not all(_is_positive_int(v) for v in value):
                raise ValueError(f"{name} must be a tuple of positive ints, got {value!r}")
            setattr(self, name, tuple(value))  # JSON gives lists back
        if not self.channel_mults:
            raise ValueError("channel_mults must be a non-empty tuple of positive ints, got ()")
        for name in ("in_channels", "image_size", "base_channels", "num_res_blocks", "num_heads", "groups",
                     "num_timesteps"):
            positive_int(name, getattr(self, name))
        for name in ("out_channels", "num_classes", "time_embed_dim"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        if self.base_channels % 2:
            raise ValueError(f"base_channels must be even (it is the width of the sinusoidal time embedding), "
                             f"got {self.base_channels}")
        finite_number("dropout", self.dropout, low=0, high=1)
        if self.dropout == 1:
            raise ValueError("dropout must be in [0, 1), got 1.0 (it would drop everything)")
        for mult in self.channel_mults:
            ch = self.base_channels * mult
            if ch % self.groups:
                raise ValueError(f"groups={self.groups} must divide every channel count, got {ch} channels")
        if not isinstance(self.learn_sigma, bool):
            raise TypeError(f"learn_sigma must be True or False, got {self.learn_sigma!r}")
        for name, allowed in (("block_type", BLOCK_TYPES), ("attention_type", ATTENTION_TYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(allowed)}")
        per_channel = 2 if self.learn_sigma else 1  # ε̂, or ε̂ and v
        if self.out_channels is None:
            self.out_channels = per_channel * self.in_channels
        elif self.learn_sigma and self.out_channels != 2 * self.in_channels:
            raise ValueError(f"learn_sigma=True needs out_channels = 2 * in_channels = {2 * self.in_channels} "
                             f"(ε̂ and v), got {self.out_channels}")
        if self.time_embed_dim is None:
            self.time_embed_dim = 4 * self.base_channels

    def level_sizes(self) -> list[int]:
        """Feature-map size H at each level, e.g. image_size 28, 3 levels → [28, 14, 7]."""
        sizes = [self.image_size]
        for _ in self.channel_mults[1:]:
            sizes.append((sizes[-1] + 1) // 2)  # a stride-2, padding-1, 3x3 conv gives ceil(H/2)
        return sizes


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


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
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; known presets: {', '.join(PRESETS)}")
    kwargs = dict(PRESETS[name])
    levels = kwargs.pop("attention_levels")
    config = UNetConfig(**{**kwargs, **overrides})
    if "attention_resolutions" not in overrides:
        sizes = config.level_sizes()
        config = replace(config, attention_resolutions=tuple(sizes[i] for i in levels if i < len(sizes)))
    return config


class UNet(nn.Module):
    """ε_θ(x_t, t[, y]): predicts the noise in x_t. See the module docstring for the layout."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config must be a UNetConfig (e.g. preset('tiny')), got {type(config).__name__}")
        self.config = config
        self.check_values = True  # check t's and y's values in forward (skipped under torch.compile)
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
        """Time embedding MLP(sinusoid(t)), plus the class embedding of y (None → null class). (B, E)
        t and y as ``forward`` checked them: an int or a 0-d / (B,) tensor; None, an int or (B,)."""
        if isinstance(t, int):
            t = torch.full((batch_size,), t, device=device)
        elif t.ndim == 0:
            t = t.reshape(1).expand(batch_size)  # (B,)
        emb = self.time_mlp(timestep_embedding(t.to(device), self.config.base_channels))
        if self.class_embed is not None:
            if y is None:
                y = self.config.num_classes  # the null class
            if isinstance(y, int):
                y = torch.full((batch_size,), y, device=device, dtype=torch.long)
            emb = emb + self.class_embed(y.to(device).expand(batch_size))
        return emb

    def forward(self, x, t, y=None):
        """ε̂ = ε_θ(x_t, t, y).

        Args: x (B, C, H, W) noisy images, in the dtype of the weights (float32 unless converted);
              t 0-based timesteps in [0, num_timesteps − 1]: a Python or numpy int for the whole
              batch, or a (B,) integer (or float) tensor; y class labels in [0, num_classes]
              (num_classes = the null class) as an int or a (B,) integer tensor, or None (= null
              class). An unconditional model rejects y. Value checks on tensors read them (a sync on
              a GPU); ``model.check_values = False`` skips them (``sample`` checks once instead).
        Returns: ε̂ (B, out_channels, H, W); with ``learn_sigma`` ε̂ and v stacked, (B, 2C, H, W)
        (``diffviz.variances.split_model_output`` splits them).
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
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a (B, C, H, W) torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"x must be a (B, C, H, W) tensor, got {tuple(x.shape)}")
        B, C, H, W = x.shape
        if C != cfg.in_channels:
            raise ValueError(f"x has {C} channels but the model takes in_channels={cfg.in_channels}")
        if H != cfg.image_size or W != cfg.image_size:
            raise ValueError(f"x is {H}x{W} but the model was built for image_size={cfg.image_size}")
        weight = self.conv_in.weight
        if x.dtype != weight.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the model's weights are {weight.dtype}: pass "
                            f"x.to({weight.dtype}) (or convert the model with model.to({x.dtype}))")
        if x.device != weight.device:
            raise ValueError(f"x is on {x.device} but the model is on {weight.device}: pass x.to('{weight.device}')")
        values = self.check_values and not torch.compiler.is_compiling()
        t = check_timesteps(t, cfg.num_timesteps, B, check_values=values, allow_float=True)
        if y is None:
            return t, y
        if cfg.num_classes is None:
            raise ValueError("y was given but the model is unconditional (num_classes=None); pass y=None")
        return t, check_labels(y, B, cfg.num_classes + 1, check_values=values,  # + 1: the null class
                               note=f" ({cfg.num_classes} = the null class)")


def num_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with requires_grad)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def shape_tour(model: UNet, x: torch.Tensor, t, y=None) -> list[tuple[str, tuple]]:
    """Run ``model(x, t, y)`` once and return (block name, output shape) for every block, in order:
    conv_in, down.0 … , mid.0, mid.1, up.0 … , out. For printing in a notebook. Labels name the kind,
    e.g. "down.1 (LevelBlock + attention)" or "mid.0 (LevelBlock (ConvNeXt) + linear attention)"."""
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a UNet, got {type(model).__name__}")
    tour, handles = [], []
    named = [("conv_in", model.conv_in), ("out", model.out)]
    named += [(f"{part}.{i}", block) for part in ("down", "mid", "up") for i, block in enumerate(getattr(model, part))]
    for name, module in named:
        kind = module.kind() if isinstance(module, LevelBlock) else type(module).__name__
        hook = lambda mod, args, out, label=f"{name} ({kind})": tour.append((label, tuple(out.shape)))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x, t, y)
    finally:
        for handle in handles:
            handle.remove()
    return tour
