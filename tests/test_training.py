"""Training (Algorithm 1 of Ho et al. 2020) on tiny problems: the loss falls, runs are reproducible."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from diffviz.diffusion import q_sample
from diffviz.toy import ToyConfig, ToyMLP
from diffviz.training import TrainConfig, Trainer, TrainEvent, build_model, train
from diffviz.unet import UNet


def tiny_unet_config(**overrides):
    """A very small U-Net on 8x8 digits: a few steps take well under a second."""
    kwargs = dict(dataset="digits", model="tiny", batch_size=8, steps=6, log_every=3,
                  model_overrides=dict(base_channels=8, groups=4, dropout=0.1))
    return TrainConfig(**{**kwargs, **overrides})


def test_toy_loss_falls_on_swiss_roll():
    config = TrainConfig(dataset="swiss_roll", num_data=2000, steps=300, batch_size=128, warmup_steps=20)
    trainer = Trainer(config)
    assert isinstance(trainer.model, ToyMLP) and trainer.lr == 1e-3
    x0 = trainer.data_x[:1000]
    t = torch.randint(0, 1000, (1000,), generator=torch.Generator().manual_seed(0))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        untrained = F.mse_loss(trainer.model(q_sample(trainer.schedule, x0, t, noise), t), noise).item()
    trainer.fit(progress=False)
    first, last = sum(trainer.losses[:50]) / 50, sum(trainer.losses[-50:]) / 50
    assert len(trainer.losses) == 300 and trainer.step == 300 and trainer.images_seen == 300 * 128
    assert 0.7 < untrained < 1.5  # an untrained predictor scores about E‖ε‖²/d = 1
    assert last < 0.75 * first and last < 0.45


def test_same_seed_same_losses_and_global_rng_untouched():
    before = torch.get_rng_state()
    a = Trainer(tiny_unet_config()).fit(progress=False)
    b = Trainer(tiny_unet_config()).fit(progress=False)
    c = Trainer(tiny_unet_config(seed=1)).fit(progress=False)
    assert a.losses == b.losses and len(a.losses) == 6
    assert a.losses != c.losses
    assert torch.equal(torch.get_rng_state(), before)  # init and dropout ran on forked RNG state


def test_callback_receives_events_and_samples():
    events = []
    config = TrainConfig(dataset="moons", num_data=500, steps=8, batch_size=16, log_every=3, sample_every=4,
                         num_samples=5, sample_steps=3, conditional=True)
    trainer = train(config, callback=events.append, progress=False)
    assert [e.step for e in events] == [3, 4, 6, 8]
    assert all(isinstance(e, TrainEvent) for e in events)
    assert [e.samples is not None for e in events] == [False, True, False, True]
    assert events[1].samples.shape == (5, 2) and events[-1].images_seen == 8 * 16
    assert events[0].loss == pytest.approx(sum(trainer.losses[:3]) / 3)
    assert trainer.num_classes == 2 and trainer.label_dropout == 0.1 and trainer.model.class_embed.num_embeddings == 3


def test_callback_can_stop_training():
    def stop(event):
        trainer.stop_requested = True

    trainer = Trainer(tiny_unet_config(steps=100, log_every=2))
    trainer.fit(callback=stop, progress=False)
    assert trainer.step == 2 and len(trainer.losses) == 2


def test_lr_warmup_and_ema_warmup():
    trainer = Trainer(tiny_unet_config(lr=1e-3, warmup_steps=4, ema_decay=0.9))
    assert [trainer.lr_at(s) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    before = [p.clone() for p in trainer.ema_model.parameters()]
    trainer.train_step(*trainer.next_batch())
    decay = min(0.9, 2 / 11)  # min(ema_decay, (1 + n) / (10 + n)) after n = 1 step
    for p_ema, p0, p in zip(trainer.ema_model.parameters(), before, trainer.model.parameters()):
        torch.testing.assert_close(p_ema, decay * p0 + (1 - decay) * p)


def test_label_dropout_replaces_labels_with_null_class():
    seen = []

    class Spy(ToyMLP):
        def forward(self, x, t, y=None):
            seen.append(y.clone())
            return super().forward(x, t, y)

    data = SimpleNamespace(x=torch.randn(64, 2), y=torch.zeros(64, dtype=torch.long), num_classes=3)
    config = TrainConfig(dataset="custom", model="toy", conditional=True, label_dropout=0.5, steps=4, batch_size=64)
    Trainer(config, model=Spy(ToyConfig(num_classes=3)), dataset=data).fit(progress=False)
    labels = torch.cat(seen)
    assert set(labels.tolist()) == {0, 3} and 0.35 < (labels == 3).float().mean() < 0.65


def test_build_model_picks_and_sizes_models():
    assert isinstance(build_model(TrainConfig(), (2,), None), ToyMLP)
    unet = build_model(TrainConfig(model="small"), (3, 16, 16), 10)
    assert isinstance(unet, UNet) and unet.config.in_channels == 3 and unet.config.num_classes == 10
    with pytest.raises(ValueError, match="model 'toy' needs"):
        build_model(TrainConfig(model="toy"), (1, 8, 8), None)
    with pytest.raises(ValueError, match="needs square"):
        build_model(TrainConfig(model="tiny"), (2,), None)


def test_config_and_setup_errors():
    with pytest.raises(ValueError, match="unknown model 'huge'"):
        TrainConfig(model="huge")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="label_dropout"):
        TrainConfig(label_dropout=1.5)
    with pytest.raises(ValueError, match="conditional=True needs a labelled dataset"):
        Trainer(TrainConfig(dataset="swiss_roll", num_data=100, conditional=True))
    with pytest.raises(ValueError, match="bf16=True needs a CUDA device"):
        Trainer(TrainConfig(dataset="swiss_roll", num_data=100, device="cpu", bf16=True))


def test_toy_mlp_shapes_and_errors():
    model = ToyMLP(ToyConfig(num_classes=2))
    x = torch.randn(5, 2)
    assert model(x, torch.arange(5)).shape == (5, 2)
    assert torch.equal(model(x, 3), model(x, torch.full((5,), 3)))
    assert torch.equal(model(x, 3), model(x, 3, torch.full((5,), 2)))  # None = the null class (row 2)
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        model(torch.randn(5, 3), 0)
    with pytest.raises(ValueError, match="unconditional"):
        ToyMLP()(x, 0, torch.zeros(5, dtype=torch.long))
