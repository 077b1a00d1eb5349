"""diffviz.quality: class-balanced picks, the real-digit floor at the same n, confidence."""
import pytest
import torch

from diffviz import metrics, quality


def test_balanced_pick_cycles_the_classes_without_repeats():
    labels = torch.tensor([3, 1, 0, 2, 1, 0, 2, 3, 0, 1, 2, 3])
    pick = quality.balanced_pick(labels, 8, seed=0)
    assert labels[pick].tolist() == [0, 1, 2, 3, 0, 1, 2, 3] and len(set(pick.tolist())) == 8
    assert not torch.equal(pick, quality.balanced_pick(labels, 8, seed=1))  # the seed picks other members
    with pytest.raises(ValueError, match=r"n=16 needs 4 examples of every class; classes \[0, 1, 2, 3\]"):
        quality.balanced_pick(labels, 16)
    assert quality.cycling_labels(12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_confidence_is_the_mean_top_softmax_probability():
    reference = quality.Reference()
    x = reference.test.x[:50]
    model = reference.classifier
    with torch.no_grad():
        expected = torch.softmax(model(x), 1).max(1).values.mean().item()
    assert quality.confidence(x, model) == pytest.approx(expected, rel=1e-6)
    assert quality.confidence(x, model) > 0.9  # real digits: the classifier is sure
    noise = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert quality.confidence(noise, model) < quality.confidence(x, model)
    with pytest.raises(ValueError, match="must lie in"):
        quality.confidence(x * 3, model)


def test_real_baseline_is_class_balanced_and_beats_noise():
    reference = quality.Reference()
    row = quality.real_baseline(100, reference)
    pick = quality.balanced_pick(reference.train.y, 100)
    assert row["n"] == 100 and reference.train.y[pick].tolist() == quality.cycling_labels(100).tolist()
    assert row["fid"] == pytest.approx(metrics.feature_fid(reference.train.x[pick], reference.test.x,
                                                           reference.classifier))
    noise = torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert quality.measure(noise, None, reference)["fid"] > 5 * row["fid"]
    assert row["accuracy"] > 0.95 and row["entropy"] > 2.29


def test_border_speckle_counts_lit_frame_pixels_only():
    images = -torch.ones(2, 1, 10, 10)
    images[:, :, 3:7, 3:7] = 1.0  # a bright centre: not counted
    assert quality.border_speckle(images) == 0.0
    images[0, 0, 0, 0] = 0.0  # one lit pixel in the 3-pixel frame of 100 − 16 = 84 per image
    images[1, 0, 9, 5] = -0.6  # darker than the threshold: not counted
    assert quality.border_speckle(images) == pytest.approx(1 / 168)
    assert quality.border_speckle(images, width=1) == pytest.approx(1 / 72)
    with pytest.raises(ValueError, match=r"H, W > 2·width = 10"):
        quality.border_speckle(images, width=5)
