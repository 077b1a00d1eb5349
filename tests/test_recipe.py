"""The training recipe's knobs: the cosine learning-rate schedule and min-SNR-γ loss weighting
(Hang et al. 2023), each against an independent computation."""
import math

import numpy as np
import pytest
import torch

from diffviz.schedules import get_schedule
from diffviz.train_config import learning_rate, min_snr_weights
from diffviz.training import TrainConfig, Trainer


def config(**overrides):
    kwargs = dict(dataset="digits", model="tiny", batch_size=8, steps=6, conditional=True,
                  model_overrides=dict(base_channels=8, groups=4))
    return TrainConfig(**{**kwargs, **overrides})


def test_cosine_schedule_warms_up_then_follows_half_a_cosine_to_zero():
    cfg = config(steps=110, warmup_steps=10, lr_schedule="cosine")
    lrs = [learning_rate(cfg, 2e-3, s) for s in range(110)]
    assert lrs[:10] == pytest.approx([2e-3 * (s + 1) / 10 for s in range(10)])
    # after warm-up, step s is the fraction (s - 10) / 100 of the way: 2e-3 · ½(1 + cos(π p))
    for s in (10, 35, 60, 85, 109):
        p = (s - 10) / 100
        assert lrs[s] == pytest.approx(1e-3 * (1 + math.cos(math.pi * p)))
    assert lrs[60] == pytest.approx(1e-3) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert learning_rate(cfg, 2e-3, 500) == pytest.approx(0.0)  # past the end: 0, never negative
    constant = config(steps=110, warmup_steps=10)
    assert [learning_rate(constant, 1.0, s) for s in (9, 10, 109)] == [1.0, 1.0, 1.0]


def test_min_snr_weights_match_a_float64_reference():
    schedule = get_schedule("linear", 1000)
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    snr = abar / (1 - abar)
    expected = np.minimum(snr, 5.0) / snr
    got = min_snr_weights(schedule.alphas_cumprod, 5.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[-1] == pytest.approx(1.0) and got[0] < 1e-3  # noisy steps keep weight 1; nearly clean ones fall
    crossing = int(np.argmax(snr <= 5.0))  # first t with SNR ≤ γ: from there on, weight 1
    assert np.all(got[crossing:] == 1.0) and np.all(got[:crossing] < 1.0)


def test_weighted_loss_is_the_weighted_mean_of_per_example_errors():
    trainer = Trainer(config(min_snr_gamma=5.0))
    x0, y = trainer.next_batch()
    state = trainer.generator.get_state()
    loss = trainer.compute_loss(x0, y)
    trainer.generator.set_state(state)  # the same t, ε and label dropout again, by hand
    n = x0.shape[0]
    t = torch.randint(0, 1000, (n,), generator=trainer.generator)
    noise = torch.randn(x0.shape, generator=trainer.generator)
    drop = torch.rand(n, generator=trainer.generator) < trainer.label_dropout
    y = torch.where(drop, torch.full_like(y, 10), y)
    abar = trainer.schedule.alphas_cumprod[t].view(-1, 1, 1, 1).float()
    with torch.no_grad():
        eps = trainer.model(abar.sqrt() * x0 + (1 - abar).sqrt() * noise, t, y)
    snr = (abar / (1 - abar)).flatten().double()
    per_example = ((eps - noise) ** 2).flatten(1).mean(1).double()
    expected = (torch.clamp(snr, max=5.0) / snr * per_example).mean()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-7)


def test_trainer_uses_the_schedule_and_rejects_unknown_settings():
    trainer = Trainer(config(lr=1e-3, warmup_steps=2, steps=6, lr_schedule="cosine"))
    trainer.fit(progress=False)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(learning_rate(trainer.config, 1e-3, 5))
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'"):
        config(lr_schedule="linear")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="min_snr_gamma"):
            config(min_snr_gamma=bad)


def test_cli_recipe_sets_the_config_and_given_options_win(tmp_path):
    from diffviz.cli import build_parser
    from diffviz.cli_options import train_config
    from diffviz.recipes import MNIST_FAST, get

    args = build_parser().parse_args(["train", "--recipe", "mnist-fast", "--steps", "7", "--checkpoint-dir",
                                      str(tmp_path / "run")])
    cfg = train_config(args)
    for name, value in MNIST_FAST.items():
        assert getattr(cfg, name) == (7 if name == "steps" else value), name
    with pytest.raises(ValueError, match="unknown recipe 'cifar'"):
        get("cifar")
    args = build_parser().parse_args(["train", "--recipe", "mnist", "--resume", "--checkpoint-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="drop --recipe"):
        train_config(args)


@pytest.mark.slow
def test_time_to_quality_benchmark_runs(tmp_path):
    """The benchmark end to end on seconds-long marks (the diffviz recipe only: diffusers is not a
    dependency); its table names the clock and the bar."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "time_to_quality.py"
    out = tmp_path / "ttq.json"
    done = subprocess.run([sys.executable, str(script), "--smoke", "--recipes", "diffviz", "--json", str(out),
                           "--out", str(tmp_path / "models")], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| recipe | cpu minutes | wall minutes |" in done.stdout and "time to bar: diffviz" in done.stdout
    import json
    result = json.loads(out.read_text())
    assert [row["minutes"] for row in result["rows"]] == pytest.approx([0.05, 0.1])
    assert all(row["recipe"] == "diffviz" and 0 <= row["accuracy"] <= 1 for row in result["rows"])


def test_the_shipped_model_was_trained_with_the_mnist_gpu_recipe():
    """The card's stored training config is the ``mnist-gpu`` recipe, setting by setting, and that
    recipe is the CPU recipe ``mnist`` with bigger batches run longer (what the docs say)."""
    import json

    from diffviz.cli import build_parser
    from diffviz.cli_options import train_config
    from diffviz.data import data_dir
    from diffviz.recipes import MNIST, get

    stored = json.loads((data_dir() / "pretrained" / "mnist_unet.json").read_text())["metadata"]
    recipe = get("mnist-gpu")
    for name, value in recipe.items():
        assert stored["train_config"][name] == value, name
    assert stored["step"] == recipe["steps"] and stored["images_seen"] == recipe["steps"] * recipe["batch_size"]
    assert {k for k in recipe if recipe[k] != MNIST[k]} == {"batch_size", "warmup_steps", "steps"}
    args = build_parser().parse_args(["train", "--recipe", "mnist-gpu", "--checkpoint-dir", "runs/x"])
    assert train_config(args).batch_size == 256


def test_time_to_quality_on_a_gpu_clocks_wall_time_and_names_the_recipe():
    """``--device`` other than cpu switches the marks to wall time (CPU time says nothing about GPU
    work); ``--diffviz-recipe`` takes the named recipes and refuses others before any work."""
    import importlib.util
    from pathlib import Path

    from diffviz.recipes import RECIPES

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "time_to_quality.py"
    spec = importlib.util.spec_from_file_location("time_to_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.parse_args([]).clock == "cpu" and module.parse_args([]).diffviz_recipe == "mnist-fast"
    assert module.parse_args(["--device", "cuda"]).clock == "wall"
    assert module.parse_args(["--device", "cuda", "--clock", "cpu"]).clock == "wall"
    for name in RECIPES:
        assert module.parse_args(["--diffviz-recipe", name]).diffviz_recipe == name
    with pytest.raises(SystemExit):
        module.parse_args(["--diffviz-recipe", "cifar"])
    assert module.device_name("cpu") == "cpu"
