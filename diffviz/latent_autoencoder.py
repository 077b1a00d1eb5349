"""A small KL-regularised convolutional autoencoder for 28×28 digits: the "first stage" of latent diffusion.

    x (B, 1, 28, 28) in [-1, 1] ──► encoder ──► q(z | x) = N(μ, σ²), μ, log σ² (B, C_lat, 7, 7)
    z (B, C_lat, 7, 7)          ──► decoder ──► x̂ (B, 1, 28, 28) in (-1, 1)

Rombach et al. 2022 (Sec. 3, "Perceptual Image Compression") train such an autoencoder once and run
the diffusion model on its latents, which are 16× smaller here (784 pixels → C_lat·49 numbers with
C_lat = 4). Their "KL-reg" variant is a VAE (Kingma & Welling 2014) whose KL weight is tiny: the KL
term only keeps the latents from drifting to arbitrary scales; reconstruction dominates the loss.
Because the latent scale is then still arbitrary, the latents are multiplied by a ``scale_factor``
measured on the training data (1 / std of the training latents; Stable Diffusion's 0.18215 comes
from the same recipe, Rombach et al. 2022, Appendix G), so the diffusion model sees unit variance.

``encode`` / ``decode`` work on SCALED latents; ``posterior`` gives the unscaled (μ, log σ²).
Shape letters: B batch, C_lat latent channels.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checkpoint_io as io
from .validate import check_generator, finite_number, positive_int

IMAGE_SHAPE = (1, 28, 28)
LATENT_SIZE = 7  # 28 → 14 → 7: two stride-2 convolutions


@dataclass
class AutoencoderConfig:
    latent_channels: int = 4  # C_lat: channels of the 7×7 latent (Stable Diffusion's VAE also has 4)
    channels: int = 32  # width at 28×28; the 14×14 and 7×7 levels have 2× this
    kl_weight: float = 1e-3  # β of loss = MSE + β·KL (both averaged per element); small, as in the KL-reg VAE
    scale_factor: float = 1.0  # multiplies μ (and z samples) in ``encode``; set from data by ``fit_scale_factor``

    def __post_init__(self):
        positive_int("latent_channels", self.latent_channels)
        positive_int("channels", self.channels)
        finite_number("kl_weight", self.kl_weight, low=0)
        finite_number("scale_factor", self.scale_factor, low=0, low_open=True)


def _conv(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class Autoencoder(nn.Module):
    """Encoder q(z | x) and decoder x̂(z); see the module docstring for shapes and the recipe."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if not isinstance(config, AutoencoderConfig):
            raise TypeError(f"config must be an AutoencoderConfig, got {type(config).__name__}")
        self.config = config
        c, c2, k = config.channels, 2 * config.channels, config.latent_channels
        self.encoder = nn.Sequential(_conv(1, c), nn.SiLU(), _conv(c, c2, 2), nn.SiLU(),  # 28 → 14
                                     _conv(c2, c2), nn.SiLU(), _conv(c2, c2, 2), nn.SiLU(),  # 14 → 7
                                     _conv(c2, c2), nn.SiLU(), nn.Conv2d(c2, 2 * k, 1))  # μ and log σ²
        self.decoder = nn.Sequential(_conv(k, c2), nn.SiLU(), _conv(c2, c2), nn.SiLU(),
                                     nn.Upsample(scale_factor=2), _conv(c2, c2), nn.SiLU(),  # 7 → 14
                                     nn.Upsample(scale_factor=2), _conv(c2, c), nn.SiLU(),  # 14 → 28
                                     _conv(c, 1), nn.Tanh())  # pixels in (-1, 1)

    @property
    def latent_shape(self) -> tuple:
        """(C_lat, 7, 7): the shape of one latent."""
        return (self.config.latent_channels, LATENT_SIZE, LATENT_SIZE)

    def _check(self, name, value, shape):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a float tensor of shape (B, {', '.join(map(str, shape))}), "
                            f"got {type(value).__name__ if not isinstance(value, torch.Tensor) else value.dtype}")
        if value.ndim != 4 or tuple(value.shape[1:]) != shape:
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(value.shape)}")

    def posterior(self, x):
        """q(z | x) = N(μ, diag σ²) of the UNSCALED latent (Kingma & Welling 2014, Sec. 2.4).

        Args: x (B, 1, 28, 28) in [-1, 1].  Returns: (μ, log σ²), each (B, C_lat, 7, 7).
        """
        self._check("x", x, IMAGE_SHAPE)
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # (B, C_lat, 7, 7) each
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x, sample=False, generator=None):
        """z = scale_factor · μ, or with ``sample=True`` z = scale_factor · (μ + σ·ε), ε ~ N(0, I) from
        ``generator`` (the reparameterisation of Kingma & Welling 2014, Eq. 10).

        Args: x (B, 1, 28, 28) in [-1, 1].  Returns: scaled latents z (B, C_lat, 7, 7), std ≈ 1 on data.
        """
        check_generator(generator)
        mean, logvar = self.posterior(x)
        return self.config.scale_factor * (reparameterise(mean, logvar, generator) if sample else mean)

    def decode(self, z):
        """x̂ = decoder(z / scale_factor) (Rombach et al. 2022, Sec. 3: x̃ = D(z)).

        Args: z (B, C_lat, 7, 7) scaled latents.  Returns: x̂ (B, 1, 28, 28) in (-1, 1).
        """
        self._check("z", z, self.latent_shape)
        return self.decoder(z / self.config.scale_factor)

    def forward(self, x, generator=None):
        """One training pass: (x̂ (B, 1, 28, 28), μ, log σ²) with z sampled by ``generator``."""
        mean, logvar = self.posterior(x)
        return self.decoder(reparameterise(mean, logvar, generator)), mean, logvar


def reparameterise(mean, logvar, generator=None):
    """z = μ + σ·ε, ε ~ N(0, I) from ``generator`` (Kingma & Welling 2014, Eq. 10). Shapes: any, equal."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * logvar).exp() * noise


def kl_divergence(mean, logvar):
    """KL(N(μ, σ²) ‖ N(0, 1)) per element (Kingma & Welling 2014, Appendix B):
    KL = ½ (μ² + σ² − 1 − log σ²).  Args: mean, logvar any shape.  Returns: same shape."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def autoencoder_loss(model, x, generator=None):
    """loss = mean (x − x̂)² + β · mean KL: a β-VAE objective with a small β (``kl_weight``).

    Args: x (B, 1, 28, 28) in [-1, 1].  Returns: (loss, reconstruction MSE, mean KL), 0-dim tensors.
    """
    recon, mean, logvar = model(x, generator=generator)
    mse = F.mse_loss(recon, x)
    kl = kl_divergence(mean, logvar).mean()
    return mse + model.config.kl_weight * kl, mse.detach(), kl.detach()


def train_autoencoder(model, images, steps=1500, batch_size=64, lr=2e-3, generator=None, log_every=100):
    """Train ``model`` on ``images`` (N, 1, 28, 28) with AdamW, a linear warm-up over 50 steps and a
    cosine decay to 0; batches and z samples come from ``generator``. Returns the loss of every step."""
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    check_generator(generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    model.train()
    for step in range(steps):
        warm = min(1.0, (step + 1) / 50)
        for group in optimizer.param_groups:
            group["lr"] = lr * warm * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / steps)).item())
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        loss, mse, kl = autoencoder_loss(model, images[idx], generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps}  loss {loss.item():.5f}  mse {mse.item():.5f}  kl {kl.item():.3f}",
                  flush=True)
    model.eval()
    return losses


@torch.no_grad()
def fit_scale_factor(model, images, batch_size=500) -> float:
    """1 / std of the unscaled latent means μ of ``images`` (all elements pooled), set on the model's
    config and returned: afterwards ``encode`` gives latents of unit variance on this data."""
    means = torch.cat([model.posterior(images[i:i + batch_size])[0] for i in range(0, images.shape[0], batch_size)])
    model.config.scale_factor = 1.0 / means.std().item()
    return model.config.scale_factor


# ----- fp16 safetensors + JSON (never pickle), like ``diffviz.checkpoint.export_model`` -----
FORMAT = "diffviz-autoencoder"


def export_autoencoder(model, path_prefix, metadata=None, dtype=torch.float16) -> Path:
    """Write ``PREFIX.safetensors`` (weights in ``dtype``) and ``PREFIX.json`` (config incl. scale_factor,
    sha256, ``metadata``), each atomically. Returns the JSON path."""
    prefix = Path(path_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in io.cpu_state_dict(model).items()}
    tensor_path = prefix.with_name(prefix.name + ".safetensors")
    info = io.write_tensors_atomic(tensor_path, weights)
    config = {"format": FORMAT, "format_version": io.FORMAT_VERSION,
              "model": {"type": "autoencoder", "config": asdict(model.config)},
              "dtype": str(dtype).removeprefix("torch."), "weights": {"file": tensor_path.name, **info},
              "versions": io.versions(), "metadata": metadata or {}}
    json_path = prefix.with_name(prefix.name + ".json")
    io.write_text_atomic(json_path, json.dumps(io.seal_config(config), indent=2))
    return json_path


def load_autoencoder(path_prefix, device="cpu"):
    """Load an ``export_autoencoder`` pair (hashes checked) as float32 in eval mode. Returns (model, metadata)."""
    prefix = Path(path_prefix)
    json_path = prefix.with_name(prefix.name + ".json")
    config = io.read_json_config(json_path, FORMAT, ("model", "weights"))
    try:
        model = Autoencoder(AutoencoderConfig(**config["model"]["config"]))
    except (TypeError, ValueError) as err:
        raise io.CheckpointError(f"{json_path}: invalid autoencoder config ({err})") from None
    tensors, _ = io.read_tensors(json_path.parent / config["weights"]["file"], config["weights"])
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError as err:
        raise io.CheckpointError(f"{json_path}: weights do not fit the config ({err})") from None
    meta = {**config.get("metadata", {}), "versions": config.get("versions"), "path": str(json_path)}
    return model.to(device).eval(), meta
