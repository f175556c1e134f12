"""Tests of the reusable layers and the CycleGAN networks, on tiny tensors.

Everything runs with one intra-op thread (fixture below): at these sizes threads buy
nothing, and on a shared 2-core machine OpenMP barriers waiting on a descheduled thread
made the overfit test 10-40× slower.
"""

from __future__ import annotations

import pytest
import torch
from helpers import fit_one_batch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.models.discriminator import DiscriminatorConfig, PatchDiscriminator, build_discriminator
from pipeline.models.layers import (
    ConvNormAct,
    PixelShuffleUpsample,
    ResidualBlock,
    SimpleSelfAttention,
    count_flops,
    group_norm,
    icnr_,
)
from pipeline.models.scan_generator import GeneratorConfig, WeakGenerator, build_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _set_gammas(module: nn.Module, value: float) -> None:
    for m in module.modules():
        if isinstance(m, SimpleSelfAttention):
            nn.init.constant_(m.gamma, value)


# ------------------------------------------------------------------ forward / backward

CASES = {
    # name: (module factory, input shape, output shape)
    "conv_norm_act": (lambda: ConvNormAct(3, 8, 3, stride=2, norm_layer=group_norm(4), act_layer=nn.ReLU),
                      (2, 3, 32, 32), (2, 8, 16, 16)),
    "residual_block": (lambda: ResidualBlock(8, group_norm(4)), (2, 8, 16, 16), (2, 8, 16, 16)),
    "attention": (lambda: SimpleSelfAttention(8), (2, 8, 16, 16), (2, 8, 16, 16)),
    "attention_spectral": (lambda: SimpleSelfAttention(8, spectral_norm=True), (2, 8, 16, 16), (2, 8, 16, 16)),
    "pixel_shuffle": (lambda: PixelShuffleUpsample(8, 4, 2, group_norm(4), nn.ReLU), (2, 8, 16, 16),
                      (2, 4, 32, 32)),
    "pixel_shuffle_blur": (lambda: PixelShuffleUpsample(8, 4, 2, blur=True), (2, 8, 16, 16), (2, 4, 32, 32)),
    "scan_generator": (lambda: WeakGenerator(GeneratorConfig(3, 1, width=8, n_res=1)), (2, 3, 32, 32),
                       (2, 1, 32, 32)),
    "color_generator": (lambda: WeakGenerator(GeneratorConfig(1, 3, width=4, n_down=1, n_res=2, groups=0)),
                        (2, 1, 32, 32), (2, 3, 32, 32)),
    "discriminator": (lambda: PatchDiscriminator(DiscriminatorConfig(3, width=8)), (2, 3, 32, 32),
                      (2, 1, 2, 2)),
    "discriminator_plain": (lambda: PatchDiscriminator(DiscriminatorConfig(4, width=4, attention=False, groups=0)),
                            (2, 4, 32, 32), (2, 1, 2, 2)),
}


@pytest.mark.parametrize("name", CASES)
def test_forward_backward(name):
    factory, in_shape, out_shape = CASES[name]
    torch.manual_seed(0)
    module = factory()
    # γ = 0 at init blocks every gradient to the attention's 1x1 conv; move it away from 0
    _set_gammas(module, 0.5)
    x = torch.randn(in_shape)
    y = module(x)
    assert y.shape == out_shape
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for pname, p in module.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


def test_gamma_gets_gradient_at_init():
    attn = SimpleSelfAttention(4)
    attn(torch.randn(2, 4, 8, 8)).square().sum().backward()
    assert attn.gamma.grad is not None and attn.gamma.grad.abs() > 0
    assert attn.conv.weight.grad.abs().sum() == 0  # γ = 0 blocks the conv, hence _set_gammas above


# ------------------------------------------------------------------ SimpleSelfAttention


def test_attention_is_identity_at_init():
    x = torch.randn(2, 8, 12, 10)
    assert torch.equal(SimpleSelfAttention(8)(x), x)
    assert torch.equal(SimpleSelfAttention(8, spectral_norm=True)(x), x)


def test_attention_cost_is_linear_in_pixels():
    attn = SimpleSelfAttention(4)
    _set_gammas(attn, 1.0)

    def flops(side):
        with FlopCounterMode(display=False) as counter:
            attn(torch.randn(1, 4, side, side))
        return counter.get_total_flops()

    assert flops(64) == 4 * flops(32)  # N ×4 -> cost ×4 exactly, not ×16

    # No N×N tensor anywhere: every tensor autograd saves is at most C·N (N = 16,384 here;
    # an N×N attention map would hold 2.7e8 elements).
    largest = 0

    def pack(t):
        nonlocal largest
        largest = max(largest, t.numel())
        return t

    x = torch.randn(1, 4, 128, 128, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = attn(x)
    y.sum().backward()
    assert largest <= 4 * 128 * 128
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_attention_low_precision_large_n_is_finite(dtype):
    # 256² = 65,536 pixels: an unscaled x xᵀ has diagonal ≈ N > 65,504, the fp16 maximum
    torch.manual_seed(0)
    attn = SimpleSelfAttention(8)
    _set_gammas(attn, 1.0)
    x = torch.randn(1, 8, 256, 256)
    with torch.no_grad():
        reference = attn(x)
        with torch.autocast("cpu", dtype=dtype):
            y = attn(x)
    assert torch.isfinite(y).all()
    assert (y.float() - reference).abs().max() < 0.05 * reference.abs().max()


# ------------------------------------------------------------------ ICNR / PixelShuffleUpsample


def test_icnr_repeats_each_filter_scale_squared_times():
    w = icnr_(torch.empty(12, 5, 3, 3), scale=2)
    groups = w.view(3, 4, 5, 3, 3)  # (out_ch, scale², in_ch, kh, kw)
    assert torch.equal(groups, groups[:, :1].expand_as(groups))
    with pytest.raises(ValueError, match="multiple of scale"):
        icnr_(torch.empty(6, 5, 3, 3), scale=2)


def _block_spread(y: torch.Tensor) -> torch.Tensor:
    b, c, h, w = y.shape
    blocks = y.view(b, c, h // 2, 2, w // 2, 2)  # (B, C, h, 2, w, 2)
    return (blocks.amax(dim=(3, 5)) - blocks.amin(dim=(3, 5))).max()


@pytest.mark.parametrize("constant", [True, False])
def test_pixel_shuffle_has_no_checkerboard_at_init(constant):
    torch.manual_seed(0)
    up = PixelShuffleUpsample(4, 3, 2, group_norm(2), nn.ReLU)
    x = torch.full((1, 4, 8, 8), 0.7) if constant else torch.randn(1, 4, 8, 8)
    y = up(x)  # (1, 3, 16, 16)
    # every 2×2 block is constant: the output is a nearest-neighbour upsampling at init
    assert _block_spread(y) < 1e-6
    # the test can fail: a default-initialised sub-pixel conv does make a checkerboard
    nn.init.kaiming_normal_(up.conv.weight)
    assert _block_spread(up(x)) > 1e-2


# ------------------------------------------------------------------ WeakGenerator


@pytest.mark.parametrize("size", [(33, 47), (16, 16), (5, 64), (1, 1)])
def test_generator_keeps_any_size(size):
    g = WeakGenerator(GeneratorConfig(3, 1, width=4, n_res=1))
    y = g(torch.rand(1, 3, *size) * 2 - 1)
    assert y.shape == (1, 1, *size)
    assert y.abs().max() <= 1


@pytest.mark.parametrize("model", ["generator", "discriminator"])
def test_channels_last_matches_contiguous(model):
    torch.manual_seed(0)
    if model == "generator":
        net, x = WeakGenerator(GeneratorConfig(3, 1, width=8, n_res=1)), torch.randn(2, 3, 33, 40)
    else:
        net, x = PatchDiscriminator(DiscriminatorConfig(3, width=8)), torch.randn(2, 3, 32, 32)
        _set_gammas(net, 0.5)
    expected = net(x)
    net = net.to(memory_format=torch.channels_last)
    actual = net(x.to(memory_format=torch.channels_last))
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-4)


def test_overfit_one_batch():
    torch.manual_seed(0)
    g = WeakGenerator(GeneratorConfig(3, 1, width=8, n_res=1))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    target = torch.rand(2, 1, 16, 16) * 2 - 1
    losses = fit_one_batch(g, x, target, lr=3e-3)
    assert losses[-1] < losses[0] / 5, losses[::25]


# ------------------------------------------------------------------ PatchDiscriminator


@pytest.mark.parametrize("attention", [True, False])
def test_discriminator_receptive_field_is_70(attention):
    # GroupNorm statistics couple all pixels, so measure the conv stack's receptive field
    # without normalisation (groups=0); the convolution geometry is the same.
    torch.manual_seed(0)
    d = PatchDiscriminator(DiscriminatorConfig(1, width=4, attention=attention, groups=0))
    x = torch.randn(1, 1, 256, 256, requires_grad=True)
    y = d(x)
    assert y.shape == (1, 1, 30, 30)
    y[0, 0, 15, 15].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    cols = x.grad[0, 0].abs().sum(0).nonzero()
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_discriminator_default_shapes():
    d = PatchDiscriminator(DiscriminatorConfig(3))
    assert d(torch.randn(1, 3, 64, 64)).shape == (1, 1, 6, 6)


def test_discriminator_highpass_view_amplifies_faint_texture_on_paper_and_saturates_lines():
    """`highpass`: D sees tanh(gain · (x − 3×3 mean)) beside x. Flat paper and flat grey give
    0 there; a faint speckle on paper (|N(0, 0.02)| of [-1, 1]) comes out there 8× larger
    than in the plain input, while a line saturates at ±1 and does not drown it."""
    torch.manual_seed(0)
    d = PatchDiscriminator(DiscriminatorConfig(1, width=4, highpass=16.0))
    paper = torch.ones(1, 1, 32, 32)
    grey = torch.full((1, 1, 32, 32), -0.3)
    speckled = paper - 0.02 * torch.randn(1, 1, 32, 32).abs()
    line = paper.clone()
    line[..., 16, :] = -1.0
    views = {name: d._inputs(x) for name, x in
             {"paper": paper, "grey": grey, "speckled": speckled, "line": line}.items()}
    assert all(v.shape == (1, 2, 32, 32) for v in views.values())
    assert all(torch.equal(v[:, :1], x) for v, x in zip(views.values(), (paper, grey, speckled, line)))
    assert views["paper"][:, 1].abs().max() == 0 and views["grey"][:, 1].abs().max() < 1e-6
    speck_plain = (speckled - 1).abs().mean()
    speck_hp = views["speckled"][:, 1].abs().mean()
    assert speck_plain < 0.02 and speck_hp > 8 * speck_plain, (speck_plain, speck_hp)
    assert views["line"][0, 1, 16].min() < -0.99  # the line saturates: it stays ±1, never dominates
    assert d.features[0].conv.in_channels == 2 and d(speckled).shape == (1, 1, 2, 2)
    off = PatchDiscriminator(DiscriminatorConfig(1, width=4))
    assert torch.equal(off._inputs(speckled), speckled)


def test_discriminator_highpass_round_trips_and_old_configs_stay_byte_identical():
    old = PatchDiscriminator(DiscriminatorConfig(1, width=4)).to_config_dict()
    assert "highpass" not in old  # a checkpoint written before the high-pass view: the same dict
    net = PatchDiscriminator(DiscriminatorConfig(1, width=4, highpass=8.0))
    rebuilt = build_discriminator(net.to_config_dict())
    assert rebuilt.config.highpass == 8.0 and rebuilt.state_dict().keys() == net.state_dict().keys()
    with pytest.raises(ValueError, match="highpass"):
        DiscriminatorConfig(1, highpass=-1.0)


# ------------------------------------------------------------------ configs, builders, helpers


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_build_from_dict_roundtrip(kind, tmp_path):
    torch.manual_seed(0)
    if kind == "generator":
        net, build, x = WeakGenerator(GeneratorConfig(3, 1, width=4, n_res=1)), build_generator, (1, 3, 16, 16)
    else:
        net, build, x = PatchDiscriminator(DiscriminatorConfig(1, width=4)), build_discriminator, (1, 1, 32, 32)
        _set_gammas(net, 0.3)
    # as a published checkpoint stores it: plain dict + weights, loadable with weights_only=True
    torch.save({"config": net.to_config_dict(), "state_dict": net.state_dict()}, tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    rebuilt = build(ckpt["config"])
    assert rebuilt.config == net.config
    assert rebuilt.state_dict().keys() == net.state_dict().keys()
    rebuilt.load_state_dict(ckpt["state_dict"])
    x = torch.randn(x)
    assert torch.equal(rebuilt(x), net(x))


@pytest.mark.parametrize("build, config, match", [
    (build_generator, {"in_channels": 3, "out_channels": 1, "widht": 8}, "widht"),
    (build_generator, {"in_channels": 3}, "out_channels"),
    (build_generator, {"in_channels": 3, "out_channels": 1, "width": True}, "width"),
    (build_generator, {"in_channels": 3, "out_channels": 1, "n_down": -1}, "n_down"),
    (build_discriminator, {"in_channels": 3, "attention": 1}, "attention"),
    (build_discriminator, {"in_channels": 3, "n_layer": 3}, "n_layer"),
    (build_discriminator, [3, 16], "dict"),
])
def test_build_rejects_bad_config(build, config, match):
    with pytest.raises(ValueError, match=match):
        build(config)


@pytest.mark.parametrize("groups, channels, expected", [(8, 16, 8), (8, 4, 4), (8, 12, 6), (8, 3, 3), (4, 7, 1)])
def test_group_norm_adapts_to_channels(groups, channels, expected):
    norm = group_norm(groups)(channels)
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == expected


def test_group_norm_stays_in_bf16_under_autocast():
    torch.manual_seed(0)
    norm = group_norm(4)(16)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    x = torch.randn(2, 16, 8, 8) * 3 + 1
    reference = nn.functional.group_norm(x, 4, norm.weight, norm.bias, norm.eps)
    assert torch.equal(norm(x), reference)  # fp32: nn.GroupNorm's own path
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16  # no round trip through fp32 for the next conv
    assert torch.allclose(y.float(), reference, rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert norm.weight.grad is not None and norm.weight.grad.dtype == torch.float32


@pytest.mark.parametrize("kind", ["scan", "color"])
def test_generators_work_per_image(kind):
    """The CycleGAN step runs G_scan's three inputs as one batch: that is only the same
    function if nothing mixes images (no BatchNorm, no batch statistics)."""
    torch.manual_seed(0)
    cin, cout = (3, 1) if kind == "scan" else (1, 3)
    g = WeakGenerator(GeneratorConfig(in_channels=cin, out_channels=cout, width=4, n_down=1, n_res=1, groups=2))
    x = torch.rand(6, cin, 16, 16) * 2 - 1
    together = g(x)
    apart = torch.cat([g(x[i:i + 2]) for i in range(0, 6, 2)])
    assert torch.allclose(together, apart, atol=1e-5)


def test_count_flops():
    conv = nn.Conv2d(4, 8, 3, padding=1)
    assert count_flops(conv, (1, 4, 8, 8)) == 2 * (4 * 9) * 8 * 64  # 2 · MACs per output · outputs
    attn = SimpleSelfAttention(4)
    c, n = 4, 64
    assert count_flops(attn, (1, c, 8, 8)) == 3 * 2 * c * c * n  # 1x1 conv + two C×C×N bmm
    assert attn.training  # mode restored
    g = WeakGenerator(GeneratorConfig(3, 1))
    assert count_flops(g, (1, 3, 64, 64)) > 0
