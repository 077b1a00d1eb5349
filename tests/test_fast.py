"""The fast path (diffviz.fast): same maths as the plain path, checked on the CPU; the CUDA-only
parts (graph capture, graphed sampling) run when a GPU is there and are skipped otherwise."""
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from diffviz.diffusion import q_sample_tables, q_sample_from_tables, q_sample
from diffviz.fast import FastTrainStep
from diffviz.graphed import GraphedModel
from diffviz.sampling import sample
from diffviz.schedules import get_schedule
from diffviz.training import TrainConfig, Trainer, ema_update_
from diffviz.unet import UNet, preset

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def tiny(**overrides):
    """A conditional tiny U-Net on 8x8 digits (label dropout on): a few steps take a second."""
    kwargs = dict(dataset="digits", model="tiny", conditional=True, batch_size=8, steps=6, log_every=3,
                  warmup_steps=3, model_overrides=dict(base_channels=8, groups=4))
    return TrainConfig(**{**kwargs, **overrides})


def assert_close_modules(a, b, **tolerance):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, msg=name, **tolerance)


def testq_sample_from_tables_is_q_sample_bit_for_bit():
    schedule, g = get_schedule("cosine", 1000), torch.Generator().manual_seed(0)
    for shape in [(16, 1, 8, 8), (16, 2)]:
        x0, noise = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        t = torch.randint(0, 1000, (16,), generator=g)
        fast = q_sample_from_tables(q_sample_tables(schedule, "cpu"), x0, t, noise)
        assert torch.equal(fast, q_sample(schedule, x0, t, noise))


def test_foreach_ema_equals_the_plain_ema():
    trainer = Trainer(tiny(model_overrides=dict(base_channels=8, groups=4, dropout=0.1)))
    for _ in range(2):  # move the weights away from the EMA's
        trainer.train_step(*trainer.next_batch())
    ema, params = list(trainer.ema_model.parameters()), list(trainer.model.parameters())
    before = [p.clone() for p in ema]
    trainer.update_ema()  # the reference: p_ema.lerp_(p, 1 − decay), one tensor at a time
    plain = [p.clone() for p in ema]
    weight = 1.0 - trainer.ema_decay_at(trainer.step)
    for tensors in (weight, torch.tensor(weight)):  # a float, and a 0-dim tensor as in the CUDA graph
        for p, p0 in zip(ema, before):
            p.copy_(p0)
        ema_update_(ema, params, tensors)
        for p, ref in zip(ema, plain):
            if isinstance(tensors, float):
                assert torch.equal(p, ref)  # _foreach_lerp_ is lerp_, bit for bit
            else:
                torch.testing.assert_close(p, ref, rtol=1e-6, atol=1e-7)


def test_fast_step_on_cpu_matches_the_plain_step():
    """FastTrainStep (fused AdamW, foreach EMA, channels_last, unchecked q_sample, lr and EMA weight
    from tensors) computes the step Trainer.train_step computes, from the same random draws."""
    plain = Trainer(tiny()).fit(progress=False)
    fast = Trainer(tiny(fast=True))
    assert fast.use_fast and fast.optimizer.param_groups[0]["fused"] and not plain.use_fast
    assert fast.model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    fast.fit(progress=False)
    assert isinstance(fast._fast_step, FastTrainStep) and fast._fast_step.graph is None  # eager on the CPU
    assert fast.step == plain.step == 6 and fast.images_seen == plain.images_seen == 48
    torch.testing.assert_close(torch.tensor(fast.losses), torch.tensor(plain.losses), rtol=1e-5, atol=1e-6)
    assert torch.equal(fast.generator.get_state(), plain.generator.get_state())  # the same draws
    assert_close_modules(fast.model, plain.model, rtol=1e-4, atol=1e-6)
    assert_close_modules(fast.ema_model, plain.ema_model, rtol=1e-4, atol=1e-6)
    lr = fast.optimizer.param_groups[0]["lr"]  # a float32 tensor: fused AdamW reads it on the device
    assert lr.dtype == torch.float32 and float(lr) == pytest.approx(plain.optimizer.param_groups[0]["lr"])


def test_fast_resume_is_exact_and_reads_plain_checkpoints(tmp_path):
    full = Trainer(tiny(fast=True, checkpoint_dir=str(tmp_path / "fast"), checkpoint_every=3)).fit(progress=False)
    resumed = Trainer(tiny(fast=True)).resume(tmp_path / "fast" / "step-000003").fit(progress=False)
    assert resumed.losses == full.losses  # bit for bit on the CPU
    assert_close_modules(resumed.ema_model, full.ema_model, rtol=0, atol=0)
    # a checkpoint of the plain path continues on the fast path (AdamW state moved and re-laid-out)
    plain = Trainer(tiny(checkpoint_dir=str(tmp_path / "plain"), checkpoint_every=3)).fit(progress=False)
    crossed = Trainer(tiny(fast=True)).resume(tmp_path / "plain" / "step-000003")
    assert crossed.optimizer.param_groups[0]["fused"] and not plain.optimizer.param_groups[0]["fused"]
    crossed.fit(progress=False)
    torch.testing.assert_close(torch.tensor(crossed.losses), torch.tensor(plain.losses), rtol=1e-5, atol=1e-6)
    # and the other way: the plain path keeps its own AdamW when it resumes a fast checkpoint
    back = Trainer(tiny()).resume(tmp_path / "fast" / "step-000003")
    assert not back.optimizer.param_groups[0]["fused"] and not back.optimizer.param_groups[0]["capturable"]


def test_cuda_only_options_are_refused_on_the_cpu():
    trainer = Trainer(tiny(fast=True))
    with pytest.raises(ValueError, match="capture=True needs a CUDA device"):
        FastTrainStep(trainer, capture=True)
    with pytest.raises(ValueError, match="cuda_graph=True needs a CUDA device"):
        sample(trainer.model, trainer.schedule, (2, 1, 8, 8), num_steps=2, cuda_graph=True)
    assert not Trainer(tiny()).use_fast  # the CPU default is the plain path


def test_cli_fast_flag_on_the_cpu(tmp_path, capsys):
    from diffviz.checkpoint import checkpoint_config
    from diffviz.cli import main

    argv = ["train", "--dataset", "digits", "--model", "tiny", "--batch-size", "8", "--threads", "1", "--no-progress",
            "--log-every", "2", "--steps", "2", "--fast", "--checkpoint-dir", str(tmp_path / "run")]
    assert main(argv) == 0 and "done: step 2" in capsys.readouterr().out
    assert checkpoint_config(tmp_path / "run")["train_config"]["fast"] is True
    # --fast and --compile describe the machine, not the run: a resume does not inherit them
    assert main(["train", "--checkpoint-dir", str(tmp_path / "run"), "--resume", "--steps", "3", "--threads", "1",
                 "--no-progress"]) == 0
    assert checkpoint_config(tmp_path / "run")["train_config"]["fast"] is None


@pytest.mark.slow
def test_benchmark_smoke_runs_on_the_cpu(capsys):
    spec = importlib.util.spec_from_file_location(
        "train_throughput", Path(__file__).resolve().parent.parent / "benchmarks" / "train_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "img/s" in out and "TFLOP/s" in out and "% peak" in out and "seconds" in out
    assert "smoke    diffviz    eager" in out and "needs CUDA" in out
    if importlib.util.find_spec("diffusers") is not None:
        config = UNet(preset("medium", image_size=28)).config
        _, count = bench.diffusers_like(config)
        assert abs(count - 3_830_785) <= 0.1 * 3_830_785 and "smoke    diffusers  eager" in out


@cuda
def test_graphed_training_step_matches_eager_on_cuda():
    config = tiny(device="cuda", steps=8, model_overrides=dict(base_channels=8, groups=4, dropout=0.0))
    eager = Trainer(config)
    eager._fast_step = FastTrainStep(eager, capture=False)
    eager.fit(progress=False)
    graphed = Trainer(config).fit(progress=False)
    assert graphed._fast_step.graph is not None  # steps 1-3 eager, 4 captured, 4-8 replayed
    torch.testing.assert_close(torch.tensor(graphed.losses), torch.tensor(eager.losses), rtol=2e-2, atol=1e-3)
    assert_close_modules(graphed.ema_model, eager.ema_model, rtol=2e-2, atol=1e-3)


@cuda
def test_graphed_sampling_matches_eager_on_cuda():
    torch.manual_seed(0)
    model = UNet(preset("tiny", image_size=8, num_classes=3, base_channels=8, groups=4)).cuda()
    for p in model.parameters():  # the zero-initialised output layers would make ε̂ = 0
        p.data.normal_(0, 0.05)
    schedule, y = get_schedule("linear", 50), torch.tensor([0, 1, 2, 0])
    runs = [sample(model, schedule, (4, 1, 8, 8), generator=torch.Generator("cuda").manual_seed(0), y=y,
                   guidance_scale=2.0, cuda_graph=graph) for graph in (False, True)]
    for name in ("x_t", "eps", "x0_hat", "sample"):
        torch.testing.assert_close(getattr(runs[1], name), getattr(runs[0], name), rtol=1e-4, atol=1e-4)
    graphed = GraphedModel(model)
    x, t = torch.randn(4, 1, 8, 8, device="cuda"), torch.full((4,), 7, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(graphed(x, t), model(x, t), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(graphed(x, t, y.cuda()), model(x, t, y.cuda()), rtol=1e-4, atol=1e-5)


@cuda
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="compiling needs a C compiler")
def test_compiled_graphed_training_runs_on_cuda():
    trainer = Trainer(tiny(device="cuda", steps=6, compile=True)).fit(progress=False)
    assert trainer._fast_step.graph is not None and all(torch.isfinite(torch.tensor(trainer.losses)))
