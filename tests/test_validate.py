"""diffviz.validate: the argument checks every public entry point uses, and the rule that
``sample`` checks once and then runs its steps unchecked."""
import numpy as np
import pytest
import torch

import diffviz as dv
from diffviz import diffusion, validate


def test_positive_int_accepts_numpy_ints_and_refuses_bools_floats_and_zero():
    assert validate.positive_int("n", np.int64(3)) == 3 and type(validate.positive_int("n", np.int64(3))) is int
    for bad, error in ((True, TypeError), (2.0, TypeError), ("2", TypeError), (0, ValueError), (-1, ValueError)):
        with pytest.raises(error, match="n must be a positive int"):
            validate.positive_int("n", bad)


def test_finite_number_bounds_and_message():
    assert validate.finite_number("w", np.float32(0.5), low=0, high=1) == 0.5
    assert validate.finite_number("w", 0, low=0) == 0.0
    with pytest.raises(ValueError, match=r"w must be a finite number in \(0, 1\], got 0.0"):
        validate.finite_number("w", 0, low=0, low_open=True, high=1)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match=r"in \(-inf, inf\)"):
            validate.finite_number("w", bad)
    with pytest.raises(TypeError, match="w must be a number, got True"):
        validate.finite_number("w", True)


def test_num_steps_above_T_is_an_error_never_a_clamp():
    assert validate.check_num_steps(None, 50) == 50 and validate.check_num_steps(np.int16(50), 50) == 50
    with pytest.raises(ValueError, match=r"in \[1, 50\] \(the schedule has T = 50 timesteps\), got 51"):
        validate.check_num_steps(51, 50)


def test_check_bool_and_one_of():
    assert validate.check_bool("record", False) is False
    with pytest.raises(TypeError, match="record must be True or False, got 1"):
        validate.check_bool("record", 1)
    assert validate.one_of("sampler", "ddim", ("ddpm", "ddim")) == "ddim"
    with pytest.raises(ValueError, match="sampler must be one of 'ddpm', 'ddim', got 3"):
        validate.one_of("sampler", 3, ("ddpm", "ddim"))


def test_float_tensor_refuses_integer_images_with_a_conversion_hint():
    with pytest.raises(TypeError, match=r"dtype torch.uint8; .*x0.float\(\) / 127.5 - 1"):
        validate.float_tensor("x0", torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"got list; convert with torch.as_tensor"):
        validate.float_tensor("x0", [1.0, 2.0])
    x = torch.zeros(2, dtype=torch.float16)
    assert validate.float_tensor("x0", x) is x


def test_check_timesteps_forms_and_the_value_switch():
    assert validate.check_timesteps(np.int32(4), 10, 2) == 4
    t = validate.check_timesteps([1, 2], 10, 2)
    assert torch.equal(t, torch.tensor([1, 2]))
    out_of_range = torch.tensor([0, 10])
    assert validate.check_timesteps(out_of_range, 10, 2, check_values=False) is out_of_range  # not read
    with pytest.raises(ValueError, match=r"t out of range: got values in \[0, 10\], allowed \[0, 9\]"):
        validate.check_timesteps(out_of_range, 10, 2)
    with pytest.raises(ValueError, match="out of range"):  # NaN is no timestep
        validate.check_timesteps(torch.tensor([float("nan"), 1.0]), 10, 2, allow_float=True)
    assert validate.check_timesteps(-1, 10, 2, low=-1, high=8, name="t_prev") == -1
    with pytest.raises(ValueError, match=r"t_prev=9 is out of range: timesteps are 0-based in \[-1, 8\]"):
        validate.check_timesteps(9, 10, 2, low=-1, high=8, name="t_prev")


def test_check_labels_forms():
    assert validate.check_labels(None, 3, 10) is None
    assert validate.check_labels(np.uint8(7), 3, 10) == 7
    assert validate.check_labels(np.array([1, 2, 3]), 3, 10).dtype == torch.int64
    with pytest.raises(TypeError, match=r"y must be an int or a \(3,\) integer tensor of class labels in \[0, 9\], got 3.7"):
        validate.check_labels(3.7, 3, 10)
    with pytest.raises(ValueError, match=r"y=10 is out of range: class labels are ints in \[0, 9\]"):
        validate.check_labels(10, 3, 10)
    assert validate.check_labels(torch.tensor([0, 99, 0]), 3, 10, check_values=False).tolist() == [0, 99, 0]


def test_resolve_device():
    assert validate.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be 'auto'"):
        validate.resolve_device("gpu0")


def test_sample_checks_once_then_runs_the_steps_unchecked(monkeypatch):
    """Inside the loop nothing re-checks t: no call to diffusion.check_timesteps (the public steps'
    check), and the model's own value checks are off while it runs, restored afterwards."""
    from diffviz.toy import ToyConfig, ToyMLP

    model = ToyMLP(ToyConfig(num_timesteps=100))
    seen, calls = [], []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x, t, y=None: seen.append(model.check_values) or forward(x, t, y))
    check = diffusion.check_timesteps
    monkeypatch.setattr(diffusion, "check_timesteps", lambda *a, **k: calls.append(a) or check(*a, **k))
    schedule = dv.linear_schedule(100)
    for sampler in ("ddpm", "ddim"):
        dv.sample(model, schedule, (3, 2), sampler=sampler, num_steps=10, eta=0.5, clip_sample=True)
    assert calls == [] and seen == [False] * 20 and model.check_values is True
    dv.q_sample(schedule, torch.zeros(3, 2), 5)  # the public functions do check
    assert len(calls) == 1


def test_model_checks_are_restored_when_sampling_fails():
    from diffviz.toy import ToyConfig, ToyMLP

    model = ToyMLP(ToyConfig())

    def broken(x, t, y=None):
        raise RuntimeError("boom")

    model.forward = broken
    with pytest.raises(RuntimeError, match="boom"):
        dv.sample(model, dv.linear_schedule(100), (2, 2), num_steps=3)
    assert model.check_values is True and model.training


def test_label_tensor_repeats_an_int_broadcasts_a_scalar_and_keeps_a_batch():
    from diffviz.validate import label_tensor
    assert label_tensor(None, 3) is None
    assert label_tensor(7, 3).tolist() == [7, 7, 7] and label_tensor(7, 3).dtype == torch.long
    assert label_tensor(torch.tensor(2), 4).tolist() == [2, 2, 2, 2]
    y = torch.tensor([0, 5, 9])
    assert torch.equal(label_tensor(y, 3), y)
