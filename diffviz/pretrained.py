"""Models shipped with diffviz in ``data/pretrained/``, usable offline on a laptop CPU.

"mnist": a class-conditional U-Net (ε-prediction, linear schedule, T = 1000) trained with
``diffviz train`` on the bundled mnist-5k digits; its recipe and metrics are in data/README.md.
Weights are the EMA weights, stored as fp16 safetensors + a JSON config (never pickle).

"mnist-noisy-classifier": a noise-aware digit classifier p_φ(y | x_t, t) (``diffviz.classifier``) for
classifier guidance of "mnist" (same schedule), trained by ``benchmarks/train_noisy_classifier.py``;
its JSON holds the training command, the licence and its test accuracy against t.
"""
from __future__ import annotations

from .checkpoint import LoadedModel, load_model
from .data import data_dir
from .latent import load_autoencoder, load_latent_diffusion
from .validate import resolve_device

PRETRAINED = {"mnist": "mnist_unet", "mnist-noisy-classifier": "mnist_noisy_classifier",  # name -> file prefix
              "mnist-autoencoder": "mnist_autoencoder", "mnist-latent": "mnist_latent"}


def pretrained_path(name: str):
    """The file prefix of the shipped model ``name`` (``data/pretrained/<prefix>``)."""
    if not isinstance(name, str) or name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED)}")
    path = data_dir() / "pretrained" / PRETRAINED[name]
    if not path.with_name(path.name + ".json").exists():
        raise FileNotFoundError(f"pretrained model {name!r} is missing: expected {path}.json and .safetensors")
    return path


def load_pretrained(name: str = "mnist", device="cpu") -> LoadedModel:
    """The ready model (eval mode, float32) and its schedule: ``model, schedule, meta = load_pretrained()``.

    The model is an ε-predictor ``model(x_t, t, y=None)`` for x_t (B, 1, 28, 28) in the [-1, 1]
    data scale, t (B,) int64 in [0, 999] (code t = k is the paper's t = k + 1), y (B,) digit labels
    0–9, or None for the learned null class used by classifier-free guidance.
    "mnist-noisy-classifier" gives ``classifier(x_t, t)`` → logits (B, 10) instead, for
    ``sample(..., classifier=classifier, y=digits)``.
    "mnist-autoencoder" gives the latent autoencoder (``encode``/``decode``; schedule None);
    "mnist-latent" a ``LatentDiffusion`` whose ``model.sample((B, 1, 28, 28), y=..., ...)`` takes the
    arguments of ``diffviz.sample`` and returns decoded digits (``diffviz.latent``).
    """
    device = resolve_device(device)
    if name == "mnist-autoencoder":
        autoencoder, meta = load_autoencoder(pretrained_path(name), device)
        return LoadedModel(autoencoder, None, meta)
    if name == "mnist-latent":
        return load_latent_diffusion(pretrained_path(name), pretrained_path("mnist-autoencoder"), device=device)
    return load_model(pretrained_path(name), device=device)
