"""A drawn diagram of a ``diffviz.unet.UNet``, built from ``shape_tour`` and the model's modules, so
it cannot drift from the code: one box per block (labelled with its output shape C×H×W), placed in a
U — the down path descends one row per resolution level, the middle sits at the bottom, the up path
climbs back — with the skip connections as arcs from each down output to the up block that
concatenates it (``UNet.forward``: ``torch.cat([h, skips.pop()], dim=1)``).

Blocks that receive the time (+ class) embedding (every ``LevelBlock``) carry a "+emb" mark;
blocks with attention are shaded. Shape letters: B batch, C channels, H, W height and width.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .unet import UNet, shape_tour
from .unet_blocks import Upsample

COLOURS = {"conv": "#d9d9d9", "res": "#c6dbef", "attn": "#fdd0a2", "down": "#c7e9c0", "up": "#dadaeb"}


def diagram_boxes(model: UNet) -> list[dict]:
    """One dict per block of ``shape_tour`` (in order): name, kind, shape (C, H, W), level (0 = full
    size), column, and ``skip_from`` (the column of the down output an up block concatenates, or None)."""
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a UNet, got {type(model).__name__}")
    cfg = model.config
    x = torch.zeros(1, cfg.in_channels, cfg.image_size, cfg.image_size)  # (1, C, H, W)
    y = None if cfg.num_classes is None else torch.zeros(1, dtype=torch.long)
    tour = shape_tour(model, x, torch.zeros(1, dtype=torch.long), y)
    sizes = cfg.level_sizes()
    boxes = []
    for column, (label, shape) in enumerate(tour):
        name, _, kind = label.partition(" ")
        boxes.append(dict(name=name, kind=kind.strip("()"), shape=shape[1:], level=sizes.index(shape[-1]),
                          column=column, skip_from=None))
    stack = [b["column"] for b in boxes if b["name"] == "conv_in" or b["name"].startswith("down.")]
    for box, block in zip([b for b in boxes if b["name"].startswith("up.")], model.up):
        if not isinstance(block, Upsample):
            box["skip_from"] = stack.pop()  # the same order UNet.forward pops its skips
    return boxes


def draw_unet(model: UNet, ax=None, title: str | None = None):
    """Draw ``model`` as boxes and arrows (module docstring). Returns the matplotlib Figure."""
    boxes = diagram_boxes(model)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * len(boxes) + 1, 1.6 * (max(b["level"] for b in boxes) + 2.5)))
    for box in boxes:
        _draw_box(ax, box)
    for before, after in zip(boxes, boxes[1:]):
        ax.add_patch(FancyArrowPatch((before["column"] + 0.42, -before["level"]), (after["column"] - 0.42, -after["level"]),
                                     arrowstyle="-|>", mutation_scale=10, color="0.3", lw=1))
    for box in boxes:
        if box["skip_from"] is not None:
            start = boxes[box["skip_from"]]
            ax.add_patch(FancyArrowPatch((start["column"], -start["level"] + 0.3), (box["column"], -box["level"] + 0.3),
                                         connectionstyle="arc3,rad=-0.25", arrowstyle="-|>", mutation_scale=10,
                                         color="tab:blue", lw=0.9, alpha=0.7))
    _draw_legend(ax, model, boxes)
    ax.set_xlim(-0.7, len(boxes) - 0.3)
    top = max([0.0] + [0.13 * (b["column"] - b["skip_from"]) for b in boxes if b["skip_from"] is not None])
    ax.set_ylim(-max(b["level"] for b in boxes) - 1.6, top + 0.6)  # room for the longest skip arc
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure


def _draw_box(ax, box):
    kind = box["kind"]
    colour = (COLOURS["attn"] if "attention" in kind else COLOURS["res"] if kind.startswith("LevelBlock")
              else COLOURS["down"] if kind == "Downsample" else COLOURS["up"] if kind == "Upsample" else COLOURS["conv"])
    c, h, w = box["shape"]
    ax.add_patch(FancyBboxPatch((box["column"] - 0.42, -box["level"] - 0.3), 0.84, 0.6, boxstyle="round,pad=0.02",
                                facecolor=colour, edgecolor="0.25", lw=0.8, label="block"))
    short = {"Downsample": "down↓", "Upsample": "up↑", "Conv2d": "conv", "Sequential": "norm·conv"}.get(kind, "res")
    if "attention" in kind:
        short += "+lin.attn" if "linear" in kind else "+attn"
    if "ConvNeXt" in kind:
        short = short.replace("res", "ConvNeXt")
    ax.text(box["column"], -box["level"] + 0.1, f"{box['name']}\n{short}", ha="center", va="center", fontsize=6.5)
    ax.text(box["column"], -box["level"] - 0.17, f"{c}×{h}×{w}", ha="center", va="center", fontsize=7, weight="bold")
    if kind.startswith("LevelBlock"):
        ax.text(box["column"], -box["level"] - 0.42, "+emb", ha="center", va="center", fontsize=6, color="tab:red")


def _draw_legend(ax, model, boxes):
    cfg = model.config
    bottom = -max(b["level"] for b in boxes) - 1.1
    cond = f" + class embedding ({cfg.num_classes} classes + null)" if cfg.num_classes else ""
    ax.text(0, bottom, f"t → sinusoid ({cfg.base_channels}) → MLP → emb (E = {cfg.time_embed_dim}){cond}; "
            "added inside every block marked +emb (red)", fontsize=8, color="tab:red", va="center")
    ax.text(0, bottom - 0.35, "blue arcs: skip connections (concatenated on the channel axis); orange: attention; "
            "rows: feature-map sizes " + " → ".join(str(s) for s in cfg.level_sizes()), fontsize=8, va="center")
