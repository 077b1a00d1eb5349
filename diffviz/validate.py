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
        left = "(" if low_open else "["
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must be a finite number in {left}{lo}, {hi}{']' if high is not None else ')'}, "
                         f"got {value!r}")
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


def one_of(name: str, value, options):
    """``value`` when it is one of ``options`` (e.g. a spacing or sampler name), else a ValueError listing them."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
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
