"""The sampler explorer's captions: every knob of a picture, in words (no ipywidgets here).

``kn`` is a dict of ``sample`` arguments as ``explorers.sampler.knobs`` builds them.
"""
from __future__ import annotations

import torch


def describe(kn: dict, seed: int) -> str:
    """Every knob of a picture: "DDIM · 20 steps · spacing trailing · ᾱ as trained · η = 0 · w = 3 · class
    mixed · x̂₀ not bounded · seed 0"."""
    y = kn["y"]
    cls = "∅ (unconditional)" if y is None else ("mixed" if isinstance(y, torch.Tensor) else str(y))
    w = "none" if kn["guidance_scale"] is None else f"{kn['guidance_scale']:g}"
    return (f"{kn['sampler'].upper()} · {kn['num_steps']} steps · spacing {kn['timestep_spacing']} · "
            f"{describe_schedule(kn)} · η = {kn['eta']:g} · w = {w} · class {cls} · {describe_bound(kn)} · "
            f"seed {seed}")


def describe_bound(kn: dict) -> str:
    """The x̂₀ bound of these ``knobs``: "x̂₀ not bounded", "x̂₀ clipped to [−1, 1]" or
    "x̂₀ dynamic threshold p = 0.995, s ≤ 3"."""
    if kn.get("thresholding"):
        return f"x̂₀ dynamic threshold p = {kn['dynamic_thresholding_ratio']:g}, s ≤ {kn['sample_max_value']:g}"
    return "x̂₀ clipped to [−1, 1]" if kn.get("clip_sample") else "x̂₀ not bounded"


def describe_schedule(kn: dict) -> str:
    """The schedule at inference of these ``knobs``: "ᾱ as trained" or "ᾱ along cosine" (mapped)."""
    inference = kn.get("inference_schedule")
    return "ᾱ as trained" if inference is None else f"ᾱ along {inference.name}"
