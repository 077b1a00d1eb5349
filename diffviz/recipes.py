"""Named training recipes: ``TrainConfig`` settings that were measured to work, usable as
``diffviz train --recipe NAME`` (options given on the command line override them) or
``TrainConfig(**recipes.get("mnist-fast"))``.

``mnist-fast`` (readable 28×28 digits from scratch in minutes on a laptop CPU): what moves a
short run most, measured by ``benchmarks/time_to_quality.py`` (README there):
- small batches (32) and many steps: more updates for the same images;
- a high peak learning rate (2e-3) with a short warm-up and a cosine decay to 0 at the last step:
  the weights settle as the run ends, so the final model is the good one;
- min-SNR-γ loss weighting with γ = 5 (Hang et al. 2023): the nearly clean timesteps, whose ε is
  easy and whose gradients otherwise dominate, are weighted down;
- the EMA's decay warms up, min(0.999, (1 + n)/(10 + n)) after n steps (``Trainer.ema_decay_at``),
  so a short run's EMA does not lag behind.
What the notebooks teach stays: linear schedule, T = 1000, ε-prediction, the ``tiny`` U-Net.
``mnist`` is the same recipe run longer (about an hour of one CPU core); ``mnist-gpu`` is it with batches of
256 for 12,000 steps, the shipped ``load_pretrained("mnist")`` model (142 s on an H200). Without a GPU,
``benchmarks/latent_in_minutes.py`` reaches readable digits in minutes through a latent model instead.
"""
from __future__ import annotations

MNIST_FAST = dict(dataset="mnist-5k", model="tiny", conditional=True, schedule="linear", num_timesteps=1000,
                  batch_size=32, lr=2e-3, warmup_steps=50, lr_schedule="cosine", min_snr_gamma=5.0, steps=1300,
                  seed=0)
MNIST = dict(MNIST_FAST, steps=6000)
# The same on a GPU: batches of 256 keep the card busy; a longer warm-up for the larger steps.
MNIST_GPU = dict(MNIST_FAST, batch_size=256, warmup_steps=200, steps=12000)

RECIPES = {"mnist-fast": MNIST_FAST, "mnist": MNIST, "mnist-gpu": MNIST_GPU}


def get(name: str) -> dict:
    """A copy of the TrainConfig settings of recipe ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return dict(RECIPES[name])
