"""diffviz.losses: L_simple, and L_hybrid = L_simple + λ·T·L_t with the mean's gradient stopped in
the bound (Nichol & Dhariwal 2021, Sec. 3.1), checked against vlb_term and by hand; a learn_sigma
model trains, saves and samples end to end (library and CLI)."""
import pytest
import torch
import torch.nn.functional as F

import diffviz as dv
from diffviz.cli import main
from diffviz.losses import diffusion_loss


@pytest.fixture(autouse=True, scope="module")
def restore_threads():
    threads = torch.get_num_threads()  # the CLI test sets 1 thread
    yield
    torch.set_num_threads(threads)


def batch(seed=0, shape=(6, 1, 4, 4), T=50):
    g = torch.Generator().manual_seed(seed)
    schedule = dv.linear_schedule(T)
    x0 = torch.randint(0, 256, shape, generator=g).float() / 127.5 - 1  # on the 256 levels of [−1, 1]
    noise = torch.randn(shape, generator=g)
    t = torch.tensor([0, 1, 5, 20, 37, 49])[: shape[0]]
    x_t = dv.q_sample(schedule, x0, t, noise)
    eps = noise + 0.3 * torch.randn(shape, generator=g)
    v = torch.rand(shape, generator=g) * 2 - 1
    return schedule, x0, noise, t, x_t, eps, v


def test_without_v_the_loss_is_l_simple():
    schedule, x0, noise, t, x_t, eps, _ = batch()
    assert torch.allclose(diffusion_loss(schedule, eps, noise, x0, x_t, t), F.mse_loss(eps, noise))


def test_hybrid_is_l_simple_plus_lambda_T_times_the_mean_bound_term():
    schedule, x0, noise, t, x_t, eps, v = batch()
    got = diffusion_loss(schedule, torch.cat([eps, v], 1), noise, x0, x_t, t, vlb_weight=0.01)
    terms = dv.vlb_term(schedule, x0, x_t, t, eps, "learned_range", v)  # (B,) bits/dim, the public function
    expected = F.mse_loss(eps, noise) + 0.01 * 50 * terms.mean()
    assert torch.allclose(got, expected.float(), rtol=1e-5), (got, expected)


def test_the_bound_trains_only_v_and_l_simple_only_eps():
    schedule, x0, noise, t, x_t, eps, v = batch()
    output = torch.cat([eps, v], 1).requires_grad_(True)
    diffusion_loss(schedule, output, noise, x0, x_t, t).backward()
    grad_eps, grad_v = output.grad.chunk(2, 1)
    assert torch.allclose(grad_eps, 2 * (eps - noise) / eps.numel(), atol=1e-7)  # ∂ mean‖ε̂ − ε‖² only
    v_only = v.clone().requires_grad_(True)
    (0.001 * 50 * dv.vlb_term(schedule, x0, x_t, t, eps, "learned_range", v_only).mean()).backward()
    assert grad_v.abs().sum() > 0 and torch.allclose(grad_v, v_only.grad.float(), atol=1e-8)


def test_min_snr_weights_apply_to_the_eps_error_only():
    schedule, x0, noise, t, x_t, eps, v = batch()
    weights = torch.linspace(0.1, 1.0, 50)
    plain = diffusion_loss(schedule, torch.cat([eps, v], 1), noise, x0, x_t, t)
    weighted = diffusion_loss(schedule, torch.cat([eps, v], 1), noise, x0, x_t, t, weights=weights)
    per_example = (eps - noise).pow(2).flatten(1).mean(1)
    assert torch.allclose(plain - weighted, per_example.mean() - (weights[t] * per_example).mean(), atol=1e-6)


def test_a_learn_sigma_toy_model_trains_saves_and_samples(tmp_path):
    config = dv.TrainConfig(dataset="gaussian_mixture", num_data=512, model="toy", learn_sigma=True, steps=30,
                            batch_size=64, lr=3e-3, warmup_steps=5, num_timesteps=100, log_every=10,
                            checkpoint_dir=str(tmp_path / "run"))
    trainer = dv.train(config, progress=False)
    assert trainer.model.config.learn_sigma and all(torch.isfinite(torch.tensor(trainer.losses)))
    model, schedule, _ = dv.load_checkpoint(tmp_path / "run")
    assert model.config.learn_sigma and model(torch.zeros(3, 2), 4).shape == (3, 4)
    out = dv.sample(model, schedule, (16, 2), num_steps=10, variance="learned_range",
                    generator=torch.Generator().manual_seed(0))
    assert out.sample.shape == (16, 2) and torch.isfinite(out.sample).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(model_overrides={"learn_sigma": True}), r"set learn_sigma on the TrainConfig"),
    (dict(learn_sigma=True, fast=True), r"fast=True cannot train learn_sigma models"),
    (dict(vlb_weight=-1.0), r"vlb_weight"),
    (dict(learn_sigma=1), r"learn_sigma must be True or False"),
])
def test_train_config_errors_name_the_problem(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        dv.TrainConfig(**kwargs)


def test_cli_trains_with_learn_sigma_and_samples_with_learned_range(tmp_path, capsys):
    root = tmp_path / "run"
    assert main(["train", "--dataset", "moons", "--model", "toy", "--learn-sigma", "--steps", "3", "--timesteps", "50",
                 "--threads", "1", "--no-progress", "--checkpoint-dir", str(root)]) == 0
    out = tmp_path / "s.npy"
    assert main(["sample", "--checkpoint", str(root), "--sampler", "ddpm", "--steps", "10", "--variance",
                 "learned_range", "--out", str(out), "--n", "4", "--threads", "1"]) == 0
    assert out.is_file()
    assert main(["sample", "--checkpoint", str(root), "--variance", "learned_range", "--out", str(out)]) == 2
    assert "needs --sampler ddpm" in capsys.readouterr().err


# ----- loss_type: the ε error as l2, l1 or huber (smooth L1, beta = 1; Annotated Diffusion) -----

def huber_by_hand(e):
    """½e² where |e| < 1, else |e| − ½, element by element, in float64 Python."""
    return [0.5 * x * x if abs(x) < 1 else abs(x) - 0.5 for x in e.double().flatten().tolist()]


def test_loss_types_equal_computations_by_hand():
    schedule, x0, noise, t, x_t, _, _ = batch()
    g = torch.Generator().manual_seed(5)
    error = torch.randn(noise.shape, generator=g) * torch.tensor([0.1, 0.5, 0.9, 1.5, 3.0, 10.0])[:, None, None, None]
    eps = noise + error  # small errors (quadratic zone) and large ones (linear zone)
    B = noise.shape[0]
    for loss_type, per_element in [("l2", lambda e: [x * x for x in e.double().flatten().tolist()]),
                                   ("l1", lambda e: [abs(x) for x in e.double().flatten().tolist()]),
                                   ("huber", huber_by_hand)]:
        values = torch.tensor(per_element(eps - noise), dtype=torch.float64).reshape(B, -1)
        got = diffusion_loss(schedule, eps, noise, x0, x_t, t, loss_type=loss_type)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), values.mean(1).mean(), rtol=1e-5, atol=1e-7)
    assert torch.equal(diffusion_loss(schedule, eps, noise, x0, x_t, t), diffusion_loss(schedule, eps, noise, x0, x_t, t,
                                                                                          loss_type="l2"))


def test_huber_is_quadratic_for_small_errors_and_linear_for_large():
    schedule, x0, noise, t, x_t, _, _ = batch()
    for size, expected in [(0.25, 0.5 * 0.25 ** 2), (0.99, 0.5 * 0.99 ** 2), (1.0, 0.5), (4.0, 3.5), (-7.0, 6.5)]:
        got = diffusion_loss(schedule, noise + size, noise, x0, x_t, t, loss_type="huber")
        assert got.item() == pytest.approx(expected, rel=1e-5)


def test_loss_type_keeps_min_snr_weights_and_the_vlb_term():
    schedule, x0, noise, t, x_t, eps, v = batch()
    weights = torch.linspace(0.1, 1.0, 50)
    terms = dv.vlb_term(schedule, x0, x_t, t, eps, "learned_range", v)  # (B,) bits/dim
    e = (eps - noise).double().flatten(1)
    per_example = {"l1": e.abs().mean(1), "huber": torch.where(e.abs() < 1, 0.5 * e ** 2, e.abs() - 0.5).mean(1)}
    for loss_type, errors in per_example.items():
        got = diffusion_loss(schedule, torch.cat([eps, v], 1), noise, x0, x_t, t, weights=weights, vlb_weight=0.01,
                             loss_type=loss_type)
        expected = (weights[t].double() * errors).mean() + 0.01 * 50 * terms.mean()
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"unknown loss_type 'l3'; use one of l2, l1, huber"):
        diffusion_loss(schedule, eps, noise, x0, x_t, t, loss_type="l3")


def test_train_config_rejects_unknown_loss_types_naming_the_choices():
    assert dv.TrainConfig().loss_type == "l2"
    with pytest.raises(ValueError, match=r"unknown loss_type 'mse'; use one of l2, l1, huber"):
        dv.TrainConfig(loss_type="mse")


def test_the_cli_loss_type_reaches_the_run_config(tmp_path, capsys):
    from diffviz.checkpoint import checkpoint_config
    from diffviz.cli import build_parser
    from diffviz.losses import LOSS_TYPES

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--loss-type", "l3"])
    assert "choose from " + ", ".join(repr(name) for name in LOSS_TYPES) in capsys.readouterr().err
    root = tmp_path / "run"
    assert main(["train", "--dataset", "moons", "--model", "toy", "--loss-type", "huber", "--steps", "3",
                 "--timesteps", "50", "--threads", "1", "--no-progress", "--checkpoint-dir", str(root)]) == 0
    assert checkpoint_config(root)["train_config"]["loss_type"] == "huber"
