"""Classifier guidance (diffviz.guidance, sample(..., classifier=...)) and the noise-aware classifier.

The exact test: for a Gaussian mixture the exact noisy classifier is the posterior over components,
p(k | x_t) = r_k(x_t), and Bayes gives ∇ log p(x_t | y) = ∇ log p(x_t) + ∇ log p(y | x_t). So the
unconditional ε* guided with s = 1 must be the ε* of component y alone, at every x_t and t.
"""
import math

import pytest
import torch

from diffviz import load_pretrained, metrics
from diffviz.classifier import NoisyClassifier, NoisyClassifierConfig, accuracy_at, train_noisy_classifier
from diffviz.data import load_dataset
from diffviz.guidance import classifier_gradient, make_guidance
from diffviz.oracle import GaussianMixtureDenoiser
from diffviz.sampling import sample
from diffviz.schedules import linear_schedule

SCHEDULE = linear_schedule(1000)
MEANS = [[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
STDS = [0.5, 0.7, 0.4]
WEIGHTS = [0.5, 0.3, 0.2]


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixtureDenoiser(MEANS, STDS, WEIGHTS, SCHEDULE)


def component(k):
    return GaussianMixtureDenoiser([MEANS[k]], STDS[k], None, SCHEDULE)


# ----------------------------------------------------------------------------- the exact test
@pytest.mark.parametrize("t", [0, 10, 100, 400, 999])
def test_guided_eps_at_scale_one_is_the_eps_of_the_target_component(mixture, t):
    g = torch.Generator().manual_seed(t)
    x = 3 * torch.randn(60, 2, generator=g, dtype=torch.float64)  # points everywhere, also far from any mean
    y = torch.arange(60) % 3
    t_batch = torch.full((60,), t)
    guidance = make_guidance(mixture.log_responsibilities, 1.0, y, 60, "cpu")
    guided = guidance.guide(SCHEDULE, x, t_batch, mixture(x, t_batch))
    target = torch.stack([component(k)(x, t_batch) for k in range(3)])[y, torch.arange(60)]  # (60, 2)
    assert (guided - target).abs().max().item() < 1e-6


def test_classifier_gradient_matches_the_closed_form(mixture):
    """∇ log r_y = −(x − √ᾱ μ_y)/v_y + Σ_k r_k (x − √ᾱ μ_k)/v_k, computed by hand in float64."""
    x = 2 * torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y, t = torch.arange(40) % 3, 300
    alpha_bar = SCHEDULE.alphas_cumprod[t]
    centres = alpha_bar.sqrt() * torch.tensor(MEANS, dtype=torch.float64)  # (K, 2)
    var = alpha_bar * torch.tensor(STDS, dtype=torch.float64) ** 2 + 1 - alpha_bar  # (K,)
    r = mixture.responsibilities(x, torch.full((40,), t))  # (B, K)
    terms = (x[:, None] - centres) / var[:, None]  # (B, K, 2)
    expected = -terms[torch.arange(40), y] + (r[:, :, None] * terms).sum(1)
    got = classifier_gradient(mixture.log_responsibilities, x, t, y)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert torch.allclose(got, expected, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_guided_sampling_follows_the_component_chain(mixture, sampler):
    """Same noise, scale 1: the guided chain is the chain of component y's own exact denoiser."""
    kwargs = dict(sampler=sampler, num_steps=50, record=False)
    guided = sample(mixture, SCHEDULE, (200, 2), y=2, classifier=mixture.log_responsibilities,
                    classifier_scale=1, generator=torch.Generator().manual_seed(3), **kwargs)
    alone = sample(component(2), SCHEDULE, (200, 2), generator=torch.Generator().manual_seed(3), **kwargs)
    assert guided.classifier_scale == 1.0 and alone.classifier_scale is None
    assert (guided.sample - alone.sample).abs().max().item() < 1e-3


def test_ddpm_with_scale_one_samples_the_target_component(mixture):
    n, k = 2000, 1
    out = sample(mixture, SCHEDULE, (n, 2), y=k, classifier=mixture.log_responsibilities, classifier_scale=1.0,
                 generator=torch.Generator().manual_seed(0), record=False).sample.double()
    nearest = torch.cdist(out, torch.tensor(MEANS, dtype=torch.float64)).argmin(1)
    assert (nearest == k).double().mean().item() >= 0.995
    mean, std = out.mean(0), out.std(0)
    assert (mean - torch.tensor(MEANS[k], dtype=torch.float64)).abs().max().item() < 5 * STDS[k] / math.sqrt(n)
    assert (std / STDS[k] - 1).abs().max().item() < 0.08  # the s.e. of a std estimate is ≈ 1/√(2n) ≈ 1.6%


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_scale_zero_is_unguided_sampling_bit_for_bit(mixture, sampler):
    kwargs = dict(sampler=sampler, num_steps=30, eta=1.0 if sampler == "ddim" else 0.0)
    unguided = sample(mixture, SCHEDULE, (64, 2), generator=torch.Generator().manual_seed(5), **kwargs)
    zero = sample(mixture, SCHEDULE, (64, 2), y=0, classifier=mixture.log_responsibilities, classifier_scale=0,
                  generator=torch.Generator().manual_seed(5), **kwargs)
    assert torch.equal(unguided.sample, zero.sample) and torch.equal(unguided.eps, zero.eps)
    assert zero.classifier_scale == 0.0


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(classifier="logits", y=0), TypeError, "classifier must be callable"),
    (dict(classifier_scale=1.0, y=0), ValueError, "classifier_scale=1.0 needs a classifier"),
    (dict(classifier_scale=-1.0, y=0, classifier=True), ValueError, "classifier_scale"),
    (dict(classifier_scale=float("nan"), y=0, classifier=True), ValueError, "classifier_scale"),
    (dict(classifier=True), ValueError, "classifier guidance needs y"),
    (dict(classifier=True, y=3), ValueError, "y holds label 3 but the classifier returns K = 3"),
    (dict(classifier=True, y=-1), ValueError, "y=-1 is out of range"),
])
def test_bad_classifier_arguments_are_refused(mixture, kwargs, error, match):
    if kwargs.get("classifier") is True:
        kwargs["classifier"] = mixture.log_responsibilities
    with pytest.raises(error, match=match):
        sample(mixture, SCHEDULE, (4, 2), num_steps=2, **kwargs)


def test_classifier_gradient_refuses_bad_inputs(mixture):
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="y must be the target class"):
        classifier_gradient(mixture.log_responsibilities, x, 5, None)
    with pytest.raises(ValueError, match=r"must return logits of shape \(3, K\), got \(3,\)"):
        classifier_gradient(lambda x_t, t: x_t.sum(1), x, 5, 0)
    with pytest.raises(TypeError, match="x_t must be a floating-point tensor"):
        classifier_gradient(mixture.log_responsibilities, torch.zeros(3, 2, dtype=torch.long), 5, 0)
    with pytest.raises(ValueError, match="y=10 is out of range"):
        classifier_gradient(NoisyClassifier(), torch.zeros(1, 1, 28, 28), 5, 10)


def test_a_noisy_classifier_config_range_is_checked_before_sampling(mixture):
    with pytest.raises(ValueError, match=r"y=10 is out of range: class labels are ints in \[0, 9\]"):
        sample(mixture, SCHEDULE, (1, 1, 28, 28), num_steps=2, y=10, classifier=NoisyClassifier())


# ----------------------------------------------------------------------------- the noisy classifier
def test_noisy_classifier_shapes_and_size():
    model = NoisyClassifier()
    assert 100_000 <= sum(p.numel() for p in model.parameters()) <= 300_000
    x = torch.randn(4, 1, 28, 28)
    assert model(x, torch.tensor([0, 10, 500, 999])).shape == (4, 10)
    assert model(x, 7).shape == (4, 10)
    grad = classifier_gradient(model, x, 500, torch.tensor([0, 1, 2, 3]))
    assert grad.shape == x.shape and torch.isfinite(grad).all()
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 1, 28, 28\)"):
        model(torch.randn(4, 1, 32, 32), 0)
    with pytest.raises(ValueError, match="t=1000 is out of range"):
        model(x, 1000)
    with pytest.raises(ValueError, match="channels must be"):
        NoisyClassifierConfig(channels=(30, 64))


def test_training_is_deterministic_with_a_seed():
    data = load_dataset("mnist-5k", split="train")
    x, y = data.x[:32], data.y[:32]
    runs = []
    for _ in range(2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = NoisyClassifier()
        losses = train_noisy_classifier(model, SCHEDULE, x, y, steps=3, batch_size=8,
                                        generator=torch.Generator().manual_seed(1))
        runs.append((losses, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


@pytest.fixture(scope="module")
def noisy_classifier():
    return load_pretrained("mnist-noisy-classifier")


def test_the_shipped_classifier_is_accurate_on_clean_digits_and_guesses_at_pure_noise(noisy_classifier):
    model, schedule, meta = noisy_classifier
    assert schedule.num_timesteps == 1000 and "licence" in meta and "test_accuracy_by_t" in meta
    test = load_dataset("mnist-5k", split="test")
    x, y = test.x[:200], test.y[:200]
    g = torch.Generator().manual_seed(0)
    assert accuracy_at(model, schedule, x, y, 0, g) >= 0.9
    assert accuracy_at(model, schedule, x, y, 999, g) <= 0.25  # chance is 0.1


def test_classifier_guidance_steers_the_shipped_digit_model(noisy_classifier):
    classifier = noisy_classifier.model
    unet, schedule, _ = load_pretrained("mnist")
    target = torch.full((20,), 3)
    runs = {}
    for scale in (0.0, 3.0):
        out = sample(unet, schedule, (20, 1, 28, 28), "ddim", num_steps=20, y=target, classifier=classifier,
                     classifier_scale=scale, generator=torch.Generator().manual_seed(0), record=False)
        runs[scale] = metrics.class_accuracy(out.sample.clamp(-1, 1), target)
    assert runs[3.0] >= runs[0.0] + 0.3, runs
