"""Argument checks for the public entry points — one place, one message format.

The rule of the library: a public function checks its arguments once, at the boundary, and the
helpers it calls trust them. Every check here raises ``TypeError`` (wrong kind of value) or
``ValueError`` (right kind, wrong value) with a message that names the argument, the value given
and what is allowed, e.g. ``num_steps must be an int in [1, 50], got 5000``.

The rule for a ``num_steps`` larger than the schedule's T (``check_num_steps``): it is an error,
everywhere — the API, the CLI and the widgets. Nothing clamps it silently: T distinct timesteps
are all a sampler can visit, and a caller who asked for more should hear so.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def positive_int(name: str, value) -> int:
    """``value`` as an int ≥ 1 (Python or numpy integers; bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def finite_number(name: str, value, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (``low_open``: (low, high]); either bound may be None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not math.isfinite(value) or too_low or too_high:
        left = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        right = "inf)" if high is None else f"{high:g}]"
        raise ValueError(f"{name} must be a finite number in {left}, {right}, got {value!r}")
    return value


def check_num_steps(num_steps, num_timesteps: int, name: str = "num_steps") -> int:
    """The number of sampling steps: None → T; an int in [1, T] as it is; anything else an error
    (a value above T included — see the module docstring)."""
    if num_steps is None:
        return num_timesteps
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral):
        raise TypeError(f"{name} must be an int in [1, {num_timesteps}] or None, got {num_steps!r}")
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"{name} must be an int in [1, {num_timesteps}] (the schedule has T = {num_timesteps} "
                         f"timesteps), got {num_steps!r}")
    return int(num_steps)


def check_generator(generator, name: str = "generator"):
    """None or a ``torch.Generator`` (a seed is not accepted: pass ``torch.Generator().manual_seed(s)``)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {generator!r}; "
                        f"for a seed use torch.Generator().manual_seed(seed)")
    return generator


def resolve_device(device="auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; a name ('cpu', 'cuda:1', 'mps') or a ``torch.device``
    is checked to exist on this machine."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} but CUDA is not available on this machine; use 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device={str(device)!r} but MPS is not available on this machine; use 'cpu' or 'auto'")
    return device


def check_bool(name: str, value) -> bool:
    """``value`` as a bool (True/False only: 0, 1 and "yes" are refused, so a misplaced argument shows)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def float_tensor(name: str, value, min_ndim: int = 1) -> torch.Tensor:
    """``value`` if it is a floating-point ``torch.Tensor`` with at least ``min_ndim`` dims.

    Integer images are refused rather than converted: a uint8 picture in 0..255 is not data in
    [-1, 1], and guessing the scale would hide the mistake."""
    if not isinstance(value, torch.Tensor):
        hint = f"; convert with torch.as_tensor({name}, dtype=torch.float32)" if hasattr(value, "__len__") else ""
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}{hint}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (data in [-1, 1]), got dtype {value.dtype}; "
                        f"convert it first, e.g. {name}.float() / 127.5 - 1 for 0..255 pixels")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s) (B, ...), got shape {tuple(value.shape)}")
    return value


def _integer_like(value):
    """A numpy array or a list becomes a tensor; anything else is returned as it is."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return torch.as_tensor(np.asarray(value))
    return value


def check_timesteps(t, num_timesteps: int, batch: int, *, name: str = "t", low: int = 0, high: int | None = None,
                    check_values: bool = True, allow_float: bool = False):
    """A timestep argument: an int (Python or numpy) or a 0-d / (B,) integer tensor, 0-based in
    [low, high] (default [0, T − 1]; code t = k is the paper's t = k + 1). ``allow_float`` admits float tensors (a
    network's time embedding is continuous). ``check_values=False`` skips reading a tensor's values
    (no host-device sync). Returns an int, or the tensor unchanged (a list or array as a tensor)."""
    high = num_timesteps - 1 if high is None else high
    if isinstance(t, numbers.Integral) and not isinstance(t, bool):
        if not low <= t <= high:
            raise ValueError(f"{name}={int(t)} is out of range: timesteps are 0-based in [{low}, {high}] "
                             f"(T = {num_timesteps})")
        return int(t)
    t = _integer_like(t)
    kind = "integers (an int or an integer tensor" + (", or a float tensor)" if allow_float else ")")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must hold {kind} in [{low}, {high}], got {t!r} ({type(t).__name__})")
    if t.dtype == torch.bool or t.is_complex() or (t.is_floating_point() and not allow_float):
        raise TypeError(f"{name} must hold {kind} in [{low}, {high}], got a tensor of dtype {t.dtype}")
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"{name} must have shape ({batch},) to match the batch (or be an int), got shape {tuple(t.shape)}")
    if check_values and t.numel():
        lo, hi = t.min().item(), t.max().item()
        if not (low <= lo and hi <= high):  # NaN fails both
            raise ValueError(f"{name} out of range: got values in [{lo}, {hi}], allowed [{low}, {high}] "
                             f"(0-based timesteps, T = {num_timesteps})")
    return t


def check_labels(y, batch: int, num_classes: int | None = None, *, name: str = "y", check_values: bool = True,
                 note: str = ""):
    """Class labels: None; an int (Python or numpy) for the whole batch; or a (B,) integer tensor,
    array or list. Floats and bools are refused (3.7 is no class). With ``num_classes`` the values
    must lie in [0, num_classes − 1] (``note`` is added to the message). Returns None, an int, or an
    int64 tensor on y's device."""
    if y is None:
        return None
    high = None if num_classes is None else num_classes - 1
    allowed = "" if high is None else f" in [0, {high}]{note}"
    if isinstance(y, numbers.Integral) and not isinstance(y, bool):
        if y < 0 or (high is not None and y > high):
            raise ValueError(f"{name}={int(y)} is out of range: class labels are ints{allowed or ' >= 0'}")
        return int(y)
    y = _integer_like(y)
    if not isinstance(y, torch.Tensor) or y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        got = f"dtype {y.dtype}" if isinstance(y, torch.Tensor) else f"{y!r} ({type(y).__name__})"
        raise TypeError(f"{name} must be an int or a ({batch},) integer tensor of class labels{allowed}, got {got}")
    if y.ndim > 1 or (y.ndim == 1 and y.shape[0] != batch):
        raise ValueError(f"{name} must have shape ({batch},) to match the batch (or be an int), got shape {tuple(y.shape)}")
    if check_values and y.numel():
        lo, hi = y.min().item(), y.max().item()
        if lo < 0 or (high is not None and hi > high):
            raise ValueError(f"{name} must be{allowed or ' >= 0'}, got values in [{lo}, {hi}]")
    return y.long()


def one_of(name: str, value, allowed: tuple):
    """``value`` if it is one of the strings in ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def finite_array(name: str, value):
    """``value`` (a tensor or array-like of numbers) as a numpy array with no NaN or ±inf in it."""
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} must be finite, got {int(np.isnan(array).sum())} NaN and "
                         f"{int(np.isinf(array).sum())} ±inf values in an array of shape {tuple(array.shape)}")
    return array


def check_shape(shape) -> tuple:
    """A sample shape such as (B, C, H, W) or (B, D): a tuple (or list, torch.Size) of positive ints."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"shape must be a tuple of positive ints like (B, C, H, W), got {shape!r}")
    if len(shape) == 0 or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0
                                  for n in shape):
        raise ValueError(f"shape must be a tuple of positive ints like (B, C, H, W), got {tuple(shape)!r}")
    return tuple(int(n) for n in shape)


def label_tensor(y, batch: int, device=None):
    """Labels that passed ``check_labels`` as a (B,) int64 tensor on ``device`` (None stays None):
    an int is repeated, a 0-d tensor broadcast."""
    if y is None:
        return None
    if isinstance(y, int):
        return torch.full((batch,), y, dtype=torch.long, device=device)
    return y.to(device=device, dtype=torch.long).reshape(-1).expand(batch)  # (B,)


def check_guidance_scale(guidance_scale, y):
    """Classifier-free guidance's w: None, or a finite number, which needs class labels y."""
    if guidance_scale is None:
        return None
    guidance_scale = finite_number("guidance_scale", guidance_scale)
    if y is None:
        raise ValueError("guidance_scale needs class labels y")
    return guidance_scale
