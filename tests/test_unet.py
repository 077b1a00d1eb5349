"""The U-Net: shapes for many sizes, conditioning and the null class, presets, input checks."""
import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from diffviz.unet import PRESETS, UNet, UNetConfig, num_parameters, preset, shape_tour, timestep_embedding


def small_config(**overrides):
    kwargs = dict(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                  attention_resolutions=(4,), groups=4)
    return UNetConfig(**{**kwargs, **overrides})


def randomized(model, seed=0):
    """Give every parameter random values (the zero-initialised output layer would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
def test_output_shape_matches_input(channels, size):
    mults = (1, 2, 2, 2) if size == 64 else (1, 2, 2)
    config = small_config(in_channels=channels, image_size=size, channel_mults=mults,
                          attention_resolutions=(math.ceil(size / 4),))
    model = UNet(config)
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x, torch.tensor([0, 999]))
    assert out.shape == x.shape and out.dtype == torch.float32


def test_28x28_with_three_and_four_levels_handles_odd_sizes():
    for mults, sizes in [((1, 2, 2), [28, 14, 7]), ((1, 2, 2, 2), [28, 14, 7, 4])]:
        config = small_config(image_size=28, channel_mults=mults, attention_resolutions=(7,))
        assert config.level_sizes() == sizes
        model = randomized(UNet(config))
        tour = shape_tour(model, torch.zeros(1, 1, 28, 28), 10)
        spatial = sorted({shape[-1] for _, shape in tour})
        assert spatial == sorted(sizes)
        assert tour[0][0].startswith("conv_in") and tour[-1] == ("out (Sequential)", (1, 1, 28, 28))


def test_attention_is_placed_at_the_requested_resolutions():
    model = UNet(small_config(image_size=16, channel_mults=(1, 2, 2), attention_resolutions=(8,)))
    attended = [type(b.attn).__name__ for b in model.down if hasattr(b, "attn")]
    assert attended == ["Identity", "SelfAttention", "Identity"]  # sizes 16, 8, 4


def test_class_conditional_and_null_class():
    model = randomized(UNet(small_config(num_classes=10)))
    assert model.class_embed.num_embeddings == 11  # 10 classes + the learned null class (row 10)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 500])
    with torch.no_grad():
        null = model(x, t, None)
        assert torch.equal(null, model(x, t, torch.full((3,), 10)))
        a, b = model(x, t, torch.tensor([1, 1, 1])), model(x, t, torch.tensor([2, 2, 2]))
    assert not torch.allclose(a, b) and not torch.allclose(a, null)
    assert torch.equal(a, model(x, t, 1))  # an int label is broadcast


def test_int_t_is_broadcast_and_float_t_accepted():
    model = randomized(UNet(small_config()))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        expected = model(x, torch.tensor([7, 7]))
        assert torch.equal(model(x, 7), expected)
        assert torch.equal(model(x, torch.tensor(7)), expected)
        assert torch.allclose(model(x, torch.tensor([7.0, 7.0])), expected)


def test_timestep_embedding_matches_formula():
    t = torch.tensor([0, 1, 17, 999])
    emb = timestep_embedding(t, 8)
    freqs = np.exp(-math.log(10000) * np.arange(4) / 3)
    args = t.numpy()[:, None] * freqs[None, :]
    np.testing.assert_allclose(emb.numpy(), np.concatenate([np.sin(args), np.cos(args)], 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.zeros(2, 3, 8, 8), 0), "3 channels"),
    (lambda m: m(torch.zeros(1, 8, 8), 0), "(B, C, H, W)"),
    (lambda m: m(torch.zeros(2, 1, 16, 16), 0), "image_size=8"),
    (lambda m: m(torch.zeros(2, 1, 8, 8), torch.zeros(3, dtype=torch.long)), "t must have shape (2,)"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(UNet(small_config()))


def test_label_errors():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="unconditional"):
        UNet(small_config())(x, 0, torch.tensor([0, 1]))
    model = UNet(small_config(num_classes=3))
    with pytest.raises(ValueError, match=r"y must be in \[0, 3\].*got values in \[0, 4\]"):
        model(x, 0, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="y must be in"):
        model(x, 0, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integer tensor of class labels"):
        model(x, 0, torch.tensor([0.0, 1.0]))


def test_config_validation():
    with pytest.raises(ValueError, match="groups=8 must divide"):
        UNetConfig(base_channels=12)
    with pytest.raises(ValueError, match="channel_mults"):
        UNetConfig(channel_mults=())
    with pytest.raises(ValueError, match="unknown UNet preset 'huge'"):
        preset("huge")


def test_config_survives_json():
    config = preset("small", num_classes=10)
    again = UNetConfig(**json.loads(json.dumps(asdict(config))))
    assert again == config and isinstance(again.channel_mults, tuple)


def test_preset_parameter_counts():
    counts = {name: num_parameters(UNet(preset(name))) for name in ("tiny", "small", "medium")}
    assert 0.4e6 < counts["tiny"] < 0.8e6
    assert 1.2e6 < counts["small"] < 2.0e6
    assert 3.0e6 < counts["medium"] < 5.0e6
    # Ho et al. 2020's CIFAR-10 model: 35.7M parameters.
    cifar = preset("cifar", in_channels=3, image_size=32)
    assert cifar.attention_resolutions == (16,) and cifar.dropout == 0.1
    assert num_parameters(UNet(cifar)) == 35_746_307
    assert set(PRESETS) == {"tiny", "small", "medium", "cifar"}


def test_channels_last_and_bf16_autocast_agree():
    model = randomized(UNet(small_config(image_size=16, channel_mults=(1, 2, 2))))
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x, 3)
        cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), 3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = model(x, 3)
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-5)
    assert bf.shape == ref.shape and (bf.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_zero_initialised_output_predicts_zero_noise():
    out = UNet(small_config())(torch.randn(2, 1, 8, 8), 10)
    assert torch.equal(out, torch.zeros_like(out))
