"""Fault injection: `diffviz train` (a toy MLP, 1 thread) in a subprocess, stopped with SIGINT,
SIGTERM and SIGKILL at seeded random steps — also in the middle of a checkpoint write (the
DIFFVIZ_TEST_SLOW_SAVE hook sleeps there) — and resumed each time with the command it printed.
The final weights, EMA weights and loss history must equal an uninterrupted run's bit for bit,
and no stop may lose work: SIGINT/SIGTERM save the step they stop at; SIGKILL loses at most the
steps since the last --checkpoint-every save."""
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time

import torch

from diffviz.checkpoint import checkpoint_config, load_checkpoint, load_train_state
from diffviz.checkpoint_io import SLOW_SAVE_ENV
from diffviz.training import TrainConfig, Trainer

STEPS, EVERY = 400, 25
FIRST = ["train", "--dataset", "swiss_roll", "--n-data", "512", "--model", "toy", "--batch-size", "32",
         "--warmup", "10", "--log-every", "5", "--checkpoint-every", str(EVERY), "--keep", "2", "--steps", str(STEPS)]
QUIET = ["--no-progress", "--threads", "1"]  # machine options: not inherited on --resume


def reference() -> Trainer:
    config = TrainConfig(dataset="swiss_roll", num_data=512, model="toy", batch_size=32, warmup_steps=10,
                         log_every=5, steps=STEPS)
    return Trainer(config).fit(progress=False)


def start(argv, slow_save=0.0):
    env = {**os.environ, "OMP_NUM_THREADS": "1", SLOW_SAVE_ENV: str(slow_save)}
    return subprocess.Popen([sys.executable, "-m", "diffviz.cli", *argv, *QUIET], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_until_step(proc, target: int) -> int:
    """Read the progress lines until one reports a step >= target; returns that step."""
    for line in proc.stdout:
        m = re.match(r"step\s+(\d+)", line)
        if m and int(m.group(1)) >= target:
            return int(m.group(1))
    raise AssertionError(f"the run ended before step {target}: {proc.wait()} {proc.stderr.read()[-2000:]}")


def wait_for_checkpoint_write(folder, extra_wait: float, stale: set):
    """Wait until a new checkpoint is being written (a ckpt-*.tmp folder not in ``stale``), then
    extra_wait seconds more."""
    deadline = time.monotonic() + 60
    while not set(folder.glob("ckpt-*.tmp")) - stale:
        assert time.monotonic() < deadline, "no checkpoint write seen"
        time.sleep(0.005)
    time.sleep(extra_wait)


def latest_step(folder) -> int:
    return checkpoint_config(folder)["meta"]["step"]


def test_kills_at_random_points_then_resume_is_bit_identical(tmp_path):
    rng = random.Random(20261203)
    folder = tmp_path / "run"
    argv = [*FIRST, "--checkpoint-dir", str(folder)]
    resume = None  # the command the last graceful stop printed
    plan = [("SIGINT", None), ("SIGTERM", None), ("SIGKILL", None), ("SIGKILL", 0.0), ("SIGTERM", 0.5),
            ("SIGINT", 0.0), ("SIGKILL", None)]  # (signal, None = at a random step | s into a checkpoint write)
    saved, lost = 0, []
    for name, during_write in plan:
        stale = set(folder.glob("ckpt-*.tmp"))  # what an earlier kill left: ignored, then cleaned
        proc = start(resume or argv, slow_save=0.4 if during_write is not None else 0.0)
        if during_write is None:
            seen = run_until_step(proc, saved + rng.randint(10, 60))
        else:
            wait_for_checkpoint_write(folder, during_write, stale)
            seen = None
        proc.send_signal(getattr(signal, name))
        out, err = proc.communicate(timeout=120)
        now = latest_step(folder)
        if name == "SIGKILL":
            assert proc.returncode == -signal.SIGKILL
            if during_write is not None:  # a half-written checkpoint: left as *.tmp, never read
                assert set(folder.glob("ckpt-*.tmp")) - stale and now == saved
            if seen is not None:  # at most the steps since the last cadence save
                assert now >= seen // EVERY * EVERY, (seen, now)
                lost.append(max(0, seen - now))
        else:
            assert proc.returncode == 128 + getattr(signal, name), err
            lines = [line for line in err.splitlines() if line.startswith("diffviz: stopped")]
            assert len(lines) == 1 and "Traceback" not in err, err
            m = re.search(rf"stopped by {name} at step (\d+); checkpoint saved in (\S+); continue with: (.+)$", lines[0])
            assert m and int(m.group(1)) == now and m.group(2).endswith(f"step-{now:06d}"), lines[0]
            assert seen is None or now >= seen  # nothing lost: the step it stopped at is saved
            resume = shlex.split(m.group(3))[1:]  # "diffviz train ..." → the arguments
            assert resume == ["train", "--checkpoint-dir", str(folder), "--resume"]
        assert now >= saved, "a resume went backwards"
        saved = now
        if resume is None:
            resume = ["train", "--checkpoint-dir", str(folder), "--resume"]
    proc = start(resume)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "recovered the stale lock" in err and f"done: step {STEPS}" in out

    full = reference()
    raw, ema = load_checkpoint(folder, ema=False).model, load_checkpoint(folder).model
    for mine, theirs in ((raw, full.model), (ema, full.ema_model)):
        for (key, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), key
    fresh = Trainer(TrainConfig(dataset="swiss_roll", num_data=512, model="toy", batch_size=32))
    state = load_train_state(folder, fresh.model, fresh.ema_model, fresh.optimizer)
    assert state.losses == full.losses and state.step == STEPS
    assert not list(folder.glob("*.tmp")) and not (folder / "LOCK").exists()
    log = (folder / "run.log").read_text()
    assert log.count("stopped by SIGINT") == 2 and log.count("stopped by SIGTERM") == 2
    assert all(0 <= n <= EVERY + 5 for n in lost), lost
