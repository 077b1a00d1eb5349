"""Small pieces every explorer shares; no ipywidgets here (static twins and filmstrips use them too).

Timesteps are 0-based: code t = k is the paper's t = k + 1; t = −1 stands for x_0 in the toy explorer.
"""
from __future__ import annotations

import numbers
from collections import OrderedDict

T_HELP = "t is 0-based: code t = k is the paper's t = k + 1"
T_FRAME_PREFIX = "t (code; paper t + 1) = "  # the label of a static twin's t slider
SPACINGS = ("trailing", "leading", "linspace")  # timestep_spacing values ``sampling_timesteps`` knows


def t_label(t: int) -> str:
    """"t = 9 (paper 10)", or "x_0 (data or final sample)" for t = −1."""
    return "x_0 (data or final sample)" if t < 0 else f"t = {t} (paper {t + 1})"


def cache_put(cache: OrderedDict, key, value, max_items: int = 256):
    """Store ``value`` under ``key``, dropping the oldest entries beyond ``max_items``; returns ``value``."""
    cache[key] = value
    while len(cache) > max_items:
        cache.popitem(last=False)
    return value


def check_t(t, T: int, name: str = "t") -> int:
    """A code timestep: an int in [0, T−1] (paper t + 1)."""
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < T:
        raise ValueError(f"{name} must be an int in [0, {T - 1}] (code t; paper t + 1), got {t!r}")
    return int(t)
