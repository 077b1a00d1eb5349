"""diffviz.latent / diffviz.latent_autoencoder: shapes, the KL term against a float64 closed form,
the shipped autoencoder's round trip and scale factor, and end-to-end latent sampling."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import diffviz as dv
from diffviz.checkpoint_io import CheckpointError
from diffviz.latent import (Autoencoder, AutoencoderConfig, LatentDiffusion, LatentTrajectory, encode_dataset,
                            export_autoencoder, fit_scale_factor, kl_divergence, load_autoencoder, tile_latents)


@pytest.fixture(scope="module")
def autoencoder():
    return dv.load_pretrained("mnist-autoencoder").model


@pytest.fixture(scope="module")
def latent_model():
    return dv.load_pretrained("mnist-latent").model


def small_autoencoder(**overrides):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Autoencoder(AutoencoderConfig(channels=8, **overrides)).eval()


def test_encode_decode_shapes_and_sampled_latents():
    model = small_autoencoder(latent_channels=3)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    z = model.encode(x)
    assert z.shape == (5, 3, 7, 7) and model.latent_shape == (3, 7, 7)
    assert model.decode(z).shape == (5, 1, 28, 28)
    a = model.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
    b = model.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, z)
    mean, logvar = model.posterior(x)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, model.config.scale_factor * (mean + (0.5 * logvar).exp() * noise))


@pytest.mark.parametrize("call, shape", [("encode", (2, 1, 27, 28)), ("encode", (2, 3, 28, 28)), ("encode", (1, 28, 28)),
                                         ("decode", (2, 3, 7, 7)), ("decode", (2, 4, 8, 8)), ("decode", (4, 7, 7))])
def test_bad_shapes_raise(call, shape):
    model = small_autoencoder()
    with pytest.raises(ValueError, match="x must have shape|z must have shape"):
        getattr(model, call)(torch.zeros(shape))
    with pytest.raises(TypeError, match="float tensor"):
        getattr(model, call)(torch.zeros(shape, dtype=torch.long))


def test_kl_matches_float64_closed_form_of_full_gaussians():
    """KL(N(μ, Σ) ‖ N(0, I)) = ½ (tr Σ + μᵀμ − k − log det Σ), computed with numpy on the full matrix."""
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 12, generator=g), torch.randn(3, 12, generator=g)
    ours = kl_divergence(mean, logvar).sum(dim=1).double()
    for i in range(3):
        mu = mean[i].double().numpy()
        cov = np.diag(np.exp(logvar[i].double().numpy()))
        reference = 0.5 * (np.trace(cov) + mu @ mu - mu.size - np.linalg.slogdet(cov)[1])
        assert ours[i].item() == pytest.approx(reference, rel=1e-5)
    assert kl_divergence(torch.zeros(4), torch.zeros(4)).abs().max() == 0  # the prior itself


def test_fit_scale_factor_makes_the_fitted_latents_unit_std():
    model = small_autoencoder()
    images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        raw_std = model.posterior(images)[0].std().item()
    assert fit_scale_factor(model, images, batch_size=16) == pytest.approx(1 / raw_std, rel=1e-5)
    assert encode_dataset(model, images, batch_size=7).std().item() == pytest.approx(1.0, rel=1e-5)


def test_export_load_round_trip_and_tamper(tmp_path):
    model = small_autoencoder()
    model.config.scale_factor = 0.5
    export_autoencoder(model, tmp_path / "ae", {"note": "test"})
    loaded, meta = load_autoencoder(tmp_path / "ae")
    assert meta["note"] == "test" and loaded.config.scale_factor == 0.5
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(loaded.encode(x), model.encode(x), atol=5e-3, rtol=5e-3)  # fp16 weights
    config = json.loads((tmp_path / "ae.json").read_text())
    config["model"]["config"]["scale_factor"] = 1.0
    (tmp_path / "ae.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="changed after it was written"):
        load_autoencoder(tmp_path / "ae")


def test_shipped_autoencoder_round_trip(autoencoder):
    test = dv.load_dataset("mnist-5k", split="test")
    x = test.x[:20]
    with torch.no_grad():
        recon = autoencoder.decode(autoencoder.encode(x))
    assert recon.shape == x.shape
    assert (recon - x).pow(2).mean().item() < 0.03
    assert dv.metrics.class_accuracy(recon.clamp(-1, 1), test.y[:20]) >= 0.9


def test_scale_factor_gives_unit_variance_latents(autoencoder):
    train = dv.load_dataset("mnist-5k", split="train")
    with torch.no_grad():
        z = autoencoder.encode(train.x[:500])  # the scale was fitted on all 4,500; a batch is close
    assert z.std().item() == pytest.approx(1.0, abs=0.05)
    assert autoencoder.config.scale_factor != 1.0


def test_latent_sampling_end_to_end(latent_model):
    y = torch.tensor([0, 3, 7, 9])
    run = lambda seed: latent_model.sample((4, 1, 28, 28), sampler="ddim", num_steps=8,
                                           generator=torch.Generator().manual_seed(seed), y=y, guidance_scale=2.0)
    a, b = run(0), run(0)
    assert isinstance(a, LatentTrajectory) and a.sample.shape == (4, 1, 28, 28)
    assert torch.equal(a.sample, b.sample) and not torch.equal(a.sample, run(1).sample)
    assert a.sample.min() >= -1 and a.sample.max() <= 1 and a.sample.std() > 0.3  # digits, not flat
    assert a.latents.sample.shape == (4, *latent_model.latent_shape)
    assert a.x0_hat.shape == (8, 4, 1, 28, 28) and a.eps.shape == (8, 4, 1, 7, 7 * latent_model.latent_shape[0])
    torch.testing.assert_close(a.sample, latent_model.decode(a.latents.sample))
    torch.testing.assert_close(a.x0_hat[-1], latent_model.decode(a.latents.x0_hat[-1]))


def test_latent_sampling_is_diffviz_sample_on_latents(latent_model):
    """The wrapper adds only the decoder: the same x_T through diffviz.sample gives the same latents."""
    x_T = torch.randn(2, *latent_model.latent_shape, generator=torch.Generator().manual_seed(3))
    ours = latent_model.sample(2, sampler="ddpm", num_steps=5, generator=torch.Generator().manual_seed(4), y=5,
                               x_T=x_T, record=False)
    plain = dv.sample(latent_model.eps_model, latent_model.schedule, x_T.shape, sampler="ddpm", num_steps=5,
                      generator=torch.Generator().manual_seed(4), y=5, x_T=x_T, record=False)
    torch.testing.assert_close(ours.latents.sample, plain.sample)
    assert ours.x_t is None and ours.sample.shape == (2, 1, 28, 28)


def test_latent_shapes_and_bad_arguments(latent_model):
    C = latent_model.latent_shape[0]
    assert latent_model.latent_batch_shape(3) == latent_model.latent_batch_shape((3, C, 7, 7)) == (3, C, 7, 7)
    with pytest.raises(ValueError, match="shape must be"):
        latent_model.sample((2, 1, 32, 32))
    with pytest.raises(ValueError, match="y="):
        latent_model.sample(2, num_steps=2, y=10)
    with pytest.raises(TypeError, match="Autoencoder"):
        LatentDiffusion(object(), latent_model.eps_model, latent_model.schedule)
    assert tile_latents(torch.arange(8.0).reshape(2, 2, 2)).tolist() == [[[0, 1, 4, 5], [2, 3, 6, 7]]]


def test_training_scripts_chain_on_a_fresh_autoencoder(tmp_path):
    # benchmarks/train_autoencoder.py, then train_latent_diffusion.py on ITS latents (a few steps each)
    scripts = {}
    for name in ("train_autoencoder", "train_latent_diffusion"):
        path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        scripts[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(scripts[name])
    ae, ldm = tmp_path / "ae", tmp_path / "ldm"
    scripts["train_autoencoder"].main(["--steps", "3", "--channels", "8", "--out", str(ae)])
    scripts["train_latent_diffusion"].main(["--steps", "3", "--base-channels", "8", "--autoencoder", str(ae),
                                            "--out", str(ldm), "--eval-n", "10"])
    model, schedule, meta = dv.latent.load_latent_diffusion(ldm, ae)
    assert meta["command"].endswith(f"--out {ldm} --eval-n 10") and meta["autoencoder"]["name"] == "ae"
    assert set(meta["metrics"]) == {"w=1", "w=2"} and meta["step"] == 3
    out = model.sample(2, sampler="ddim", num_steps=2, y=torch.tensor([1, 7]), record=False,
                       generator=torch.Generator().manual_seed(0))
    assert out.sample.shape == (2, 1, 28, 28) and torch.isfinite(out.sample).all()


def test_latent_in_minutes_runs_both_stages_and_scores_against_the_bar(tmp_path):
    # benchmarks/latent_in_minutes.py end to end with a few steps per stage: it trains both models from
    # scratch, adds their training times, and judges w = 1 against the bar at the real-digit FID of its n
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "latent_in_minutes.py"
    spec = importlib.util.spec_from_file_location("latent_in_minutes", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    result = script.main(["--ae-steps", "3", "--ldm-steps", "3", "--threads", "1", "--n", "10",
                          "--out", str(tmp_path / "run"), "--json", str(tmp_path / "r.json")])
    assert result["train_seconds"] == pytest.approx(result["autoencoder_train_seconds"] + result["ldm_train_seconds"],
                                                    abs=0.11)
    assert result["command_seconds"] >= result["train_seconds"] and set(result["metrics"]) == {"w=1", "w=2"}
    assert result["at_bar"] is False  # three steps do not make digits
    assert (tmp_path / "run" / "ae.json").is_file() and (tmp_path / "run" / "ldm.json").is_file()
    assert (tmp_path / "run" / "samples.png").is_file() and json.loads((tmp_path / "r.json").read_text())["n"] == 10
