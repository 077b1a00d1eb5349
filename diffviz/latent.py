"""Latent diffusion (Rombach et al. 2022): the diffusion model runs on an autoencoder's latents.

    x_T ~ N(0, I) (B, C_lat, 7, 7) ──► diffviz.sample(ε-model over latents) ──► z_0 ──► decode ──► x̂ (B, 1, 28, 28)

Training encodes every digit once, z_0 = scale_factor · μ(x) (``diffviz.latent_autoencoder``), and
trains an ordinary ε-prediction U-Net on z_0 with the usual loss (Rombach et al. 2022, Eq. 2: the
loss of Ho et al. 2020, Eq. 14, with x_0 replaced by z_0). Sampling is the ordinary sampler on latents
followed by ONE decoder call. Nothing in the samplers changes: they take any ε-model and any shape.

``LatentDiffusion`` holds the three parts (autoencoder, ε-model over latents, schedule). It is itself
an ε-model over latents (``model(z_t, t, y)``), and its ``sample`` takes the arguments of
``diffviz.sample`` (without the model and schedule) and returns decoded digits. Timesteps are 0-based:
code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .checkpoint import LoadedModel, load_model
from .latent_autoencoder import (IMAGE_SHAPE, Autoencoder, AutoencoderConfig, autoencoder_loss,  # noqa: F401
                                 export_autoencoder, fit_scale_factor, kl_divergence, load_autoencoder,
                                 train_autoencoder)
from .sampling import Trajectory, sample as sample_latents
from .validate import check_shape

__all__ = ["Autoencoder", "AutoencoderConfig", "LatentDiffusion", "LatentTrajectory", "autoencoder_loss",
           "encode_dataset", "export_autoencoder", "fit_scale_factor", "kl_divergence", "load_autoencoder",
           "load_latent_diffusion", "tile_latents", "train_autoencoder"]


@dataclass
class LatentTrajectory(Trajectory):
    """A sampling run of a ``LatentDiffusion``, in PIXELS, shaped like a pixel model's ``Trajectory``
    so the trajectory explorer and filmstrips show it: ``sample`` (B, 1, 28, 28) = decode(z_0);
    with ``record=True``, per step i, ``x_t[i]`` = decode(z_t) (what the noisy latent decodes to),
    ``x0_hat[i]`` = decode(ẑ_0) (the prediction of the final digit) and ``eps[i]`` the latent ε̂
    laid out as an image by ``tile_latents`` (S, B, 1, 7, 7·C_lat). ``latents`` is the run itself,
    in latent space: a ``Trajectory`` with z_t, ε̂, ẑ_0 of shape (S, B, C_lat, 7, 7)."""

    latents: Optional[Trajectory] = None


def tile_latents(z) -> torch.Tensor:
    """Latents (..., C, h, w) side by side as one-channel images (..., 1, h, C·w), channel 0 leftmost."""
    return torch.cat(z.unbind(dim=-3), dim=-1).unsqueeze(-3)


class LatentDiffusion(nn.Module):
    """Autoencoder + ε-model over its scaled latents + noise schedule (Rombach et al. 2022, Sec. 3–4).

    ``forward(z_t, t, y=None)`` is the ε-model: ε̂ (B, C_lat, 7, 7) for latents z_t (B, C_lat, 7, 7),
    t (B,) int64 in [0, T−1] and labels y (B,) or None (the null class of classifier-free guidance).
    ``config`` is the ε-model's config, so ``diffviz.sample`` checks T and the labels against it.
    """

    def __init__(self, autoencoder: Autoencoder, eps_model: nn.Module, schedule):
        super().__init__()
        if not isinstance(autoencoder, Autoencoder):
            raise TypeError(f"autoencoder must be a diffviz Autoencoder, got {type(autoencoder).__name__}")
        self.autoencoder, self.eps_model, self.schedule = autoencoder, eps_model, schedule
        self.config = getattr(eps_model, "config", None)

    @property
    def check_values(self) -> bool:
        """The ε-model's per-call value checks (``diffviz.sample`` turns them off for its loop)."""
        return getattr(self.eps_model, "check_values", False)

    @check_values.setter
    def check_values(self, value):
        if hasattr(self.eps_model, "check_values"):
            self.eps_model.check_values = value

    @property
    def latent_shape(self) -> tuple:
        """(C_lat, 7, 7)."""
        return self.autoencoder.latent_shape

    def forward(self, z_t, t, y=None):
        return self.eps_model(z_t, t) if y is None else self.eps_model(z_t, t, y)

    def encode(self, x, sample=False, generator=None):
        """Scaled latents z (B, C_lat, 7, 7) of digits x (B, 1, 28, 28) in [-1, 1] (``Autoencoder.encode``)."""
        return self.autoencoder.encode(x, sample=sample, generator=generator)

    def decode(self, z):
        """Digits x̂ (B, 1, 28, 28) in (-1, 1) of scaled latents z (B, C_lat, 7, 7) (``Autoencoder.decode``)."""
        return self.autoencoder.decode(z)

    def latent_batch_shape(self, shape) -> tuple:
        """The latent shape (B, C_lat, 7, 7) for ``shape``: a pixel shape (B, 1, 28, 28), a latent shape
        (B, C_lat, 7, 7) or a batch size B."""
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,) + self.latent_shape
        shape = check_shape(shape)
        if shape[1:] in (IMAGE_SHAPE, self.latent_shape):
            return (shape[0],) + self.latent_shape
        raise ValueError(f"shape must be (B, {', '.join(map(str, IMAGE_SHAPE))}) for digits or "
                         f"(B, {', '.join(map(str, self.latent_shape))}) for latents, got {shape}")

    @torch.no_grad()
    def decode_batched(self, z, batch_size=2048) -> torch.Tensor:
        """``decode`` of latents (..., C_lat, 7, 7) with any leading dims, in chunks. Returns (..., 1, 28, 28)."""
        flat = z.reshape(-1, *self.latent_shape)
        device = next(self.autoencoder.parameters()).device
        out = [self.decode(flat[i:i + batch_size].to(device)).cpu() for i in range(0, flat.shape[0], batch_size)]
        return torch.cat(out).reshape(*z.shape[:-3], *IMAGE_SHAPE)

    @torch.no_grad()
    def sample(self, shape, sampler="ddpm", num_steps=None, eta=0.0, generator=None, device=None, y=None,
               guidance_scale=None, record=True, **kwargs) -> LatentTrajectory:
        """Sample digits: ``diffviz.sample`` on latents (Rombach et al. 2022, Sec. 4: the reverse process
        of Ho et al. 2020 / Song et al. 2020 over z), then x̂ = decode(z_0).

        Args: the arguments of ``diffviz.sample`` after the model and schedule, with ``shape`` a pixel
              shape (B, 1, 28, 28) (or the latent shape (B, C_lat, 7, 7), or B); y, guidance_scale
              (classifier-free guidance in latent space, Ho & Salimans 2022), sampler, num_steps, eta,
              generator, record and the keyword-only options are passed through unchanged. ``x_T``,
              when given, is latent noise (B, C_lat, 7, 7); a ``classifier`` for classifier guidance
              would have to take latents z_t (the shipped noisy classifier takes pixels).
        Returns: LatentTrajectory (decoded; ``.latents`` holds the latent run). With ``record=True``
              every step's z_t and ẑ_0 are decoded too (2·S·B decoder calls; cheap at 7×7).
        """
        latent = sample_latents(self, self.schedule, self.latent_batch_shape(shape), sampler=sampler,
                                num_steps=num_steps, eta=eta, generator=generator, device=device, y=y,
                                guidance_scale=guidance_scale, record=record, **kwargs)
        pixels = self.decode_batched(latent.sample)  # (B, 1, 28, 28)
        steps = {"x_t": None, "eps": None, "x0_hat": None}
        if record:
            steps = {"x_t": self.decode_batched(latent.x_t), "eps": tile_latents(latent.eps),
                     "x0_hat": self.decode_batched(latent.x0_hat)}
        return LatentTrajectory(latent.timesteps, steps["x_t"], steps["eps"], steps["x0_hat"], pixels, latent.sampler,
                                latent.timestep_spacing, latent.eta, latent.guidance_scale, latent.classifier_scale,
                                latents=latent)


@torch.no_grad()
def encode_dataset(autoencoder, images, batch_size=500) -> torch.Tensor:
    """Scaled latent means z_0 (N, C_lat, 7, 7) of images (N, 1, 28, 28): the training data of the
    latent ε-model (Rombach et al. 2022, Sec. 4)."""
    return torch.cat([autoencoder.encode(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])


def load_latent_diffusion(prefix, autoencoder_prefix, device="cpu") -> LoadedModel:
    """Load the ε-model ``PREFIX.{json,safetensors}`` (``export_model``) and its autoencoder
    ``AUTOENCODER_PREFIX.{json,safetensors}``; the autoencoder's sha256 recorded with the ε-model at
    training time must match (latents of another autoencoder would decode to noise).
    Returns: LoadedModel(LatentDiffusion in eval mode, schedule, meta)."""
    eps_model, schedule, meta = load_model(prefix, device=device)
    autoencoder, ae_meta = load_autoencoder(autoencoder_prefix, device=device)
    expected = meta.get("autoencoder", {}).get("sha256")
    found = _weights_sha256(autoencoder_prefix)
    if expected is not None and expected != found:
        raise ValueError(f"{prefix}: was trained on the latents of an autoencoder with weights sha256 "
                         f"{expected[:12]}…, but {autoencoder_prefix} holds {found[:12]}…")
    return LoadedModel(LatentDiffusion(autoencoder, eps_model, schedule).eval(), schedule,
                       {**meta, "autoencoder_meta": ae_meta})


def _weights_sha256(prefix) -> str:
    """The sha256 of the weights file an exported model's JSON records."""
    path = Path(prefix)
    return json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))["weights"]["sha256"]
