"""Checkpoints: exact round trips, exact resume, atomic writes, and clear errors for bad files."""
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import diffviz
import diffviz.checkpoint as ckpt
from diffviz import checkpoint_io
from diffviz.checkpoint import CheckpointError, export_model, load_checkpoint, load_model
from diffviz.training import TrainConfig, Trainer


def config(tmp_path, **overrides):
    kwargs = dict(dataset="digits", model="tiny", conditional=True, batch_size=8, steps=8, log_every=4,
                  checkpoint_dir=str(tmp_path / "run"), checkpoint_every=4, warmup_steps=3,
                  model_overrides=dict(base_channels=8, groups=4, dropout=0.1))
    return TrainConfig(**{**kwargs, **overrides})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An 8-step run with checkpoints at steps 4 and 8."""
    tmp_path = tmp_path_factory.mktemp("ckpt")
    return tmp_path, Trainer(config(tmp_path)).fit(progress=False)


def copy_run(run, tmp_path):
    src, _ = run
    shutil.copytree(src / "run", tmp_path / "run")
    return tmp_path / "run"


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_layout_and_latest(run):
    tmp_path, trainer = run
    root = tmp_path / "run"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "run.log", "step-000004", "step-000008"]
    assert (root / "latest").read_text().strip() == "step-000008"
    assert sorted(p.name for p in (root / "step-000008").iterdir()) == [
        "config.json", "ema.safetensors", "model.safetensors", "train_state.safetensors"]
    config = json.loads((root / "step-000008" / "config.json").read_text())
    assert config["format_version"] == ckpt.FORMAT_VERSION and config["meta"]["step"] == 8
    assert config["schedule"]["name"] == "linear" and config["train_config"]["batch_size"] == 8


def test_round_trip_is_exact(run):
    tmp_path, trainer = run
    for ema, source in [(True, trainer.ema_model), (False, trainer.model)]:
        model, schedule, meta = load_checkpoint(tmp_path / "run", ema=ema)  # the root: follows latest
        assert_same_tensors(model.state_dict(), source.state_dict())
        assert meta["step"] == 8 and meta["images_seen"] == 64 and not model.training
        x, t, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 500, 999]), torch.tensor([0, 5, 10])
        source.eval()
        with torch.no_grad():
            assert torch.equal(model(x, t, y), source(x, t, y))
    assert torch.equal(schedule.betas, trainer.schedule.betas)


def test_resume_reproduces_the_uninterrupted_run(run, tmp_path):
    _, full = run
    resumed = Trainer(config(tmp_path, checkpoint_dir=None, checkpoint_every=0))
    resumed.resume(copy_run(run, tmp_path) / "step-000004")
    assert resumed.step == 4 and resumed.losses == full.losses[:4]
    resumed.fit(progress=False)
    assert resumed.losses == full.losses  # bit for bit, dropout and label dropout included
    assert_same_tensors(resumed.model.state_dict(), full.model.state_dict())
    assert_same_tensors(resumed.ema_model.state_dict(), full.ema_model.state_dict())
    opt_a, opt_b = resumed.optimizer.state_dict()["state"], full.optimizer.state_dict()["state"]
    for i in opt_a:
        assert_same_tensors(opt_a[i], opt_b[i])


def test_config_resume_flag_continues_a_run(run, tmp_path):
    root = copy_run(run, tmp_path)
    trainer = Trainer(config(tmp_path, resume=True, steps=10))
    assert trainer.step == 8
    trainer.fit(progress=False)
    assert trainer.step == 10 and (root / "latest").read_text().strip() == "step-000010"


def test_keep_last_k(run, tmp_path):
    root = copy_run(run, tmp_path)
    trainer = Trainer(config(tmp_path, resume=True, steps=14, checkpoint_every=2, keep_checkpoints=2))
    trainer.fit(progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "run.log", "step-000012", "step-000014"]


def test_crash_during_save_keeps_previous_checkpoint(run, tmp_path, monkeypatch):
    root = copy_run(run, tmp_path)
    model, _, _ = load_checkpoint(root)
    real_write = checkpoint_io.write_tensors

    def crash_on_ema(path, tensors, metadata=None):
        if path.name == "ema.safetensors":
            real_write(path, {k: v[:1] for k, v in tensors.items()})  # half-written ...
            raise OSError("disk full (simulated)")  # ... then the crash
        return real_write(path, tensors, metadata)

    monkeypatch.setattr(checkpoint_io, "write_tensors", crash_on_ema)
    trainer = Trainer(config(tmp_path, resume=True, steps=9))
    with pytest.raises(OSError, match="simulated"):
        trainer.save_checkpoint()
    assert sorted(p.name for p in root.iterdir()) == ["latest", "run.log", "step-000004", "step-000008"]
    assert (root / "latest").read_text().strip() == "step-000008"
    assert_same_tensors(load_checkpoint(root).model.state_dict(), model.state_dict())


def test_leftover_tmp_folder_is_ignored_and_cleaned(run, tmp_path):
    root = copy_run(run, tmp_path)
    stale = root / "ckpt-000012-abc.tmp"  # what a killed process leaves behind
    shutil.copytree(root / "step-000008", stale)
    (stale / "ema.safetensors").write_bytes(b"garbage")
    assert load_checkpoint(root).meta["step"] == 8
    trainer = Trainer(config(tmp_path, resume=True, steps=9))
    trainer.fit(progress=False)
    assert not stale.exists() and (root / "latest").read_text().strip() == "step-000009"


def test_truncated_and_corrupt_files_raise_clear_errors(run, tmp_path):
    root = copy_run(run, tmp_path)
    weights = root / "step-000008" / "ema.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"ema\.safetensors: sha256 does not match.*truncated"):
        load_checkpoint(root)
    config_path = root / "step-000008" / "config.json"
    config = json.loads(config_path.read_text())
    del config["files"]["ema.safetensors"]["sha256"]  # without the checksum, safetensors notices
    config_path.write_text(json.dumps(checkpoint_io.seal_config(config)))
    with pytest.raises(CheckpointError, match=r"ema\.safetensors: cannot be read as safetensors"):
        load_checkpoint(root)


def test_missing_file_and_bad_paths(run, tmp_path):
    root = copy_run(run, tmp_path)
    (root / "step-000008" / "ema.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"ema\.safetensors: missing file"):
        load_checkpoint(root)
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no 'latest' file"):
        load_checkpoint(tmp_path)
    (root / "latest").write_text("step-000099\n")
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        load_checkpoint(root)


def edit_config(folder, edit):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(checkpoint_io.seal_config(config)))  # edited AND re-hashed: a deliberate change


def test_config_weights_mismatch_and_format_errors(run, tmp_path):
    step = copy_run(run, tmp_path) / "step-000008"
    edit_config(step, lambda c: c["model"]["config"].update(base_channels=16))
    with pytest.raises(CheckpointError, match=r"ema\.safetensors: weights do not match the model config"):
        load_checkpoint(step)
    edit_config(step, lambda c: c.update(format_version=99))
    with pytest.raises(CheckpointError, match=r"config\.json: unknown format_version 99"):
        load_checkpoint(step)
    (step / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):  # CheckpointError is a ValueError
        load_checkpoint(step)


def test_hand_edited_or_unsealed_config_is_refused(run, tmp_path):
    step = copy_run(run, tmp_path) / "step-000008"
    path = step / "config.json"
    config = json.loads(path.read_text())
    config["schedule"]["num_timesteps"] = 50  # by hand, without re-hashing
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: was changed after it was written"):
        load_checkpoint(step)
    del config["config_sha256"]
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"has no config_sha256.*rehash_configs\.py"):
        load_checkpoint(step)
    sealed = checkpoint_io.seal_config({k: v for k, v in config.items() if k != "model"})
    path.write_text(json.dumps(sealed))
    with pytest.raises(CheckpointError, match=r"has no valid 'model' section"):
        load_checkpoint(step)


def test_shipped_pretrained_files_are_sealed_and_load():
    from diffviz.pretrained import load_pretrained, pretrained_path

    from diffviz.progress import load_progress

    pretrained = load_pretrained()
    assert pretrained.meta["path"].endswith("mnist_unet.json") and pretrained_path("mnist").with_suffix(".safetensors").is_file()
    progress = load_progress("mnist")  # the snapshots of the run that trained it: its last one is this model
    assert int(progress.steps[-1]) == pretrained.meta["step"]
    last = progress.load_model(len(progress.steps) - 1)
    for key, value in pretrained.model.state_dict().items():
        assert torch.equal(last.model.state_dict()[key], value), key


def test_resume_into_a_different_model_fails_clearly(run, tmp_path):
    root = copy_run(run, tmp_path)
    other = config(tmp_path, checkpoint_dir=None, checkpoint_every=0, num_timesteps=50,
                   model_overrides=dict(base_channels=16, groups=4))
    with pytest.raises(CheckpointError, match=r"different run; differences: model_overrides: .*'base_channels': 8"
                                              r".*'base_channels': 16.*; num_timesteps: 1000 → 50\. Only these"):
        Trainer(other).resume(root)


def test_export_and_load_model_fp16(run, tmp_path):
    _, trainer = run
    json_path = export_model(trainer.ema_model, trainer.schedule, tmp_path / "export" / "digits",
                             metadata={"note": "test"})
    assert json_path.name == "digits.json" and (tmp_path / "export" / "digits.safetensors").is_file()
    for path in (tmp_path / "export" / "digits", json_path):
        model, schedule, meta = load_model(path)
        assert meta["note"] == "test" and schedule.num_timesteps == 1000
    for key, value in trainer.ema_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value.half().float()), key
    (tmp_path / "export" / "digits.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match=r"digits\.safetensors: sha256"):
        load_model(json_path)


def test_library_never_unpickles():
    source = "".join(p.read_text() for p in Path(diffviz.__file__).parent.glob("*.py"))
    assert "torch.load" not in source and "import pickle" not in source


def test_a_model_config_without_num_timesteps_gets_the_saved_schedules_T():
    """Configs written before models knew their T load with the schedule's T, so a model trained
    with T = 2000 keeps accepting t up to 1999; a saved num_timesteps is kept as it is."""
    from diffviz.checkpoint import model_from_config, model_to_config

    config = model_to_config(diffviz.ToyMLP(diffviz.ToyConfig(data_dim=2)))
    old = {"type": config["type"], "config": {k: v for k, v in config["config"].items() if k != "num_timesteps"}}
    assert model_from_config(old, num_timesteps=2000).config.num_timesteps == 2000
    assert model_from_config(old).config.num_timesteps == 1000  # the dataclass default
    saved = {"type": config["type"], "config": {**config["config"], "num_timesteps": 50}}
    assert model_from_config(saved, num_timesteps=2000).config.num_timesteps == 50
