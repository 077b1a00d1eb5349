"""Offline sample-quality metrics for 28×28 digits, from a small CNN the project trains itself.

Inception-based FID needs downloaded weights, so MNIST work swaps Inception for a classifier
trained on the digits. Ours is ``MnistClassifier``, trained by ``benchmarks/train_classifier.py``
on the mnist-5k train split; its weights ship in ``data/mnist_classifier.safetensors`` + ``.json``.

- ``feature_fid``: Fréchet distance between the classifier's penultimate features of two image
  sets (Heusel et al. 2017, with our CNN in place of Inception). Numbers are comparable only
  between runs with the same classifier, the same reference set and the same N (the estimate
  is biased upwards for small N; compare with a real-vs-real row at the same N).
- ``class_accuracy``: does a sample generated for label 7 look like a 7 to the classifier?
- ``class_histogram_entropy``: entropy (in nats) of the predicted-class histogram; log 10 ≈ 2.303
  when all ten digits appear equally often, 0 when every sample is the same digit.
- ``memorisation``: each sample's pixel distance to its nearest training image, against the
  same distance for real held-out digits. Small datasets are easy to copy; this shows it.

Images are float32 (N, 1, 28, 28) in [-1, 1], like ``load_dataset("mnist-5k").x``. Shape
letters: N, M numbers of images, D feature width, K number of classes.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from safetensors.torch import load_file

from .data import data_dir
from .validate import check_labels, finite_number, positive_int

IMAGE_SHAPE = (1, 28, 28)


@dataclass
class ClassifierConfig:
    channels: tuple = (32, 64, 64)  # output channels of each conv block (3×3 conv, ReLU, 2×2 max-pool)
    feature_dim: int = 128  # D, width of the penultimate layer: the features feature-FID compares
    num_classes: int = 10  # K, digits 0..9
    dropout: float = 0.3  # dropout on the features while training (off in eval mode)

    def __post_init__(self):
        self.channels = tuple(self.channels)  # JSON gives lists back


class MnistClassifier(nn.Module):
    """x (B, 1, 28, 28) ─► 3 × [conv 3×3, ReLU, max-pool 2] (28 → 14 → 7 → 3)
    ─► flatten ─► Linear + ReLU = features (B, D) ─► Linear ─► logits (B, K)."""

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or ClassifierConfig()
        layers, in_ch = [], IMAGE_SHAPE[0]
        for out_ch in config.channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            in_ch = out_ch
        self.conv = nn.Sequential(*layers)
        side = IMAGE_SHAPE[1] // 2 ** len(config.channels)  # floor at each pool: 28 → 14 → 7 → 3
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(in_ch * side * side, config.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, D), the input of the final linear layer."""
        return self.embed(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, K) logits


def classifier_path() -> Path:
    """The shipped weights: <data dir>/mnist_classifier.safetensors (JSON beside it)."""
    return data_dir() / "mnist_classifier.safetensors"


def load_classifier(path=None) -> MnistClassifier:
    """Build the classifier from ``PATH.json`` and load ``PATH.safetensors`` (never pickle),
    after checking the file's sha256 against the JSON. ``path`` defaults to ``classifier_path()``.
    Returns the model in eval mode on the CPU (a shared, cached copy for the default path)."""
    if path is None:
        return _default_classifier()
    tensor_path = Path(path).with_suffix(".safetensors")
    json_path = tensor_path.with_suffix(".json")
    for p in (tensor_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"classifier file {p} is missing; rebuild it with "
                                    f"`python benchmarks/train_classifier.py`")
    info = json.loads(json_path.read_text(encoding="utf-8"))
    digest = hashlib.sha256(tensor_path.read_bytes()).hexdigest()
    if digest != info["sha256"]:
        raise ValueError(f"{tensor_path}: sha256 {digest} does not match {json_path} ({info['sha256']})")
    model = MnistClassifier(ClassifierConfig(**info["config"]))
    model.load_state_dict(load_file(str(tensor_path)))
    return model.eval()


@functools.lru_cache(maxsize=1)
def _default_classifier() -> MnistClassifier:
    return load_classifier(classifier_path())


# ----------------------------------------------------------------------------- input checks
def _check_images(name, images, min_count=1) -> torch.Tensor:
    """(N, 1, 28, 28) float in [-1, 1] → float32 CPU tensor, or a ValueError naming ``name``."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(images).__name__}")
    if not images.is_floating_point() or images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{name} must be float images of shape (N, 1, 28, 28), "
                         f"got {images.dtype} of shape {tuple(images.shape)}")
    if images.shape[0] < min_count:
        raise ValueError(f"{name} needs at least {min_count} images, got {images.shape[0]}")
    images = images.detach().float().cpu()
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    low, high = images.min().item(), images.max().item()
    if low < -1 - 1e-4 or high > 1 + 1e-4:
        raise ValueError(f"{name} must lie in [-1, 1], got values in [{low:.3f}, {high:.3f}]; "
                         f"clamp samples with .clamp(-1, 1) first")
    return images


def _model(classifier) -> MnistClassifier:
    if classifier is not None and not callable(classifier):
        raise TypeError(f"classifier must be an MnistClassifier (load_classifier()) or None, got {classifier!r}")
    return load_classifier() if classifier is None else classifier


def _check_labels(labels, count, num_classes) -> torch.Tensor:
    """(N,) integer class labels in [0, num_classes − 1] (any range when num_classes is None)."""
    labels = check_labels(labels, count, num_classes, name="labels")
    if not isinstance(labels, torch.Tensor) or labels.shape != (count,):
        raise ValueError(f"labels must be integers of shape ({count},), one per image, got {labels!r}")
    return labels.cpu()


# ----------------------------------------------------------------------------- classifier outputs
@torch.no_grad()
def _batched(fn, images, batch_size) -> torch.Tensor:
    return torch.cat([fn(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])


def features(images, classifier=None, batch_size: int = 500) -> torch.Tensor:
    """Penultimate classifier features of ``images`` (N, 1, 28, 28) in [-1, 1] → (N, D) float32."""
    images = _check_images("images", images)
    model, batch_size = _model(classifier), positive_int("batch_size", batch_size)
    return _batched(model.features, images, batch_size)


def predict(images, classifier=None, batch_size: int = 500) -> torch.Tensor:
    """The classifier's predicted digit, argmax of the logits → (N,) int64."""
    images = _check_images("images", images)
    model, batch_size = _model(classifier), positive_int("batch_size", batch_size)
    return _batched(lambda x: model(x).argmax(dim=1), images, batch_size)


def class_accuracy(images, labels, classifier=None) -> float:
    """Fraction of images the classifier labels as ``labels`` (N,) int — the label a conditional
    sample was generated for, or the true label of a real image."""
    images = _check_images("images", images)
    model = _model(classifier)
    labels = _check_labels(labels, images.shape[0], getattr(getattr(model, "config", None), "num_classes", None))
    return (predict(images, model) == labels).double().mean().item()


def histogram_entropy(predicted, num_classes: int = 10) -> float:
    """H = Σ_k p_k log(1 / p_k) (nats) of the histogram p_k = #{predicted = k} / N; 0·log 0 = 0.
    In [0, log K]: log K for a uniform histogram, 0 when all N predictions are one class."""
    num_classes = positive_int("num_classes", num_classes)
    predicted = torch.as_tensor(predicted)
    if predicted.ndim != 1 or predicted.is_floating_point():
        raise ValueError(f"predicted must be class indices of shape (N,), got {predicted.dtype} "
                         f"of shape {tuple(predicted.shape)}")
    predicted = predicted.long().cpu()
    if predicted.numel() == 0 or predicted.min() < 0 or predicted.max() >= num_classes:
        raise ValueError(f"predicted must be a non-empty set of class indices in [0, {num_classes - 1}]")
    p = torch.bincount(predicted, minlength=num_classes).double() / predicted.numel()  # (K,)
    p = p[p > 0]
    return float((p * (1 / p).log()).sum())


def class_histogram_entropy(images, classifier=None) -> float:
    """Entropy in nats of the classifier's predicted-class histogram (``histogram_entropy``).
    For unconditional samples, log 10 ≈ 2.303 means all digits appear equally often; lower
    values mean the sampler favours some digits (mode dropping)."""
    model = _model(classifier)
    return histogram_entropy(predict(images, model), model.config.num_classes)


# ----------------------------------------------------------------------------- Fréchet distance
def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix via eigh; round-off negatives are clipped to 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(μ₁, Σ₁) and N(μ₂, Σ₂)
    (Dowson & Landau 1982; the "FID" of Heusel et al. 2017):
    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})

    Σ₁Σ₂ is not symmetric, but it is similar to the symmetric PSD matrix M = Σ₁^{1/2} Σ₂ Σ₁^{1/2},
    so Tr (Σ₁Σ₂)^{1/2} = Σ_i √λ_i(M): two eigh calls in float64, no scipy.sqrtm and no complex parts.

    Args: mu1, mu2 (D,); sigma1, sigma2 (D, D) symmetric PSD; numpy arrays or tensors.
    Returns: d² as a float ≥ 0 (tiny negative round-off is returned as 0).
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    D = mu1.shape[0]
    for name, value, shape in (("mu1", mu1, (D,)), ("mu2", mu2, (D,)),
                               ("sigma1", sigma1, (D, D)), ("sigma2", sigma2, (D, D))):
        if value.shape != shape or not np.isfinite(value).all():
            raise ValueError(f"{name} must have shape {shape} (D = len(mu1) = {D}) and finite values, "
                             f"got shape {value.shape}")
    root1 = _psd_sqrt(sigma1)  # Σ₁^{1/2}
    m = root1 @ sigma2 @ root1  # (D, D), symmetric PSD
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    d2 = ((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return max(float(d2), 0.0)


def feature_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (unbiased, N − 1) of features (N, D), in float64."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2, got {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False).reshape(feats.shape[1], feats.shape[1])


def feature_fid(generated, real, classifier=None) -> float:
    """Feature-FID: ``frechet_distance`` of Gaussians fitted to the classifier features of
    ``generated`` (N, 1, 28, 28) and ``real`` (M, 1, 28, 28), both in [-1, 1], N, M >= 2."""
    generated = _check_images("generated", generated, min_count=2)
    real = _check_images("real", real, min_count=2)
    model = _model(classifier)
    return frechet_distance(*feature_statistics(features(generated, model)),
                            *feature_statistics(features(real, model)))


# ----------------------------------------------------------------------------- memorisation
@dataclass
class Memorisation:
    """Pixel-space L2 distances (images in [-1, 1], so 0 ≤ d ≤ 2·28 = 56)."""

    sample_distance: torch.Tensor  # (N,) float32, each sample to its nearest training image
    nearest_index: torch.Tensor  # (N,) int64, the index of that training image
    real_distance: torch.Tensor  # (M,) float32, each real held-out image to its nearest training image
    threshold: float  # the `quantile` of real_distance: "closer than almost any fresh real digit"
    quantile: float  # e.g. 0.05
    fraction_memorised: float  # fraction of samples with sample_distance < threshold (≈ quantile for fresh digits)
    median_distance: float  # median of sample_distance
    real_median_distance: float  # median of real_distance, the scale to compare it with

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not isinstance(v, torch.Tensor)}


@torch.no_grad()
def nearest_neighbours(queries, references, batch_size: int = 256):
    """For each query (N, 1, 28, 28) the nearest reference (M, 1, 28, 28) in pixel L2 distance.
    Candidates come from ‖a‖² + ‖b‖² − 2a·b in float64; the winner's distance is then recomputed
    directly as ‖a − b‖, so an exact copy has distance exactly 0.
    Returns: (distance (N,) float32, index (N,) int64)."""
    batch_size = positive_int("batch_size", batch_size)
    queries = _check_images("queries", queries).flatten(1).double()  # (N, 784)
    references = _check_images("references", references).flatten(1).double()  # (M, 784)
    ref_sq = (references ** 2).sum(dim=1)  # (M,)
    index = torch.cat([((q ** 2).sum(1, keepdim=True) + ref_sq - 2 * q @ references.T).argmin(dim=1)
                       for q in queries.split(batch_size)])  # (N,)
    distance = (queries - references[index]).norm(dim=1)
    return distance.float(), index


def memorisation(samples, train_images, real_reference, quantile: float = 0.05) -> Memorisation:
    """How close is each sample to a training image, compared with fresh real digits?

    d(x) = min_j ‖x − train_j‖₂ for every sample and for every real held-out image (``real_reference``,
    e.g. the test split). A sample closer than the ``quantile`` of the real distances (default: 5th
    percentile) is counted as memorised: fresh digits land there 5% of the time by construction,
    so a fraction far above ``quantile`` means the model is copying its training set.

    Args: samples (N, 1, 28, 28), train_images (M, 1, 28, 28), real_reference (R, 1, 28, 28),
          all in [-1, 1]; quantile in (0, 1).
    Returns: Memorisation.
    """
    quantile = finite_number("quantile", quantile, low=0, low_open=True, high=1)
    if quantile == 1:
        raise ValueError("quantile must be in (0, 1), got 1.0")
    sample_distance, nearest_index = nearest_neighbours(samples, train_images)
    real_distance, _ = nearest_neighbours(real_reference, train_images)
    threshold = torch.quantile(real_distance.double(), quantile).item()
    return Memorisation(sample_distance, nearest_index, real_distance, threshold, quantile,
                        fraction_memorised=(sample_distance < threshold).double().mean().item(),
                        median_distance=sample_distance.median().item(),
                        real_median_distance=real_distance.median().item())
