"""Datasets for diffusion experiments: 2-D toy point clouds, small digit sets, one photo.

Conventions (every loader follows them):
  * images are float32 in [-1, 1], shape (N, C, H, W)   -- pixel p in 0..P maps to 2p/P − 1
  * 2-D toy data is float32 (N, 2). Each toy set is centred and divided by ONE fixed constant
    (isotropic, so shapes are not distorted), chosen so the average per-coordinate variance
    is ≈ 1. The constants are part of the definition and do not depend on n or the seed.
  * labels are int64 (N,), or None for sets without classes.
  * randomness comes only from `seed` (numpy.random.default_rng); the global RNG is never used.

The bundled files live in the repository's data/ folder (see data/README.md for sources and
licences); only numpy, pillow and torch are needed to read them. MNIST, Fashion-MNIST and
CIFAR-10 come through torchvision when it is installed.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .toy_data import (TOY_DATASETS, TOY_NUM_CLASSES, TOY_SPLITS, GaussianMixtureParams, gaussian_mixture_params,
                       mixture_spread, toy_points)
from .validate import check_bool, positive_int

__all__ = ["Dataset", "GaussianMixtureParams", "gaussian_mixture_params", "mixture_spread", "list_datasets", "data_dir",
           "load_dataset", "load_image", "TOY_DATASETS", "BUNDLED_DATASETS", "TORCHVISION_DATASETS"]

BUNDLED_DATASETS = ("digits", "mnist-5k")
TORCHVISION_DATASETS = ("mnist", "fashion-mnist", "cifar10")
IMAGES = ("cat",)
SPLITS = ("train", "test", "all")


@dataclass
class Dataset:
    """A whole dataset held in memory as tensors.

    Use ``torch.utils.data.TensorDataset(ds.x)`` (or ``(ds.x, ds.y)``) for a DataLoader.
    """

    x: torch.Tensor                  # (N, C, H, W) images in [-1, 1], or (N, 2) points; float32
    y: torch.Tensor | None           # (N,) int64 class labels, or None for unlabelled sets
    name: str                        # the name given to load_dataset, e.g. "mnist-5k"
    split: str                       # "train", "test" or "all"
    num_classes: int | None          # number of label values, or None when y is None
    image_shape: tuple | None        # (C, H, W) for images, None for 2-D points
    class_names: tuple | None = None  # human-readable label names, when the source has them

    def __len__(self) -> int:
        return self.x.shape[0]


def list_datasets() -> list[str]:
    """All names load_dataset accepts."""
    return [*TOY_DATASETS, *BUNDLED_DATASETS, *TORCHVISION_DATASETS]


def data_dir() -> Path:
    """The folder holding the bundled files: $DIFFVIZ_DATA if set, else <repo>/data."""
    override = os.environ.get("DIFFVIZ_DATA")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


def _load_toy(name, split, n, seed):
    """Toy points; "train" and "test" draw from independent streams default_rng([seed, 0 or 1])."""
    if split not in TOY_SPLITS:
        raise ValueError(f"split={split!r} is not available for toy data {name!r}; use 'train' or 'test'")
    x, y = toy_points(name, split, 10_000 if n is None else n, seed)
    return Dataset(x=x, y=y, name=name, split=split, num_classes=TOY_NUM_CLASSES.get(name), image_shape=None)


# ---------------------------------------------------------------------- image data
def _to_image_tensor(pixels, max_value):
    """uint8 pixels (N, H, W) or (N, H, W, C) in 0..max_value -> float32 (N, C, H, W) in [-1, 1]."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[:, None]  # (N, 1, H, W)
    elif pixels.ndim == 4 and pixels.shape[-1] in (1, 3):
        pixels = pixels.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        raise ValueError(f"expected pixels (N, H, W) or (N, H, W, C), got shape {pixels.shape}")
    x = torch.from_numpy(np.array(pixels, dtype=np.float32))  # a contiguous, writable copy
    return x / (max_value / 2) - 1.0  # p -> 2p/P − 1


def _held_out_mask(labels, test_per_class):
    """Deterministic stratified split: within each class, the LAST `test_per_class` rows
    (in file order) are the test set. Returns a bool array, True = test."""
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        is_test[np.flatnonzero(labels == c)[-test_per_class:]] = True
    return is_test


def _select_split(images, labels, split, test_per_class):
    if split == "all":
        return images, labels
    is_test = _held_out_mask(labels, test_per_class)
    keep = is_test if split == "test" else ~is_test
    return images[keep], labels[keep]


# name -> (file, max pixel value, test images per class)
_BUNDLED = {"digits": ("digits.npz", 16, 18), "mnist-5k": ("mnist5k.npz", 255, 50)}


def _load_bundled(name, split):
    """digits: 1,797 8x8 (test = last 18 per class: 180 test, 1,617 train).
    mnist-5k: 5,000 28x28 (test = last 50 per class: 500 test, 4,500 train)."""
    filename, max_value, test_per_class = _BUNDLED[name]
    path = data_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"bundled file {path} is missing; set DIFFVIZ_DATA to the folder "
                                f"holding it, or rebuild it with `python data/build_data.py`")
    with np.load(path) as arrays:
        images, labels = _select_split(arrays["images"], arrays["labels"], split, test_per_class)
    x = _to_image_tensor(images, max_value)  # (N, 1, H, W)
    return Dataset(x=x, y=torch.from_numpy(labels.astype(np.int64)), name=name, split=split,
                   num_classes=10, image_shape=tuple(x.shape[1:]),
                   class_names=tuple(str(d) for d in range(10)))


_TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def _load_torchvision(name, split, root, download):
    """MNIST / Fashion-MNIST / CIFAR-10 through torchvision.datasets; "all" = train + test."""
    try:
        import torchvision
    except ImportError as err:
        raise ImportError(f"load_dataset({name!r}) needs torchvision: pip install 'diffviz[datasets]' "
                          f"(a torchvision built for your torch). The bundled 'mnist-5k' and "
                          f"'digits' work offline without it.") from err
    root = Path(root if root is not None else "~/.cache/diffviz").expanduser()
    dataset_class = getattr(torchvision.datasets, _TORCHVISION_CLASSES[name])
    parts = {"train": [True], "test": [False], "all": [True, False]}[split]
    images, labels, class_names = [], [], None
    for train in parts:
        try:
            source = dataset_class(root=str(root), train=train, download=download)
        except (RuntimeError, OSError) as err:  # missing files, or a failed download
            hint = "" if download else " Pass download=True to fetch it (needs internet)."
            raise RuntimeError(f"could not load {name!r} from {root}: {err}.{hint} The bundled "
                               f"'mnist-5k' works offline.") from err
        images.append(np.asarray(source.data, dtype=np.uint8))  # (N, H, W) or (N, H, W, 3)
        labels.append(np.asarray(source.targets, dtype=np.int64))
        class_names = tuple(getattr(source, "classes", None) or ()) or None
    x = _to_image_tensor(np.concatenate(images), 255)  # (N, C, H, W)
    return Dataset(x=x, y=torch.from_numpy(np.concatenate(labels)), name=name, split=split,
                   num_classes=10, image_shape=tuple(x.shape[1:]), class_names=class_names)


def _subsample(ds, n, seed):
    """Keep n rows chosen uniformly without replacement by default_rng(seed), in file order."""
    if n > len(ds):
        raise ValueError(f"n={n} is larger than {ds.name!r} split {ds.split!r} ({len(ds)} images)")
    keep = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False)))
    return replace(ds, x=ds.x[keep], y=None if ds.y is None else ds.y[keep])


def load_dataset(name: str, *, split: str = "train", n: int | None = None, seed: int = 0,
                 root: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """Load a dataset by name as in-memory tensors (see the module docstring for conventions).

    Args:
        name: one of list_datasets().
        split: "train" | "test" | "all". Toy sets: "train"/"test" are independent draws.
            digits, mnist-5k: the last 18 / 50 images of each class (in file order) are "test".
            mnist, fashion-mnist, cifar10: the official splits; "all" is both.
        n: toy sets -- number of points (default 10,000); image sets -- keep a random subset
            of n images (default: all of the split).
        seed: seeds numpy.random.default_rng for the toy points and the subset.
        root, download: torchvision sets only; root defaults to ~/.cache/diffviz.
    Returns: Dataset with x (N, 2) or (N, C, H, W) float32, y (N,) int64 or None.
    """
    if not isinstance(name, str) or name not in list_datasets():
        raise ValueError(f"unknown dataset name={name!r}; known names: {', '.join(list_datasets())}")
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    n = None if n is None else positive_int("n", n)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or os.PathLike) or None, got {type(root).__name__}")
    check_bool("download", download)
    if name not in TORCHVISION_DATASETS and (root is not None or download):
        raise ValueError(f"root and download apply to the torchvision sets {TORCHVISION_DATASETS}, not {name!r}")
    if name in TOY_DATASETS:
        return _load_toy(name, split, n, seed)
    if name in BUNDLED_DATASETS:
        ds = _load_bundled(name, split)
    else:
        ds = _load_torchvision(name, split, root, download)
    return ds if n is None else _subsample(ds, n, seed)


def load_image(name: str | os.PathLike = "cat", size: int | tuple | None = None) -> torch.Tensor:
    """One RGB image as a float32 tensor (3, H, W) in [-1, 1].

    Args:
        name: "cat" (Chelsea the cat from scikit-image, bundled at 256x256), or a path to any
            image file pillow can read (grey or RGBA images are converted to RGB).
        size: None keeps the stored size; an int s centre-crops to a square and resizes to
            (s, s); a tuple (H, W) resizes to exactly that.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"image name must be {IMAGES} or a path (str or os.PathLike), got {type(name).__name__}")
    if str(name) in IMAGES:
        path = data_dir() / f"{name}.png"
    elif Path(name).expanduser().is_file():
        path = Path(name).expanduser()
    else:
        raise ValueError(f"image name={str(name)!r} is neither a bundled image {IMAGES} "
                         f"nor an existing image file")
    with Image.open(path) as img:
        img = img.convert("RGB")
    if size is not None:
        img = _resize(img, size)
    pixels = np.asarray(img, dtype=np.uint8)[None]  # (1, H, W, 3)
    return _to_image_tensor(pixels, 255)[0]  # (3, H, W)


def _resize(img, size):
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img, size = img.crop((left, top, left + side, top + side)), (size, size)
    if not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"size={size!r} must be None, a positive int, or a tuple (H, W) of positive ints")
    height, width = size
    return img.resize((width, height), Image.Resampling.LANCZOS)
