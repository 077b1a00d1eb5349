"""The U-Net: shapes for many sizes, conditioning and the null class, presets, input checks."""
import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


# ----- the Annotated Diffusion variants: block_type="convnext", attention_type="linear" -----

def test_default_tiny_unet_is_unchanged_by_the_variants():
    """Golden numbers computed before block_type / attention_type existed: the default model, its
    seeded init and its forward are bit-for-bit what they were (and so are its state_dict names)."""
    torch.manual_seed(0)
    model = UNet(preset("tiny"))
    assert model.config.block_type == "resnet" and model.config.attention_type == "full"
    assert num_parameters(model) == 627433 and len(model.state_dict()) == 166
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))  # the zero-initialised output conv would hide changes
        out = model(torch.randn(2, 1, 28, 28, generator=g), torch.tensor([3, 500]))
    assert out.double().sum().item() == pytest.approx(-705.427953322418, rel=1e-6)
    expected = torch.tensor([-0.052554234862327576, -0.7617592811584473, -0.5905281901359558, -0.13916859030723572])
    torch.testing.assert_close(out.flatten()[[0, 100, 777, 1567]], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block_type", ["resnet", "convnext"])
@pytest.mark.parametrize("attention_type", ["full", "linear"])
@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_every_variant_keeps_the_shape(block_type, attention_type, channels, size, num_classes):
    config = preset("tiny", in_channels=channels, image_size=size, num_classes=num_classes,
                    block_type=block_type, attention_type=attention_type)
    model = randomized(UNet(config), seed=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, size, size, generator=g)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 999]))
        assert out.shape == x.shape and torch.isfinite(out).all()
        if num_classes:  # the label reaches the output through every block kind
            assert not torch.allclose(model(x, 5, torch.tensor([1, 2])), model(x, 5, torch.tensor([3, 4])))
    res = {type(b.res).__name__ for b in model.modules() if type(b).__name__ == "LevelBlock"}
    attn = {type(b.attn).__name__ for b in model.modules() if type(b).__name__ == "LevelBlock"} - {"Identity"}
    assert res == {"ResBlock" if block_type == "resnet" else "ConvNextBlock"}
    assert attn == {"SelfAttention" if attention_type == "full" else "LinearAttention"}


def test_linear_attention_matches_a_float64_einsum_reference():
    """Shen et al. 2021: out = x + proj(ρ_q(Q)·(ρ_k(K)ᵀV)·d^-½), ρ_q softmax over features, ρ_k over positions."""
    from diffviz.unet_blocks import LinearAttention

    torch.manual_seed(0)
    block = randomized(LinearAttention(16, 2, 4))
    x = torch.randn(3, 16, 5, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = block(x)
    xd, B, C, N, heads, d = x.double(), 3, 16, 30, 2, 8
    sd = {k: v.double() for k, v in block.state_dict().items()}
    h = F.group_norm(xd, 4, sd["norm.weight"], sd["norm.bias"], eps=1e-5).reshape(B, C, N)
    qkv = torch.einsum("oc,bcn->bon", sd["qkv.weight"][:, :, 0, 0], h) + sd["qkv.bias"][None, :, None]
    q, k, v = qkv.reshape(B, 3, heads, d, N).unbind(1)  # each (B, heads, d, N)
    q = q.softmax(dim=2) * d ** -0.5  # each position's query: a distribution over the d features
    k = k.softmax(dim=3)  # each key feature: a distribution over the N positions
    context = torch.einsum("bhdn,bhen->bhde", k, v)  # (B, heads, d_k, d_v)
    att = torch.einsum("bhde,bhdn->bhen", context, q).reshape(B, C, N)
    out = torch.einsum("oc,bcn->bon", sd["proj_out.weight"][:, :, 0, 0], att) + sd["proj_out.bias"][None, :, None]
    expected = xd + out.reshape(B, C, 5, 6)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def largest_intermediate(fn):
    """The largest numel of any tensor an aten op returns while ``fn()`` runs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Watch(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    Watch.largest = max(Watch.largest, t.numel())
            return out

    with Watch(), torch.no_grad():
        fn()
    return Watch.largest


def test_linear_attention_never_builds_an_n_by_n_matrix():
    import time
    from diffviz.unet_blocks import LinearAttention

    C, side = 8, 64
    N = side * side
    block = randomized(LinearAttention(C, 1, 4))
    x = torch.randn(1, C, side, side)
    assert largest_intermediate(lambda: block(x)) <= 3 * C * N  # the qkv projection; N·N = 16.8M would be far above
    q = torch.randn(N, C)
    assert largest_intermediate(lambda: (q @ q.T).softmax(-1) @ q) == N * N  # the watch does see an N×N matrix
    big = torch.randn(1, 32, 128, 128)  # N = 16384: an N×N float32 matrix alone would be 1 GiB
    block = randomized(LinearAttention(32, 1, 8))
    start = time.perf_counter()
    with torch.no_grad():
        assert block(big).shape == big.shape
    assert time.perf_counter() - start < 5


def test_convnext_block_matches_a_float64_computation_by_hand():
    """Liu et al. 2022 with a time embedding (Annotated Diffusion): DW 7×7 → + MLP(emb) → GN(1) → 1×1 ×2
    → GELU → GN(1) → 1×1, plus a 1×1 skip when the channels change."""
    from diffviz.unet_blocks import ConvNextBlock

    torch.manual_seed(0)
    block = randomized(ConvNextBlock(6, 10, embed_dim=12))
    g = torch.Generator().manual_seed(2)
    x, emb = torch.randn(2, 6, 9, 7, generator=g), torch.randn(2, 12, generator=g)
    with torch.no_grad():
        got = block(x, emb)
    sd = {k: v.double() for k, v in block.state_dict().items()}
    xd, ed = x.double(), emb.double()
    h = F.conv2d(xd, sd["dw_conv.weight"], sd["dw_conv.bias"], padding=3, groups=6)  # one 7×7 filter per channel
    h = h + (F.gelu(ed) @ sd["embed_proj.1.weight"].T + sd["embed_proj.1.bias"])[:, :, None, None]
    mean, var = h.mean(dim=(1, 2, 3), keepdim=True), h.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    h = (h - mean) / (var + 1e-5).sqrt() * sd["norm1.weight"][:, None, None] + sd["norm1.bias"][:, None, None]
    h = torch.einsum("oc,bchw->bohw", sd["conv1.weight"][:, :, 0, 0], h) + sd["conv1.bias"][:, None, None]
    assert h.shape == (2, 20, 9, 7)  # widened by mult = 2
    h = F.gelu(h)
    mean, var = h.mean(dim=(1, 2, 3), keepdim=True), h.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    h = (h - mean) / (var + 1e-5).sqrt() * sd["norm2.weight"][:, None, None] + sd["norm2.bias"][:, None, None]
    h = torch.einsum("oc,bchw->bohw", sd["conv2.weight"][:, :, 0, 0], h) + sd["conv2.bias"][:, None, None]
    skip = torch.einsum("oc,bchw->bohw", sd["skip.weight"][:, :, 0, 0], xd) + sd["skip.bias"][:, None, None]
    torch.testing.assert_close(got.double(), skip + h, rtol=1e-5, atol=1e-5)
    assert isinstance(ConvNextBlock(6, 6, 12).skip, torch.nn.Identity)


@pytest.mark.parametrize("field, value, choices", [("block_type", "resnext", "resnet, convnext"),
                                                   ("attention_type", "sparse", "full, linear")])
def test_unknown_variant_names_the_choices(field, value, choices):
    with pytest.raises(ValueError, match=f"unknown {field} '{value}'; use one of {choices}"):
        UNetConfig(**{field: value})


def test_variants_survive_a_checkpoint_and_old_configs_load_with_defaults(tmp_path):
    from diffviz.checkpoint import load_checkpoint, model_from_config, model_to_config, save_checkpoint
    from diffviz.schedules import linear_schedule

    model = randomized(UNet(small_config(block_type="convnext", attention_type="linear", num_classes=3)))
    save_checkpoint(tmp_path / "run", model, linear_schedule(50))
    loaded, _, _ = load_checkpoint(tmp_path / "run")
    assert (loaded.config.block_type, loaded.config.attention_type) == ("convnext", "linear")
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x, 3, 1), model(x, 3, 1))
    saved = model_to_config(UNet(small_config()))
    old = {"type": "unet", "config": {k: v for k, v in saved["config"].items()
                                      if k not in ("block_type", "attention_type")}}  # as written before them
    again = model_from_config(old)
    assert (again.config.block_type, again.config.attention_type) == ("resnet", "full")


def test_shape_tour_names_the_block_kinds():
    model = UNet(small_config(image_size=16, channel_mults=(1, 2, 2), attention_resolutions=(8,),
                              block_type="convnext", attention_type="linear"))
    labels = [label for label, _ in shape_tour(model, torch.zeros(1, 1, 16, 16), 10)]
    assert "down.0 (LevelBlock (ConvNeXt))" in labels and "down.2 (LevelBlock (ConvNeXt) + linear attention)" in labels
    assert "mid.0 (LevelBlock (ConvNeXt) + linear attention)" in labels
    plain = [label for label, _ in shape_tour(UNet(small_config(image_size=16, channel_mults=(1, 2, 2),
                                                               attention_resolutions=(8,))), torch.zeros(1, 1, 16, 16), 10)]
    assert "down.0 (LevelBlock)" in plain and "down.2 (LevelBlock + attention)" in plain
