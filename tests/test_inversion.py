"""DDIM inversion (diffviz.inversion) against an independent float64 loop, the sampler it inverts,
and the round trip x_0 → x_T → x_0 with the exact mixture denoiser; slerp against its formula."""
import math

import pytest
import torch

import diffviz as dv

SCHED = dv.linear_schedule(1000)
MEANS = torch.tensor([[1.0, 1.0], [-1.0, -0.5], [0.5, -1.2]])
ORACLE = dv.GaussianMixtureDenoiser(MEANS, 0.3, schedule=SCHED)
X0 = ORACLE.sample_data(64, generator=torch.Generator().manual_seed(0)).float()  # (64, 2)


def round_trip_error(num_steps, x0=X0, **kwargs):
    inv = dv.ddim_invert(ORACLE, SCHED, x0, num_steps=num_steps, **kwargs)
    back = dv.sample(ORACLE, SCHED, tuple(x0.shape), sampler="ddim", eta=0.0, num_steps=num_steps,
                     x_T=inv.x_T, record=False, **kwargs).sample
    return (back - x0).pow(2).mean().sqrt().item(), (back - x0).norm(dim=1).max().item()


def test_round_trip_error_falls_with_the_number_of_steps():
    errors = {K: round_trip_error(K) for K in (10, 50, 200)}
    print("DDIM inversion round trip (rms, max) vs K:", {K: f"{r:.2e}, {m:.2e}" for K, (r, m) in errors.items()})
    rms = [errors[K][0] for K in (10, 50, 200)]
    assert rms[0] > rms[1] > rms[2]
    assert rms[2] < 0.02 and errors[200][1] < 0.1  # data spread ≈ 1, components s = 0.3


def reference_inversion(eps_fn, x0, timesteps):
    """x_t = √(ᾱ_t/ᾱ_p)·x_p + (√(1 − ᾱ_t) − √(ᾱ_t (1 − ᾱ_p)/ᾱ_p))·ε̂(x_p, t), ᾱ_p = 1 at the start,
    in float64: Eq. 12 of Song et al. 2020 (σ = 0) solved for x_t, written independently."""
    x, a_p = x0.double(), 1.0
    for t in timesteps:
        a_t = float(SCHED.alphas_cumprod[t])
        eps = eps_fn(x, torch.full((x.shape[0],), t)).double()
        x = math.sqrt(a_t / a_p) * x + (math.sqrt(1 - a_t) - math.sqrt(a_t * (1 - a_p) / a_p)) * eps
        a_p = a_t
    return x


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_matches_an_independent_loop_and_visits_the_samplers_timesteps(spacing):
    inv = dv.ddim_invert(ORACLE, SCHED, X0.double(), num_steps=20, timestep_spacing=spacing, record=True)
    assert torch.equal(inv.timesteps, dv.sampling_timesteps(1000, 20, spacing).flip(0))
    torch.testing.assert_close(inv.x_T, reference_inversion(ORACLE, X0, inv.timesteps.tolist()), rtol=1e-10, atol=1e-10)
    assert inv.x_T.dtype == torch.float64


def drift(x, t):
    """An ε̂ that depends on t only: then ε̂(x_{t_prev}, t) = ε̂(x_t, t) and inversion is exact."""
    return torch.sin(t.double() / 37.0)[:, None].to(x.dtype) * torch.tensor([1.0, -2.0], dtype=x.dtype)


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_exact_when_eps_does_not_depend_on_x_and_the_record_mirrors_the_sampler(spacing):
    inv = dv.ddim_invert(drift, SCHED, X0, num_steps=25, timestep_spacing=spacing, record=True)
    traj = dv.sample(drift, SCHED, tuple(X0.shape), sampler="ddim", num_steps=25, x_T=inv.x_T,
                     timestep_spacing=spacing)
    # exact up to float32 rounding (sample() runs in float32), magnified by 1/√ᾱ ≈ 157 at t = 999
    torch.testing.assert_close(traj.sample, X0, rtol=0, atol=2e-4)
    assert inv.x_t.shape == (25, 64, 2) and inv.eps.shape == (25, 64, 2) and torch.equal(inv.x_t[-1], inv.x_T)
    assert torch.equal(traj.timesteps, inv.timesteps.flip(0))
    torch.testing.assert_close(traj.x_t, inv.x_t.flip(0), rtol=0, atol=2e-4)  # the sampler's inputs, reversed
    torch.testing.assert_close(traj.eps, inv.eps.flip(0))


def test_deterministic_and_no_global_randomness():
    state = torch.random.get_rng_state()
    a = dv.ddim_invert(ORACLE, SCHED, X0, num_steps=10)
    b = dv.ddim_invert(ORACLE, SCHED, X0, num_steps=10)
    assert torch.equal(a.x_T, b.x_T) and a.x_t is None and a.eps is None
    assert torch.equal(torch.random.get_rng_state(), state)


def conditional(x, t, y=None):
    """A toy conditional ε-model: a class-dependent offset, plus a part that depends on x."""
    offset = 0.0 if y is None else 0.3 * y.to(x.dtype)[:, None]
    return 0.2 * x + offset


def test_guidance_uses_the_samplers_combination():
    y, w = torch.tensor([0, 1, 2, 1] * 16), 3.0
    guided = dv.ddim_invert(conditional, SCHED, X0, num_steps=10, y=y, guidance_scale=w).x_T
    by_hand = lambda x, t: conditional(x, t) + w * (conditional(x, t, y) - conditional(x, t))
    torch.testing.assert_close(guided, dv.ddim_invert(by_hand, SCHED, X0, num_steps=10).x_T)
    assert torch.equal(dv.ddim_invert(conditional, SCHED, X0, num_steps=10, y=1).x_T,
                       dv.ddim_invert(conditional, SCHED, X0, num_steps=10, y=torch.ones(64, dtype=torch.long)).x_T)


def test_bad_inputs():
    cases = [
        (dict(x0=torch.tensor(1.0)), ValueError, r"x0 must have at least 1 dimension"),
        (dict(x0=torch.zeros(0, 2)), ValueError, r"x0 must hold at least one sample"),
        (dict(x0=torch.zeros(4, 2, dtype=torch.long)), TypeError, "x0 must be a floating-point tensor"),
        (dict(x0=torch.full((4, 2), float("nan"))), ValueError, "x0 holds NaN"),
        (dict(x0=torch.zeros(4, 3)), ValueError, r"x_t must have shape \(B, 2\)"),  # the denoiser's own check
        (dict(num_steps=1001), ValueError, r"num_steps must be an int in \[1, 1000\]"),
        (dict(num_steps=0), ValueError, r"num_steps must be an int in \[1, 1000\]"),
        (dict(timestep_spacing="middle"), ValueError, "unknown timestep_spacing 'middle'"),
        (dict(guidance_scale=2.0), ValueError, "guidance_scale needs class labels y"),
        (dict(y=torch.tensor([0, 1])), ValueError, r"y must have shape \(4,\)"),
        (dict(record="yes"), TypeError, "record must be True or False"),
    ]
    for kwargs, error, message in cases:
        kwargs = {"x0": torch.zeros(4, 2), **kwargs}
        with pytest.raises(error, match=message):
            dv.ddim_invert(ORACLE, SCHED, **kwargs)
    with pytest.raises(TypeError, match="eps_model must be callable"):
        dv.ddim_invert(None, SCHED, X0)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        dv.ddim_invert(ORACLE, "linear", X0)


def test_slerp_matches_the_formula_and_keeps_endpoints():
    angles = torch.tensor([0.3, 1.0, math.pi / 2, 2.5], dtype=torch.float64)  # (4,) angle between a and b
    a = torch.stack([torch.ones(4), torch.zeros(4)], 1).double() * 2.0  # (4, 2), ‖a‖ = 2
    b = torch.stack([angles.cos(), angles.sin()], 1) * 0.5  # ‖b‖ = 0.5
    for w in (0.0, 0.25, 0.5, 0.9, 1.0):
        got = dv.slerp(a, b, w)
        coef_a, coef_b = torch.sin((1 - w) * angles) / angles.sin(), torch.sin(w * angles) / angles.sin()
        torch.testing.assert_close(got, coef_a[:, None] * a + coef_b[:, None] * b, rtol=1e-12, atol=1e-12)
    x, y = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    assert torch.equal(dv.slerp(x, y, 0), x) and torch.equal(dv.slerp(x, y, 1), y)


def test_slerp_keeps_the_norm_where_lerp_shrinks_it():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 3, 8, 8, generator=g), torch.randn(6, 3, 8, 8, generator=g)
    a, b = a / a.flatten(1).norm(dim=1).view(-1, 1, 1, 1), b / b.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    for w in (0.1, 0.5, 0.8):
        norms = dv.slerp(a, b, w).flatten(1).norm(dim=1)
        torch.testing.assert_close(norms, torch.ones(6), rtol=0, atol=1e-6)
        assert ((torch.lerp(a, b, w)).flatten(1).norm(dim=1) < 0.95).all()  # nearly orthogonal: lerp shrinks


def test_slerp_falls_back_to_lerp_when_parallel_or_opposite():
    a = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]])
    b = torch.tensor([[2.0, 4.0], [-1.0, -2.0], [1.0, 0.0]])  # parallel, opposite, a zero vector
    out = dv.slerp(a, b, 0.25)
    torch.testing.assert_close(out, 0.75 * a + 0.25 * b)
    with pytest.raises(ValueError, match=r"b must have the shape of a \(3, 2\)"):
        dv.slerp(a, b[:2], 0.5)
    with pytest.raises(ValueError, match=r"weight must be a finite number in \[0, 1\]"):
        dv.slerp(a, b, 1.5)
    with pytest.raises(ValueError, match="a must have at least 2 dimension"):
        dv.slerp(a[0], b[0], 0.5)


def test_round_trip_with_the_shipped_trained_model():
    model, schedule, _ = dv.load_pretrained()
    digits = dv.load_dataset("mnist-5k", split="test", n=4, seed=0)
    x0, y = digits.x[:2], digits.y[:2]  # (2, 1, 28, 28) in [-1, 1]
    errors = []
    for K in (10, 25):
        inv = dv.ddim_invert(model, schedule, x0, num_steps=K, y=y)
        back = dv.sample(model, schedule, x0.shape, sampler="ddim", num_steps=K, x_T=inv.x_T, y=y,
                         record=False).sample
        errors.append((back - x0).pow(2).mean().sqrt().item())
    assert errors[1] < errors[0] < 0.5, errors
