"""Image batches in [-1, 1] → uint8 grids and PNG files.

Shapes: x (N, C, H, W) with C = 1 (grayscale) or 3 (RGB), values in [-1, 1] (values outside are
clipped). A grid is a numpy uint8 array (H_grid, W_grid, C).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # file suffix → PIL format


def to_uint8(x) -> np.ndarray:
    """[-1, 1] → {0, …, 255}: round((clip(x, -1, 1) + 1) · 127.5). Returns uint8, same shape."""
    x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def make_grid(x, nrow: int | None = None, padding: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile a batch into one image, row by row.

    Args: x (N, C, H, W) tensor or array in [-1, 1]; nrow images per row (default ⌈√N⌉);
          padding pixels between and around images, filled with ``pad_value`` (in [-1, 1]).
    Returns: uint8 array (rows·(H+p)+p, nrow·(W+p)+p, C).
    """
    if not hasattr(x, "shape") or len(x.shape) != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    N, C, H, W = x.shape
    if N == 0 or C not in (1, 3):
        raise ValueError(f"x must hold at least one image with 1 or 3 channels, got shape {tuple(x.shape)}")
    nrow = nrow or math.ceil(math.sqrt(N))
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    images = to_uint8(x).transpose(0, 2, 3, 1)  # (N, H, W, C)
    rows = math.ceil(N / nrow)
    p = padding
    grid = np.full((rows * (H + p) + p, nrow * (W + p) + p, C), to_uint8(np.float32(pad_value)), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, nrow)
        grid[p + r * (H + p): p + r * (H + p) + H, p + c * (W + p): p + c * (W + p) + W] = image
    return grid


def save_image_grid(x, path, nrow: int | None = None, scale: int = 1, padding: int = 1) -> Path:
    """Save ``make_grid(x, nrow, padding)`` as a PNG or JPEG (from the suffix), enlarged ``scale`` times (nearest neighbour,
    so 8×8 digits stay visible). Written to a temp file, then moved into place. Returns the path."""
    from PIL import Image

    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    grid = make_grid(x, nrow=nrow, padding=padding)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    path = Path(path)
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise ValueError(f"path {str(path)!r}: unknown image type; use one of {', '.join(IMAGE_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format=IMAGE_FORMATS[path.suffix.lower()])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # nothing left behind when the write or the rename failed
    return path
