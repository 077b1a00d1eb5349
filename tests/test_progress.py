"""diffviz.progress: a training run's progress folder round-trips through write/load, and a corrupt,
edited or missing one is refused with an error that names the file."""
import json

import numpy as np
import pytest
import torch
from progress_fixture import make_progress

from diffviz.checkpoint import CheckpointError
from diffviz.progress import Snapshot, load_progress, to_uint8, write_progress


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_progress(tmp_path_factory.mktemp("progress") / "run", missing={0: ["fid"], 2: ["accuracy"]})


def test_round_trip(folder):
    p = load_progress(folder)
    assert p.steps.tolist() == [500, 1000, 1500]
    assert [s.images_seen for s in p.snapshots] == [32_000, 64_000, 96_000]
    assert [s.wall_time for s in p.snapshots] == [30.0, 60.0, 90.0]
    rng = np.random.default_rng(0)  # the fixture's samples, drawn again
    assert p.samples.dtype == np.uint8 and np.array_equal(p.samples, rng.integers(0, 256, (3, 8, 8, 8), dtype=np.uint8))
    assert p.sample_labels == list(range(8))
    assert p.sample_info == {"sampler": "ddim", "num_steps": 10, "guidance_scale": 2.0, "seed": 0}
    assert p.metric_info["n"] == 100 and p.run["recipe"] == "test"
    assert np.array_equal(p.loss_steps, np.arange(50, 1501, 50))
    np.testing.assert_allclose(p.losses, 0.05 + 0.5 / np.sqrt(p.loss_steps))


def test_metric_is_nan_where_missing(folder):
    p = load_progress(folder)
    fid, acc = p.metric("fid"), p.metric("accuracy")
    assert np.isnan(fid[0]) and fid[1:].tolist() == [50.0, 100 / 3]
    assert acc[:2].tolist() == [0.5, 0.7] and np.isnan(acc[2])
    assert np.isnan(p.metric("no such metric")).all() and p.metric("fid").dtype == float


def test_load_model_gives_the_exported_weights(folder):
    p = load_progress(folder)
    loaded = p.load_model(-1)
    assert loaded.meta["step"] == 1500 and not loaded.model.training
    out = loaded.model(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), torch.tensor([3, 4]))
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()


@pytest.mark.parametrize("index", [3, -4, 100])
def test_load_model_out_of_range_names_the_count(folder, index):
    with pytest.raises(IndexError, match=rf"index {index} out of range: this run has 3 snapshots"):
        load_progress(folder).load_model(index)


@pytest.mark.parametrize("index", [1.0, "1", True, None])
def test_load_model_needs_an_int(folder, index):
    with pytest.raises(TypeError, match="snapshot index must be an int"):
        load_progress(folder).load_model(index)


def test_load_model_accepts_numpy_ints(folder):
    assert load_progress(folder).load_model(np.int64(1)).meta["step"] == 1000


def test_corrupt_samples_are_refused_naming_the_file(tmp_path):
    folder = make_progress(tmp_path / "run")
    path = folder / "samples.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped pixel
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"samples\.safetensors: sha256 does not match"):
        load_progress(folder)


def test_edited_progress_json_is_refused(tmp_path):
    folder = make_progress(tmp_path / "run")
    path = folder / "progress.json"
    config = json.loads(path.read_text())
    config["snapshots"][0]["metrics"]["fid"] = 1.0  # a better number, by hand
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"progress\.json: was changed after it was written"):
        load_progress(folder)


def test_a_corrupt_snapshot_is_refused_when_loaded(tmp_path):
    folder = make_progress(tmp_path / "run")
    (folder / "step-001000.safetensors").write_bytes(b"not weights")
    p = load_progress(folder)  # the snapshots' files are read lazily
    with pytest.raises(CheckpointError, match=r"step-001000\.safetensors"):
        p.load_model(1)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no training progress at .*nowhere.*give a folder, or one of mnist"):
        load_progress(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"progress\.json: missing file"):
        load_progress(tmp_path)  # a folder, but not a progress folder


def test_missing_shipped_progress_says_it_is_not_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFVIZ_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="shipped training progress 'mnist' is not installed"):
        load_progress("mnist")


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="progress must be a folder .* got int"):
        load_progress(3)


def test_write_refuses_samples_that_do_not_fit(tmp_path):
    folder = make_progress(tmp_path / "run", num_snapshots=2)
    snaps = load_progress(folder).snapshots
    ok = dict(run={}, loss_steps=[1], losses=[0.5], snapshots=snaps, sample_labels=[0, 1], sample_info={}, metric_info={})
    for bad in (np.zeros((3, 2, 8, 8), np.uint8), np.zeros((2, 2, 8, 8), np.float32), np.zeros((2, 2, 8), np.uint8)):
        with pytest.raises(ValueError, match="samples must be uint8 \\(S, N, H, W\\) with S = 2"):
            write_progress(folder, samples=bad, **ok)
    with pytest.raises(ValueError, match="same length, got 1 and 2"):
        write_progress(folder, samples=np.zeros((2, 2, 8, 8), np.uint8), **{**ok, "losses": [0.5, 0.4]})
    with pytest.raises(FileNotFoundError, match="snapshot 'step-9' is not in"):
        write_progress(folder, samples=np.zeros((1, 2, 8, 8), np.uint8),
                       **{**ok, "snapshots": [Snapshot(9, 9, 1.0, "step-9")]})


def test_write_takes_numpy_numbers(tmp_path):
    folder = make_progress(tmp_path / "run", num_snapshots=1)
    snap = Snapshot(np.int64(500), np.int64(32_000), np.float32(30.0), "step-000500",
                    {"fid": np.float64(12.5), "accuracy": np.nan, "fid_real": None})
    write_progress(folder, run={}, loss_steps=np.array([1]), losses=np.array([0.5]), snapshots=[snap],
                   samples=np.zeros((1, 2, 8, 8), np.uint8), sample_labels=[0, 1], sample_info={}, metric_info={})
    p = load_progress(folder)
    assert p.steps.tolist() == [500] and p.metric("fid").tolist() == [12.5]
    assert p.snapshots[0].metrics == {"fid": 12.5}  # NaN and None are left out: "not measured"
    assert np.isnan(p.metric("accuracy")).all() and "NaN" not in (folder / "progress.json").read_text()


def test_to_uint8():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 5)
    assert to_uint8(x).tolist() == [[[0, 0, 128, 255, 255]]]
