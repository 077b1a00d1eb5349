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

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TOY_DATASETS = ("swiss_roll", "moons", "gaussian_mixture", "checkerboard", "circles")
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


@dataclass(frozen=True)
class GaussianMixtureParams:
    """Exact parameters of the "gaussian_mixture" toy set: p(x) = Σ_k w_k N(x; μ_k, s_k² I)."""

    means: torch.Tensor    # (K, 2) float64, μ_k = r (cos 2πk/K, sin 2πk/K)
    stds: torch.Tensor     # (K,) float64, s_k, the per-coordinate standard deviation
    weights: torch.Tensor  # (K,) float64, w_k, summing to 1


def list_datasets() -> list[str]:
    """All names load_dataset accepts."""
    return [*TOY_DATASETS, *BUNDLED_DATASETS, *TORCHVISION_DATASETS]


def data_dir() -> Path:
    """The folder holding the bundled files: $DIFFVIZ_DATA if set, else <repo>/data."""
    override = os.environ.get("DIFFVIZ_DATA")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


def gaussian_mixture_params(num_components: int = 8, radius: float = math.sqrt(2.0),
                            std: float = 0.1) -> GaussianMixtureParams:
    """The classic "8 Gaussians on a circle". The defaults are what load_dataset uses:
    radius √2 and std 0.1 give a per-coordinate variance of r²/2 + s² = 1.01.

    Returns: GaussianMixtureParams, e.g. for GaussianMixtureDenoiser(p.means, p.stds, p.weights, ...).
    """
    if not (isinstance(num_components, int) and num_components >= 1) or radius < 0 or std <= 0:
        raise ValueError(f"need an int num_components >= 1, radius >= 0 and std > 0; got "
                         f"num_components={num_components!r}, radius={radius!r}, std={std!r}")
    angles = 2 * math.pi * torch.arange(num_components, dtype=torch.float64) / num_components
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)  # (K, 2)
    stds = torch.full((num_components,), std, dtype=torch.float64)
    weights = torch.full((num_components,), 1.0 / num_components, dtype=torch.float64)
    return GaussianMixtureParams(means=means, stds=stds, weights=weights)


# ---------------------------------------------------------------------- 2-D toy data
# Each generator returns raw points (n, 2) float64 and labels (n,) or None. The fixed
# (centre, scale) below were measured once on 2·10⁶ points; x = (raw − centre) / scale.
_TOY_CENTRE_SCALE = {
    "swiss_roll": ((2.0, 0.21), 6.81),
    "moons": ((0.5, 0.25), 0.712),
    "circles": ((0.0, 0.0), 0.561),
    "checkerboard": ((0.0, 0.0), 2 / math.sqrt(3)),  # exact: x₁ ~ U(−2, 2) has std 2/√3
    "gaussian_mixture": ((0.0, 0.0), 1.0),           # already defined at unit scale
}


def _swiss_roll(rng, n):
    """t ~ U(1.5π, 4.5π); (t cos t, t sin t) + N(0, 0.5²) -- sklearn's roll seen from above."""
    t = 1.5 * math.pi * (1 + 2 * rng.random(n))
    return np.stack([t * np.cos(t), t * np.sin(t)], 1) + 0.5 * rng.standard_normal((n, 2)), None


def _moons(rng, n):
    """Two interleaved half circles (as sklearn.datasets.make_moons) + N(0, 0.1²); label = moon."""
    t, y = math.pi * rng.random(n), rng.integers(0, 2, n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    return np.where(y[:, None] == 0, upper, lower) + 0.1 * rng.standard_normal((n, 2)), y


def _circles(rng, n):
    """Concentric circles of radius 1 and 0.5 + N(0, 0.05²); label 0 = outer, 1 = inner."""
    t, y = 2 * math.pi * rng.random(n), rng.integers(0, 2, n)
    radius = np.where(y == 0, 1.0, 0.5)[:, None]
    return radius * np.stack([np.cos(t), np.sin(t)], 1) + 0.05 * rng.standard_normal((n, 2)), y


def _checkerboard(rng, n):
    """Uniform on the 8 dark squares of a 4x4 board spanning [−2, 2]² (as in FFJORD)."""
    x1 = 4 * rng.random(n) - 2
    x2 = rng.random(n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return np.stack([x1, x2], 1), None


def _gaussian_mixture(rng, n):
    """k ~ Categorical(w); x = μ_k + s_k·z, z ~ N(0, I); label = k."""
    params = gaussian_mixture_params()
    k = rng.choice(len(params.weights), size=n, p=params.weights.numpy())
    z = rng.standard_normal((n, 2))
    return params.means.numpy()[k] + params.stds.numpy()[k, None] * z, k


_TOY_GENERATORS = {"swiss_roll": _swiss_roll, "moons": _moons, "circles": _circles,
                   "checkerboard": _checkerboard, "gaussian_mixture": _gaussian_mixture}
_TOY_NUM_CLASSES = {"moons": 2, "circles": 2, "gaussian_mixture": 8}


def _load_toy(name, split, n, seed):
    """Toy points; "train" and "test" draw from independent streams default_rng([seed, 0 or 1])."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not available for toy data {name!r}; use 'train' or 'test'")
    n = 10_000 if n is None else n
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    raw, labels = _TOY_GENERATORS[name](rng, n)  # (n, 2), (n,) or None
    centre, scale = _TOY_CENTRE_SCALE[name]
    x = torch.from_numpy((raw - np.array(centre)) / scale).float()  # (n, 2)
    y = None if labels is None else torch.from_numpy(np.asarray(labels)).long()
    return Dataset(x=x, y=y, name=name, split=split, num_classes=_TOY_NUM_CLASSES.get(name),
                   image_shape=None)


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
    if name not in list_datasets():
        raise ValueError(f"unknown dataset name={name!r}; known names: {', '.join(list_datasets())}")
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n={n!r} must be a positive integer or None")
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
