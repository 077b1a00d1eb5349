"""What a training run is: ``TrainConfig`` (checked once, here), ``TrainEvent`` (what the callback
gets) and ``build_model`` (the model a config names). ``diffviz.training`` re-exports all three."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .losses import LOSS_TYPES
from .toy import ToyConfig, ToyMLP
from .unet import PRESETS, UNet, preset
from .validate import check_num_steps, finite_number, positive_int


LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    dataset: str = "digits"  # a name for diffviz.data.load_dataset ("swiss_roll", "digits", "mnist-5k", ...)
    num_data: int | None = None  # use only this many training examples (None = all)
    model: str = "auto"  # "toy" (ToyMLP), a UNet preset ("tiny", "small", "medium", "cifar"), or "auto"
    model_overrides: dict = field(default_factory=dict)  # extra UNetConfig / ToyConfig fields
    conditional: bool = False  # train a class-conditional model on the dataset's labels
    label_dropout: float | None = None  # p(label → null class) for guidance; None = 0.1 if conditional
    schedule: str = "linear"  # noise schedule name for diffviz.schedules.get_schedule
    num_timesteps: int = 1000  # T
    steps: int = 2000  # total optimizer steps (a resumed run continues up to this number)
    batch_size: int = 128  # examples per step
    lr: float | None = None  # AdamW lr after warm-up; None = 2e-4 for U-Nets (Ho et al. 2020), 1e-3 for "toy"
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 100  # linear learning-rate warm-up from 0 over this many steps
    lr_schedule: str = "constant"  # after warm-up: "constant" (Ho et al. 2020) or "cosine" (decays to 0 at `steps`)
    min_snr_gamma: float | None = None  # loss weight min(SNR_t, γ)/SNR_t per example (Hang et al. 2023); None = off
    loss_type: str = "l2"  # the ε error: "l2" (Ho et al. 2020), "l1", or "huber" (smooth L1, beta 1); diffviz.losses
    learn_sigma: bool = False  # the model also outputs v (Nichol & Dhariwal Eq. 15) and trains with L_hybrid
    vlb_weight: float = 0.001  # λ of L_hybrid = L_simple + λ·L_vlb (diffviz.losses); used with learn_sigma
    grad_clip: float | None = 1.0  # clip the gradient's global norm to this (None or 0 = off)
    ema_decay: float = 0.999  # EMA decay; the effective decay is min(ema_decay, (1+n)/(10+n))
    seed: int = 0  # seeds data order, t, ε, label dropout, model init and dropout
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
    bf16: bool | None = None  # bf16 autocast; None = on for CUDA. CUDA only.
    fast: bool | None = None  # the diffviz.fast path (fused AdamW, CUDA graph, ...); None = on for CUDA
    compile: bool = False  # torch.compile the model (a minute or two of compiling first)
    num_threads: int | None = None  # torch.set_num_threads for CPU training (None = leave as is)
    checkpoint_dir: str | None = None  # folder for checkpoints (None = no checkpoints)
    checkpoint_every: int = 0  # save every N steps (0 = only at the end and when stopped); needs checkpoint_dir
    keep_checkpoints: int = 3  # keep the newest K checkpoints
    resume: bool = False  # continue from checkpoint_dir's latest checkpoint (an error if it has none);
    # without it, fit() refuses a checkpoint_dir holding another run's checkpoints (see diffviz.runs)
    log_every: int = 50  # report a TrainEvent to the callback every N steps
    sample_every: int = 0  # attach EMA samples to the event every N steps (0 = never)
    num_samples: int = 16  # how many samples to draw then
    sample_steps: int | None = None  # DDIM steps for those samples, at most T (None = min(25, T))

    def __post_init__(self):
        for name in ("steps", "batch_size", "num_timesteps", "log_every", "num_samples", "keep_checkpoints"):
            positive_int(name, getattr(self, name))
        for name in ("warmup_steps", "checkpoint_every", "sample_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        for name in ("num_data", "num_threads"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        if self.lr is not None:
            finite_number("lr", self.lr, low=0, low_open=True)
        if self.grad_clip is not None:
            finite_number("grad_clip", self.grad_clip, low=0)  # a negative clip would flip the gradient
        finite_number("weight_decay", self.weight_decay, low=0)
        if not 0 <= finite_number("ema_decay", self.ema_decay, low=0, high=1) < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.label_dropout is not None and not 0 <= finite_number("label_dropout", self.label_dropout) < 1:
            raise ValueError(f"label_dropout must be in [0, 1) or None, got {self.label_dropout!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss_type {self.loss_type!r}; use one of {', '.join(LOSS_TYPES)}")
        if not isinstance(self.learn_sigma, bool):
            raise TypeError(f"learn_sigma must be True or False, got {self.learn_sigma!r}")
        finite_number("vlb_weight", self.vlb_weight, low=0)
        if "learn_sigma" in self.model_overrides:
            raise ValueError("set learn_sigma on the TrainConfig (it also picks the loss), not in model_overrides")
        if self.learn_sigma and self.fast:
            raise ValueError("fast=True cannot train learn_sigma models yet (the L_vlb term is not graph-safe); "
                             "use fast=False")
        if self.min_snr_gamma is not None:
            finite_number("min_snr_gamma", self.min_snr_gamma, low=0, low_open=True)
        if self.sample_steps is not None:  # never clamped silently
            check_num_steps(self.sample_steps, self.num_timesteps, name="sample_steps")
        if self.model not in ("auto", "toy", *PRESETS):
            raise ValueError(f"unknown model {self.model!r}; use 'auto', 'toy' or one of {', '.join(PRESETS)}")
        if not self.checkpoint_dir and (self.checkpoint_every or self.resume):
            what = "checkpoint_every" if self.checkpoint_every else "resume"
            raise ValueError(f"{what} needs checkpoint_dir (the folder to save to / resume from), got None")


@dataclass
class TrainEvent:
    step: int  # optimizer steps done so far
    loss: float  # mean loss (L_simple, or L_hybrid with learn_sigma) over the steps since the previous event
    lr: float  # learning rate of the last step
    images_seen: int  # training examples seen so far
    elapsed: float  # seconds spent in fit() so far (continues across resumes)
    samples: torch.Tensor | None = None  # (N, *data_shape) EMA samples on the CPU, every sample_every


def build_model(config: TrainConfig, data_shape: tuple, num_classes: int | None):
    """The model ``config.model`` names, sized for data of shape (C, H, W) or (D,)."""
    name = config.model if config.model != "auto" else ("toy" if len(data_shape) == 1 else "tiny")
    if name == "toy":
        if len(data_shape) != 1:
            raise ValueError(f"model 'toy' needs (N, D) data, got examples of shape {data_shape}")
        return ToyMLP(ToyConfig(data_dim=data_shape[0], num_classes=num_classes, num_timesteps=config.num_timesteps,
                                learn_sigma=config.learn_sigma, **config.model_overrides))
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"model {name!r} needs square (C, H, W) images, got examples of shape {data_shape}")
    C, H, _ = data_shape
    return UNet(preset(name, in_channels=C, image_size=H, num_classes=num_classes, num_timesteps=config.num_timesteps,
                       learn_sigma=config.learn_sigma, **config.model_overrides))


def learning_rate(config: TrainConfig, peak: float, step: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based): a linear warm-up from 0 to ``peak``
    over ``warmup_steps``, then ``peak`` ("constant") or a half cosine from ``peak`` down to 0 at
    ``steps`` ("cosine": lr = peak·½(1 + cos(π·p)), p the fraction of the post-warm-up steps done)."""
    warmup, total = config.warmup_steps, config.steps
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if config.lr_schedule == "constant":
        return peak
    done = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * 0.5 * (1.0 + math.cos(math.pi * done))


def min_snr_weights(alphas_cumprod: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-timestep loss weights of min-SNR-γ for an ε-prediction loss (Hang et al. 2023, Eq. 10
    with SNR_t = ᾱ_t / (1 − ᾱ_t)): w_t = min(SNR_t, γ) / SNR_t. High-noise steps (SNR ≤ γ) keep
    weight 1; the nearly-clean ones, whose ε is easy to fit and whose gradients dominate
    otherwise, are weighted down. Returns (T,) float32."""
    snr = alphas_cumprod.double() / (1 - alphas_cumprod.double())
    return (snr.clamp(max=gamma) / snr).float()
