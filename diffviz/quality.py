"""Sample quality of a digit model, measured one way everywhere (benchmarks, the model card, the
training-progress snapshots, notebook 05): built on ``diffviz.metrics``.

- Samples are drawn for labels 0, 1, …, 9, 0, 1, … (``cycling_labels``): class-balanced.
- The real-digit floor uses the SAME n and the same balance (``real_baseline``): feature-FID is
  biased upwards at small n, and an unbalanced pick of real digits can double it at n = 100, so
  only a like-for-like floor says how far samples are from "as good as data".
- ``confidence`` is the classifier's mean top probability: for unconditional samples (no label to
  check) it says whether they look like some digit at all, where the histogram entropy says
  whether all ten digits appear.
- ``border_speckle`` counts lit pixels in the outer frame, where real MNIST digits are almost
  always black: the background dots of an undertrained deterministic sampler show up there.
"""
from __future__ import annotations

import torch

from . import metrics
from .data import load_dataset
from .validate import positive_int


def cycling_labels(n: int, num_classes: int = 10) -> torch.Tensor:
    """(n,) int64 labels 0, 1, …, num_classes − 1, 0, 1, …"""
    return torch.arange(positive_int("n", n)) % positive_int("num_classes", num_classes)


def balanced_pick(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of n examples whose labels cycle 0, 1, …, 9 like ``cycling_labels(n)``, each class's
    examples taken in a seeded random order. An error if a class has too few examples."""
    labels = torch.as_tensor(labels).long()
    num_classes = int(labels.max()) + 1
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    by_class = [order[labels[order] == c].tolist() for c in range(num_classes)]
    need = -(-positive_int("n", n) // num_classes)
    short = [c for c, members in enumerate(by_class) if len(members) < need]
    if short:
        raise ValueError(f"n={n} needs {need} examples of every class; classes {short} have fewer")
    return torch.tensor([by_class[i % num_classes][i // num_classes] for i in range(n)])


@torch.no_grad()
def confidence(images, classifier=None) -> float:
    """Mean over images of the classifier's largest class probability, in [1/K, 1]."""
    model = metrics.load_classifier() if classifier is None else classifier
    logits = model.head(metrics.features(images, model))  # features() checks the images; (N, K)
    return logits.softmax(dim=1).max(dim=1).values.mean().item()


def border_speckle(images, width: int = 3, threshold: float = -0.5) -> float:
    """Fraction of the pixels in the outer ``width``-pixel frame of (N, C, H, W) images in [-1, 1]
    that are brighter than ``threshold`` (−0.5: a quarter of the way from black to white)."""
    images = torch.as_tensor(images)
    if images.ndim != 4 or min(images.shape[-2:]) <= 2 * positive_int("width", width):
        raise ValueError(f"images must be (N, C, H, W) with H, W > 2·width = {2 * width}, got {tuple(images.shape)}")
    frame = torch.ones(images.shape[-2:], dtype=torch.bool)
    frame[width:-width, width:-width] = False
    return (images[..., frame] > threshold).float().mean().item()


class Reference:
    """What every measurement compares against: the mnist-5k train and test splits and the classifier."""

    def __init__(self, classifier=None):
        self.train = load_dataset("mnist-5k", split="train")
        self.test = load_dataset("mnist-5k", split="test")
        self.classifier = metrics.load_classifier() if classifier is None else classifier


def measure(images, labels, reference: Reference) -> dict:
    """The quality columns of one set of images in [-1, 1] (labels=None: unconditional samples,
    no class accuracy): feature-FID against the 500 test digits, class accuracy, predicted-class
    entropy (nats), mean confidence, memorised fraction and median nearest-neighbour distance."""
    memo = metrics.memorisation(images, reference.train.x, reference.test.x)
    clf = reference.classifier
    return {"fid": metrics.feature_fid(images, reference.test.x, clf),
            "accuracy": None if labels is None else metrics.class_accuracy(images, labels, clf),
            "entropy": metrics.class_histogram_entropy(images, clf), "confidence": confidence(images, clf),
            "memorised": memo.fraction_memorised, "median_nn": memo.median_distance}


def real_baseline(n: int, reference: Reference, seed: int = 0) -> dict:
    """Real digits at the same n: FID of n class-balanced TRAIN digits against the test set (the
    floor for a perfect sampler at this n); the other columns from the held-out test digits."""
    pick = balanced_pick(reference.train.y, min(n, len(reference.train.x)), seed)
    row = measure(reference.test.x, reference.test.y, reference)
    row["fid"] = metrics.feature_fid(reference.train.x[pick], reference.test.x, reference.classifier)
    return {**row, "n": len(pick)}
