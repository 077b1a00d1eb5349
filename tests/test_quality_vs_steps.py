"""Tests for benchmarks/quality_vs_steps.py (the stored curves of notebook 05), on an untrained model."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("quality_vs_steps", REPO / "benchmarks" / "quality_vs_steps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_covers_every_sampler_and_step(script):
    points = script.plan([10, 20], ddpm_1000=False)
    assert [spec for _, _, spec in points] == ["ddpm-10", "ddpm-20", "ddpm-10:beta", "ddpm-20:beta",
                                                "ddim-10", "ddim-20", "ddim-10:eta1", "ddim-20:eta1"]
    assert script.plan([10], ddpm_1000=True)[-1] == ("ddpm_small", 1000, "ddpm-1000")


def test_smoke_writes_curves_and_the_real_floor(script, tmp_path):
    out = tmp_path / "curves.json"
    result = script.main(["--model", "random-tiny", "--n", "10", "--steps", "2", "3", "--out", str(out)])
    stored = json.loads(out.read_text())
    assert stored["n"] == 10 and stored["real"]["n"] == 10 and stored["real"]["row"] == "real digits"
    assert set(stored["samplers"]) == {"ddpm_small", "ddpm_large", "ddim_eta0", "ddim_eta1"}
    assert sorted((p["sampler"], p["steps"]) for p in stored["points"]) == sorted(
        (key, s) for key in stored["samplers"] for s in (2, 3))
    assert all(0 <= p["accuracy"] <= 1 and p["fid"] > 0 for p in stored["points"])
    assert len(stored["model_sha256"]) == 64 and stored["model_source"] == "parameters"
    by = {(p["sampler"], p["steps"]): p for p in result["points"]}
    # DDIM with η = 1 is a DDPM step with σ² = β̃ (Song et al. 2020, Eq. 16): same x_T, same noise, same numbers
    assert by["ddim_eta1", 3]["fid"] == pytest.approx(by["ddpm_small", 3]["fid"], rel=1e-5)
    assert by["ddpm_large", 3]["fid"] != pytest.approx(by["ddpm_small", 3]["fid"], rel=1e-5)  # σ² = β differs


@pytest.mark.parametrize("checkpoint", [None, "mnist_unet", "mnist_unet.json", "mnist_unet.safetensors"])
def test_model_identity_names_the_shipped_weights(script, checkpoint):
    shipped = json.loads((REPO / "data" / "pretrained" / "mnist_unet.json").read_text())
    path = None if checkpoint is None else str(REPO / "data" / "pretrained" / checkpoint)
    identity = script.model_identity(SimpleNamespace(model=None, checkpoint=path), model=None)
    assert identity["sha256"] == shipped["weights"]["sha256"]
    assert identity["step"] == shipped["metadata"]["step"]


def test_too_few_samples_is_an_error(script, tmp_path):
    with pytest.raises(ValueError, match="--n must be at least 10"):
        script.main(["--model", "random-tiny", "--n", "5", "--out", str(tmp_path / "x.json")])
