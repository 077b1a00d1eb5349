"""Image batches in [-1, 1] → uint8 grids and PNG files.

Shapes: x (N, C, H, W) with C = 1 (grayscale) or 3 (RGB), values in [-1, 1] (values outside are
clipped). A grid is a numpy uint8 array (H_grid, W_grid, C).
"""
from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch

from .validate import finite_number, positive_int

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # file suffix → the format written


def to_uint8(x) -> np.ndarray:
    """[-1, 1] → {0, …, 255}: round((clip(x, -1, 1) + 1) · 127.5). Returns uint8, same shape."""
    x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def _check_images(x) -> np.ndarray:
    """x (N, C, H, W), C in {1, 3}, floating point and finite → a float32 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a torch.Tensor or numpy array of images (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] not in (1, 3):
        raise ValueError(f"x must have shape (N, C, H, W): at least one image with 1 or 3 channels, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must hold floats in [-1, 1], got dtype {x.dtype}; for 0..255 pixels pass x / 127.5 - 1")
    if not np.isfinite(x).all():
        raise ValueError("x holds NaN or inf values; an image grid needs finite values in [-1, 1]")
    return x.astype(np.float32, copy=False)


def make_grid(x, nrow: int | None = None, padding: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile a batch into one image, row by row.

    Args: x (N, C, H, W) tensor or array in [-1, 1]; nrow images per row (default ⌈√N⌉);
          padding pixels between and around images, filled with ``pad_value`` (in [-1, 1]).
    Returns: uint8 array (rows·(H+p)+p, nrow·(W+p)+p, C).
    """
    x = _check_images(x)
    N, C, H, W = x.shape
    nrow = math.ceil(math.sqrt(N)) if nrow is None else positive_int("nrow", nrow)
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    pad_value = finite_number("pad_value", pad_value, low=-1, high=1)
    images = to_uint8(x).transpose(0, 2, 3, 1)  # (N, H, W, C)
    rows = math.ceil(N / nrow)
    p = padding
    grid = np.full((rows * (H + p) + p, nrow * (W + p) + p, C), to_uint8(np.float32(pad_value)), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, nrow)
        grid[p + r * (H + p): p + r * (H + p) + H, p + c * (W + p): p + c * (W + p) + W] = image
    return grid


def save_image_grid(x, path, nrow: int | None = None, scale: int = 1, padding: int = 1) -> Path:
    """Save ``make_grid(x, nrow, padding)`` as a PNG or JPEG (from the suffix of ``path``), enlarged ``scale`` times (nearest neighbour,
    so 8×8 digits stay visible). Written to a temp file, then moved into place. Returns the path."""
    from PIL import Image

    scale = positive_int("scale", scale)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    image_format = FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"path must end in {', '.join(FORMATS)} (the file format), got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder; give a file name such as {str(path / 'samples.png')!r}")
    grid = make_grid(x, nrow=nrow, padding=padding)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format=image_format)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save leaves nothing behind
    return path
