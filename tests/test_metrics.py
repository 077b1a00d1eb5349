"""Tests for diffviz.metrics (and benchmarks/sample_quality.py): each against an independent answer."""

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from diffviz import metrics
from diffviz.data import load_dataset
from diffviz.metrics import (ClassifierConfig, class_accuracy, class_histogram_entropy, feature_fid,
                             frechet_distance, histogram_entropy, load_classifier, memorisation,
                             nearest_neighbours)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k", split="train"), load_dataset("mnist-5k", split="test")


def random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def sqrtm_denman_beavers(a, iterations=60):
    """√A of a matrix with positive real eigenvalues (Denman & Beavers 1976): Y → √A, Z → 1/√A."""
    y, z = a.copy(), np.eye(len(a))
    for _ in range(iterations):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


# ---------------------------------------------------------------------- Fréchet distance
def test_frechet_1d_closed_form():
    # N(m1, s1²) vs N(m2, s2²): d² = (m1 − m2)² + (s1 − s2)²
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(3**2 + (2 - 3) ** 2, rel=1e-12)


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2, v1, v2 = rng.normal(size=6), rng.normal(size=6), rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_2x2_known_sqrt():
    # For a 2×2 SPD M with s = √det M, t = √(tr M + 2s): √M = (M + sI)/t, so Tr √M = t.
    m = np.array([[2.0, 0.7], [0.7, 1.0]])
    t = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), m) == pytest.approx(2 + np.trace(m) - 2 * t, rel=1e-12)


def test_frechet_matches_denman_beavers_reference():
    rng = np.random.default_rng(1)
    mu1, mu2, s1, s2 = rng.normal(size=8), rng.normal(size=8), random_spd(rng, 8), random_spd(rng, 8)
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm_denman_beavers(s1 @ s2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)
    assert frechet_distance(torch.tensor(mu1), torch.tensor(s1), torch.tensor(mu2), torch.tensor(s2)) == \
        pytest.approx(reference, rel=1e-9)  # tensors work too


def test_frechet_identical_rank_deficient_is_zero():
    feats = np.random.default_rng(2).normal(size=(5, 20))  # 5 points in 20-D: covariance of rank 4
    mu, sigma = metrics.feature_statistics(feats)
    d2 = frechet_distance(mu, sigma, mu, sigma)
    assert 0.0 <= d2 < 1e-6


def test_frechet_shape_errors():
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(3))


# ---------------------------------------------------------------------- classifier and FID
def test_shipped_classifier_accuracy(mnist):
    _, test = mnist
    info = json.loads((REPO / "data" / "mnist_classifier.json").read_text())
    accuracy = class_accuracy(test.x, test.y)
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(info["test_accuracy"], abs=1e-9)  # the JSON tells the truth
    feats = metrics.features(test.x[:7])
    assert feats.shape == (7, ClassifierConfig().feature_dim) and feats.dtype == torch.float32


def test_feature_fid_identical_real_and_noise(mnist):
    train, test = mnist
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:500]
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    same = feature_fid(test.x, test.x)
    real = feature_fid(train.x[pick], test.x)
    fake = feature_fid(noise, test.x)
    assert 0.0 <= same < 1e-6
    assert real < 40 and fake > 20 * real


def test_classifier_rejects_tampered_weights(tmp_path):
    for suffix in (".safetensors", ".json"):
        shutil.copy(REPO / "data" / f"mnist_classifier{suffix}", tmp_path / f"c{suffix}")
    load_classifier(tmp_path / "c.safetensors")  # an intact copy loads
    blob = bytearray((tmp_path / "c.safetensors").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "c.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        load_classifier(tmp_path / "c.safetensors")


# ---------------------------------------------------------------------- class histogram entropy
class StubClassifier(nn.Module):
    """Predicts class k for an image whose top-left pixel is −1 + 0.2k (a stand-in classifier)."""

    config = ClassifierConfig()

    def forward(self, x):
        k = ((x[:, 0, 0, 0] + 1) / 0.2).round().long()
        return nn.functional.one_hot(k, 10).float()


def stub_images(classes):
    x = -torch.ones(len(classes), 1, 28, 28)
    x[:, 0, 0, 0] = -1 + 0.2 * torch.tensor(classes, dtype=torch.float32)
    return x


def test_entropy_uniform_single_and_two_classes():
    assert histogram_entropy(torch.arange(100) % 10) == pytest.approx(math.log(10), rel=1e-12)
    assert histogram_entropy(torch.full((50,), 3)) == 0.0
    assert histogram_entropy(torch.tensor([1, 2, 1, 2])) == pytest.approx(math.log(2), rel=1e-12)
    stub = StubClassifier()
    assert class_histogram_entropy(stub_images(list(range(10)) * 3), stub) == pytest.approx(math.log(10))
    assert class_histogram_entropy(stub_images([7] * 12), stub) == 0.0
    assert class_accuracy(stub_images([0, 1, 2, 3]), torch.tensor([0, 1, 2, 0]), stub) == 0.75


# ---------------------------------------------------------------------- memorisation
def test_nearest_neighbours_matches_cdist():
    g = torch.Generator().manual_seed(0)
    queries, refs = torch.rand(30, 1, 28, 28, generator=g) * 2 - 1, torch.rand(50, 1, 28, 28, generator=g) * 2 - 1
    distance, index = nearest_neighbours(queries, refs, batch_size=7)
    full = torch.cdist(queries.flatten(1).double(), refs.flatten(1).double())  # (30, 50)
    assert torch.equal(index, full.argmin(1))
    torch.testing.assert_close(distance.double(), full.min(1).values, rtol=1e-5, atol=1e-5)


def test_memorisation_flags_copies_not_fresh_digits(mnist):
    train, test = mnist
    copies = memorisation(train.x[:100], train.x, test.x)
    assert torch.all(copies.sample_distance == 0) and copies.fraction_memorised == 1.0
    assert torch.equal(train.x[copies.nearest_index], train.x[:100])
    fresh = memorisation(test.x[1::2], train.x, test.x[::2])  # half the held-out set is the reference
    assert fresh.fraction_memorised < 0.15
    assert fresh.median_distance == pytest.approx(fresh.real_median_distance, rel=0.15)
    assert fresh.threshold == pytest.approx(torch.quantile(fresh.real_distance.double(), 0.05).item())


# ---------------------------------------------------------------------- input errors
@pytest.mark.parametrize("bad, match", [
    (torch.zeros(4, 28, 28), "shape"),
    (torch.zeros(4, 3, 28, 28), "shape"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "float"),
    (torch.full((4, 1, 28, 28), 2.0), r"\[-1, 1\]"),
    (torch.full((4, 1, 28, 28), float("nan")), "NaN"),
])
def test_image_errors_name_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        metrics.features(bad)
    with pytest.raises(ValueError, match="generated"):
        feature_fid(bad, torch.zeros(4, 1, 28, 28))


def test_other_argument_errors(mnist):
    _, test = mnist
    with pytest.raises(TypeError, match="images"):
        metrics.features([[0.0]])
    with pytest.raises(ValueError, match="labels"):
        class_accuracy(test.x[:5], torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2"):
        feature_fid(test.x[:1], test.x)
    with pytest.raises(ValueError, match="quantile"):
        memorisation(test.x[:2], test.x, test.x, quantile=5)
    with pytest.raises(ValueError, match="class indices"):
        histogram_entropy(torch.tensor([0, 10]))


# ---------------------------------------------------------------------- the benchmark script
def test_sample_quality_script_end_to_end(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("sample_quality", REPO / "benchmarks" / "sample_quality.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.parse_row("ddim-50@w3")[:3] == ("ddim", 50, 3.0) and script.parse_row("ddpm-1000")[:3] == ("ddpm", 1000, None)
    assert script.parse_row("ddpm-20:beta").variance == "fixed_large" and script.parse_row("ddpm-20").variance == "fixed_small"
    assert script.parse_row("ddim-20:eta1").eta == 1.0 and script.parse_row("ddim-20+clip").clip
    for bad in ("ddim50", "ddim-20:beta", "ddpm-20:eta1"):
        with pytest.raises(ValueError, match="SAMPLER-STEPS|is a DDPM variance"):
            script.parse_row(bad)
    out = tmp_path / "q.json"
    rows = script.main(["--model", "random-tiny", "--n", "12", "--rows", "ddim-2", "ddim-2@w0", "ddpm-2:beta", "--json", str(out)])
    assert [r["row"] for r in rows] == ["real digits", "ddim-2", "ddim-2@w0", "ddpm-2:beta"]
    assert rows[3]["variance"] == "fixed_large" and 0.1 <= rows[1]["confidence"] <= 1
    assert rows[0]["accuracy"] >= 0.95 and rows[2]["accuracy"] is None and rows[1]["guidance"] == 1.0
    assert json.loads(out.read_text())["rows"][1]["fid"] == pytest.approx(rows[1]["fid"])
    table = capsys.readouterr().out
    assert "| real digits |" in table and "| ddim-2@w0 |" in table
