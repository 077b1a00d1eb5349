"""Data-parallel training (diffviz.distributed): sharding, and `diffviz train` under torchrun with
2 CPU processes (gloo) against 1 process with the same total batch.

Why the curves can match to float tolerance: every rank draws the random numbers of the whole
batch from the same seeded generator and keeps its slice, so the 2 ranks together see exactly the
batch, t, ε and label dropout of the 1-process run; DDP averages the two half-batch gradients into
the full-batch gradient. What differs is float summation order (and the tiny preset has no dropout,
the one per-rank stream), so losses agree to ~1e-7 (asserted: 1e-5), not bit for bit.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

import diffviz.distributed as distributed
from diffviz.checkpoint import load_checkpoint, load_train_state
from diffviz.distributed import DistInfo
from diffviz.training import TrainConfig, Trainer


def test_shards_cover_the_batch_once():
    slices = [DistInfo(rank, 4).shard(32) for rank in range(4)]
    assert [list(range(32))[s] for s in slices] == [list(range(8 * r, 8 * r + 8)) for r in range(4)]
    assert DistInfo().shard(32) == slice(0, 32) and DistInfo().is_main and not DistInfo(1, 2).is_main


def test_single_process_helpers_are_identities():
    assert distributed.info() == DistInfo() and distributed.is_main_process()
    x = torch.randn(5)
    assert distributed.mean_over_ranks(x) is x and distributed.gather_rng_states({"torch_cpu": x}) == {}
    assert distributed.any_over_ranks(True) is True and distributed.any_over_ranks(False) is False
    states = {"generator": 0, "torch_cpu": 1, "torch_cuda": 2, "torch_cpu@1": 3, "torch_cpu@2": 4}
    assert distributed.rng_states_of_rank(states, 0) == {"torch_cpu": 1, "torch_cuda": 2}
    assert distributed.rng_states_of_rank(states, 2) == {"torch_cpu": 4}
    assert distributed.rng_states_of_rank(states, 3) == {}


def config(**overrides):
    kwargs = dict(dataset="digits", model="tiny", conditional=True, batch_size=8, steps=4,
                  model_overrides=dict(base_channels=8, groups=4))
    return TrainConfig(**{**kwargs, **overrides})


class Spy(torch.nn.Module):
    """Records the (x_t, t, y) it is called with; predicts ε̂ = 0."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x_t, t, y=None):
        self.seen.extend([x_t, t, y])
        return torch.zeros_like(x_t)


def test_a_rank_draws_its_slice_of_the_whole_batch(monkeypatch):
    single = Trainer(config())
    monkeypatch.setattr(distributed, "info", lambda: DistInfo(rank=1, world_size=2))
    monkeypatch.setattr(distributed, "wrap_model", lambda model, device: model)  # no process group here
    rank1 = Trainer(config())
    x_all, y_all = single.next_batch()
    x_mine, y_mine = rank1.next_batch()
    assert torch.equal(x_mine, x_all[4:]) and torch.equal(y_mine, y_all[4:])
    for trainer, x0, y in ((single, x_all, y_all), (rank1, x_mine, y_mine)):  # what reaches the model
        trainer.train_model = Spy()
        trainer.compute_loss(x0, y)
    for full, mine in zip(single.train_model.seen, rank1.train_model.seen):  # x_t, t, y after label dropout
        assert torch.equal(mine, full[4:])
    with pytest.raises(ValueError, match="must be divisible by the number of processes, 2"):
        Trainer(config(batch_size=7))


def torchrun_train(tmp_path, *args):
    """`torchrun --nproc_per_node=2 -m diffviz.cli train ...` on the CPU; returns its stdout."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "diffviz.cli", "train", "--dataset", "digits", "--model", "tiny", "--conditional",
               "--batch-size", "16", "--device", "cpu", "--threads", "1", "--no-progress", "--log-every", "3",
               "--warmup", "0", "--lr", "1e-3",  # the weights move: a wrong gradient would show
               "--checkpoint-dir", str(tmp_path / "run"), "--checkpoint-every", "3", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process_and_resume(tmp_path):
    first = torchrun_train(tmp_path, "--steps", "6")
    second = torchrun_train(tmp_path, "--resume", "--steps", "12")  # a new launch continues the run
    assert first.count("step       3  loss") == 1 and first.count("done: step 6") == 1  # rank 0 prints
    assert "resumed from" in second and second.count("done: step 12") == 1
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["latest", "run.log", "step-000006", "step-000009", "step-000012"]
    with safe_open(str(run / "step-000012" / "train_state.safetensors"), "pt") as f:
        assert {"rng.torch_cpu", "rng.torch_cpu@1"} <= set(f.keys())  # both ranks' dropout streams
    assert json.loads((run / "step-000012" / "config.json").read_text())["meta"]["images_seen"] == 12 * 16

    same = dict(batch_size=16, steps=12, warmup_steps=0, lr=1e-3, model_overrides={})
    one = Trainer(config(**same)).fit(progress=False)
    ddp = Trainer(config(**same))
    state = load_train_state(run, ddp.model, ddp.ema_model, ddp.optimizer)
    assert len(state.losses) == 12
    torch.testing.assert_close(torch.tensor(state.losses), torch.tensor(one.losses), rtol=1e-5, atol=1e-6)
    ema = load_checkpoint(run).model
    for (name, a), b in zip(ema.state_dict().items(), one.ema_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=name)
