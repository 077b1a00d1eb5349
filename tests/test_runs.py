"""diffviz.runs and the Trainer's use of it: a run folder that loses no work (checked before the
first step, never overwritten by accident, locked, resumed only with the same settings), and a
NaN loss that stops the run without saving over the last good checkpoint."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffviz import runs
from diffviz.checkpoint import CheckpointError, load_checkpoint
from diffviz.runs import RunFolderError, RunLock, StopOnSignal
from diffviz.training import NonFiniteLossError, TrainConfig, Trainer


def toy(tmp_path, **overrides):
    """A toy MLP on 2-D points: a step takes about a millisecond."""
    kwargs = dict(dataset="swiss_roll", num_data=256, model="toy", batch_size=16, steps=6, log_every=2,
                  warmup_steps=2, checkpoint_dir=str(tmp_path / "run"), checkpoint_every=2)
    return TrainConfig(**{**kwargs, **overrides})


def names(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())


def test_unusable_folder_is_found_before_the_first_step(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        Trainer(toy(tmp_path, checkpoint_dir=str(tmp_path / "a-file")))
    with pytest.raises(RunFolderError, match="is not writable"):
        Trainer(toy(tmp_path, checkpoint_dir=str(tmp_path / "a-file" / "run")))
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: runs.shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(RunFolderError, match=r"has 0\.0 MB free; a checkpoint of this model needs about"):
        Trainer(toy(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(RunFolderError, match="is not writable"):
            runs.check_usable(folder)
    finally:
        folder.chmod(0o700)


def test_a_second_run_without_resume_is_refused_and_overwrite_starts_again(tmp_path):
    Trainer(toy(tmp_path)).fit(progress=False)
    root = tmp_path / "run"
    with pytest.raises(RunFolderError, match="already holds checkpoints.*--resume.*--overwrite"):
        Trainer(toy(tmp_path)).fit(progress=False)  # refused before its first step
    assert names(root) == ["latest", "run.log", "step-000002", "step-000004", "step-000006"]
    with runs.RunLock(root):
        runs.check_fresh(root, overwrite=True)  # what --overwrite does
    assert names(root) == ["run.log"]
    Trainer(toy(tmp_path, steps=2)).fit(progress=False)
    assert names(root) == ["latest", "run.log", "step-000002"]
    assert "overwrite: deleted" in (root / "run.log").read_text()


def test_a_trainer_that_resumed_from_the_folder_continues_it(tmp_path):
    full = Trainer(toy(tmp_path)).fit(progress=False)
    again = Trainer(toy(tmp_path))  # as notebook 04 does: a fresh trainer, then resume() from a step folder
    again.resume(tmp_path / "run" / "step-000002").fit(progress=False)
    assert again.losses == full.losses and (tmp_path / "run" / "latest").read_text().strip() == "step-000006"


def test_resume_needs_a_checkpoint_and_config_checks(tmp_path):
    with pytest.raises(RunFolderError, match="holds no checkpoint to resume.*folder name right"):
        Trainer(toy(tmp_path, resume=True))
    for bad, message in [(dict(checkpoint_dir=None), "checkpoint_every needs checkpoint_dir"),
                         (dict(checkpoint_every=0, checkpoint_dir=None, resume=True), "resume needs checkpoint_dir"),
                         (dict(grad_clip=-1.0), r"grad_clip must be a finite number in \[0, inf\), got -1\.0"),
                         (dict(lr=float("inf")), r"lr must be a finite number in \(0, inf\)"),
                         (dict(lr=0.0), r"lr must be a finite number in \(0, inf\)"),
                         (dict(num_threads=0), "num_threads must be a positive int, got 0"),
                         (dict(ema_decay=float("nan")), "ema_decay must be a finite number"),
                         (dict(seed=-1), "seed must be an int >= 0"),
                         (dict(num_timesteps=20, sample_steps=25), r"sample_steps must be an int in \[1, 20\]")]:
        with pytest.raises(ValueError, match=message):
            toy(tmp_path, **bad)


def test_resume_refuses_other_settings_and_logs_safe_changes(tmp_path):
    Trainer(toy(tmp_path, steps=4)).fit(progress=False)
    with pytest.raises(CheckpointError, match=r"differences: batch_size: 16 → 32; num_timesteps: 1000 → 50; "
                                              r"schedule: 'linear' → 'cosine'\. Only these may change"):
        Trainer(toy(tmp_path, resume=True, steps=8, num_timesteps=50, schedule="cosine", batch_size=32))
    with pytest.raises(ValueError, match="steps=3 is below the checkpoint's step 4"):
        Trainer(toy(tmp_path, resume=True, steps=3))
    trainer = Trainer(toy(tmp_path, resume=True, steps=8, checkpoint_every=4, num_threads=1))
    assert trainer.step == 4
    log = (tmp_path / "run" / "run.log").read_text()
    assert "resume at step 4" in log and "checkpoint_every: 2 → 4" in log and "steps: 4 → 8" in log


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(toy(tmp_path, steps=10))
    real = trainer.compute_loss

    def poisoned(x0, y=None):
        loss = real(x0, y)
        return loss * float("nan") if trainer.step == 4 else loss  # the 5th step's loss is NaN

    trainer.compute_loss = poisoned
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at step 5.*last good checkpoint is .*step-000004"):
        trainer.fit(progress=False)
    root = tmp_path / "run"
    assert (root / "latest").read_text().strip() == "step-000004" and "step-000006" not in names(root)
    assert all(torch.isfinite(p).all() for p in load_checkpoint(root).model.parameters())
    assert "the loss is nan at step 5" in (root / "run.log").read_text()
    assert not (root / "LOCK").exists()  # the lock is released on the way out


def test_stop_requested_saves_the_step_it_stopped_at(tmp_path):
    trainer = Trainer(toy(tmp_path, steps=100, checkpoint_every=50, log_every=3))
    trainer.fit(callback=lambda event: setattr(trainer, "stop_requested", True), progress=False)
    assert trainer.step == 3 and (tmp_path / "run" / "latest").read_text().strip() == "step-000003"


def test_lock_refuses_a_live_process_and_recovers_a_dead_ones(tmp_path):
    tmp_path.joinpath("run").mkdir()
    lock_file = tmp_path / "run" / "LOCK"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_file.write_text(f"{sleeper.pid} {runs.socket.gethostname()}\n")
        with pytest.raises(RunFolderError, match=f"in use by process {sleeper.pid}"):
            Trainer(toy(tmp_path))
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.warns(UserWarning, match=f"recovered the stale lock of process {sleeper.pid}"):
        Trainer(toy(tmp_path, steps=2)).fit(progress=False)
    assert not lock_file.exists()
    with RunLock(tmp_path / "run") as lock:  # our own lock is ours to take again
        assert lock_file.read_text().split()[0] == str(os.getpid())
        with RunLock(tmp_path / "run"):
            pass


def test_signal_asks_the_loop_to_stop_instead_of_killing(tmp_path):
    asked = []
    with StopOnSignal(lambda: asked.append(True)) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal changes nothing
    assert stop.signum == signal.SIGTERM and asked == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_resume_differences_safe_and_unsafe():
    unsafe, safe = runs.resume_differences({"steps": 4, "lr": 1e-3, "only_old": 1}, {"steps": 8, "lr": 2e-3})
    assert unsafe == ["lr: 0.001 → 0.002"] and safe == ["steps: 4 → 8"]
