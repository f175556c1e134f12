"""Tests of the colorizer's attention U-Net (`pipeline.models.colorizer`), on tiny tensors.

One intra-op thread throughout (fixture below): at these sizes threads buy nothing, and
the machine's two cores are shared with training jobs.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import fit_one_batch
from torch import nn

from pipeline.models.colorizer import AttentionUNet, UNetConfig, build_unet
from pipeline.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from pipeline.models.layers import PixelShuffleUpsample, SimpleSelfAttention, count_flops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unet(**overrides) -> AttentionUNet:
    kwargs = {"width": 4, "mults": (1, 2, 4), "groups": 2} | overrides
    return AttentionUNet(UNetConfig(**kwargs))


def _wake(net: AttentionUNet, gamma: float = 0.5) -> AttentionUNet:
    """Move the zero inits (attention γ, the input-skip head) away from 0: they block gradients."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, SimpleSelfAttention):
            nn.init.constant_(m.gamma, gamma)
    nn.init.normal_(net.head.weight, std=0.1)
    nn.init.normal_(net.head.bias, std=0.1)
    return net


def _scan(*shape: int) -> torch.Tensor:
    return torch.rand(shape) * 2 - 1  # [-1, 1]


# ------------------------------------------------------------------ forward / backward

CASES = {
    "default_tiny": {},
    "no_input_skip": {"input_skip": False},
    "no_norm": {"groups": 0},
    "two_blocks_all_attention": {"blocks_per_level": 2, "n_attention": 6},
    "no_blocks_no_attention": {"blocks_per_level": 0, "n_attention": 0},
    "single_level": {"mults": (1,), "n_attention": 2},
    "rgb_to_rgb": {"in_channels": 3, "out_channels": 3, "mults": (1, 2)},
}


@pytest.mark.parametrize("name", CASES)
def test_forward_backward(name):
    torch.manual_seed(0)
    net = _wake(_unet(**CASES[name]))
    x = _scan(2, net.config.in_channels, 16, 16) * 0.5  # away from ±1: hardtanh would cut gradients
    y = net(x)
    assert y.shape == (2, 3, 16, 16)
    assert torch.isfinite(y).all()
    assert y.abs().max() <= 1
    y.square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


@pytest.mark.parametrize("size", [(33, 47), (17, 9), (1, 1), (5, 64)])
@pytest.mark.parametrize("input_skip", [True, False])
def test_any_size_keeps_size(size, input_skip):
    net = _wake(_unet(input_skip=input_skip))
    y = net(_scan(1, 1, *size))
    assert y.shape == (1, 3, *size)
    assert torch.isfinite(y).all() and y.abs().max() <= 1


def test_input_skip_starts_as_grey_scan():
    torch.manual_seed(0)
    net = _unet()
    for size in [(16, 16), (33, 47)]:
        x = _scan(2, 1, *size)
        assert torch.equal(net(x), x.expand(-1, 3, -1, -1))
    # the test can fail: once the residual is non-zero, the output is no longer the scan
    _wake(net)
    x = _scan(2, 1, 16, 16)
    assert (net(x) - x.expand(-1, 3, -1, -1)).abs().max() > 1e-3
    # without the skip, the same init is not the identity either
    assert not torch.allclose(_unet(input_skip=False)(x), x.expand(-1, 3, -1, -1), atol=1e-2)


def test_decoder_upsamples_by_pixel_shuffle_with_skips():
    net = _unet(mults=(1, 2, 4, 8))
    ups = [m for m in net.modules() if isinstance(m, PixelShuffleUpsample)]
    assert len(ups) == 3  # one per downsampling
    # ICNR: every output channel's scale² sub-pixel filters are equal
    for up in ups:
        w = up.conv.weight
        groups = w.view(w.shape[0] // 4, 4, *w.shape[1:])
        assert torch.equal(groups, groups[:, :1].expand_as(groups))
    # the merge conv of each decoder level sees [upsampled, skip]: 2 · dims[i] channels
    assert [level[1].conv.in_channels for level in net.decoder] == [2 * 16, 2 * 8, 2 * 4]


def test_skip_connections_carry_fine_detail():
    # A one-pixel change moves the full-resolution output: without the level-0 skip, the
    # decoder would only see it through the bottleneck (1/4 resolution here). Checked via
    # the gradient of one output pixel: a U-Net's is sharply peaked at that pixel.
    torch.manual_seed(0)
    net = _wake(_unet(n_attention=0, input_skip=False, groups=0))
    x = _scan(1, 1, 16, 16).requires_grad_(True)
    net(x)[0, :, 8, 8].sum().backward()
    g = x.grad[0, 0].abs()
    assert g.max() > 0
    assert g[7:10, 7:10].sum() > 0.2 * g.sum()


# ------------------------------------------------------------------ attention placement


@pytest.mark.parametrize("n_attention", range(7))
def test_attention_sits_at_the_largest_feature_maps(n_attention):
    net = _unet(mults=(1, 2, 4), n_attention=n_attention)
    seen: list[tuple[int, int, int]] = []  # (channels, H, W) each attention layer sees
    layers = [m for m in net.modules() if isinstance(m, SimpleSelfAttention)]
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape[1:]))) for m in layers]
    net(_scan(1, 1, 32, 24))
    for h in hooks:
        h.remove()
    assert len(layers) == len(seen) == n_attention
    # slots: two per level (decoder, encoder), at 32, 32, 16, 16, 8, 8 pixels high
    assert sorted((h for _, h, _ in seen), reverse=True) == [32, 32, 16, 16, 8, 8][:n_attention]
    for c, h, w in seen:  # level i: width · mults[i] channels at 1/2**i of 32×24
        level = (32 // h).bit_length() - 1
        assert (c, w) == (4 * (1, 2, 4)[level], 24 >> level)


def test_attention_goes_to_the_decoder_first():
    net = _unet(n_attention=1)
    assert isinstance(net.decoder[-1][3], SimpleSelfAttention)  # decoder, level 0
    assert isinstance(net.encoder[0][1], nn.Identity)
    assert net.config.attention_slots() == [(0, "decoder")]


# ------------------------------------------------------------------ numerics, memory format


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    net = _wake(_unet(n_attention=6))
    x = _scan(2, 1, 33, 40) * 0.5
    expected = net(x)
    net = net.to(memory_format=torch.channels_last)
    actual = net(x.to(memory_format=torch.channels_last))
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-4)
    assert (expected - x.expand(-1, 3, -1, -1)).abs().max() > 1e-3  # not the trivial init output


def test_bf16_autocast_is_finite_and_close():
    torch.manual_seed(0)
    net = _wake(_unet(n_attention=6), gamma=1.0)
    x = _scan(2, 1, 32, 32)
    with torch.no_grad():
        reference = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
    assert y.shape == (2, 3, 32, 32)
    assert torch.isfinite(y).all()
    assert (y.float() - reference).abs().max() < 0.1


def test_output_feeds_conditional_patch_discriminator():
    net = _wake(_unet())
    d = PatchDiscriminator(DiscriminatorConfig(in_channels=1 + 3, width=4))
    scan = _scan(2, 1, 32, 32)
    score = d(torch.cat([scan, net(scan)], 1))  # (scan, color) pair
    assert score.shape == (2, 1, 2, 2)


def test_overfit_one_batch():
    # memorise a noise target: the hardest pair there is (width 4 only reaches ~4× in 150 steps)
    torch.manual_seed(0)
    net = AttentionUNet(UNetConfig(width=8, mults=(1, 2), groups=2))
    scan = _scan(2, 1, 16, 16)
    color = _scan(2, 3, 16, 16)
    losses = fit_one_batch(net, scan, color, lr=1e-2)
    assert losses[-1] < losses[0] / 5, losses[::25]


# ------------------------------------------------------------------ config, builder


def test_count_flops_and_default_size():
    net = AttentionUNet(UNetConfig())
    params = sum(p.numel() for p in net.parameters())
    assert 5e5 < params < 5e6  # a CPU-trainable colorizer, not a 50M pix2pix
    flops = count_flops(net, (1, 1, 64, 64))
    assert flops > 0
    assert count_flops(net, (1, 1, 128, 128)) == 4 * flops  # all layers scale with the pixel count


def test_build_unet_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = _wake(_unet(mults=(1, 2), n_attention=2, blocks_per_level=2))
    config = net.to_config_dict()
    assert config["mults"] == [1, 2] and json.loads(json.dumps(config)) == config  # plain, JSON-able
    # as a published checkpoint stores it: plain dict + weights, loadable with weights_only=True
    torch.save({"config": config, "state_dict": net.state_dict()}, tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    rebuilt = build_unet(ckpt["config"])
    assert rebuilt.config == net.config and rebuilt.config.mults == (1, 2)
    assert rebuilt.state_dict().keys() == net.state_dict().keys()
    rebuilt.load_state_dict(ckpt["state_dict"])
    x = _scan(1, 1, 16, 16)
    assert torch.equal(rebuilt(x), net(x))
    assert not torch.equal(_unet(mults=(1, 2), n_attention=2, blocks_per_level=2)(x), net(x))  # weights matter


def test_config_accepts_a_list_of_mults():
    assert UNetConfig(mults=[1, 2]).mults == (1, 2)
    hash(UNetConfig(mults=[1, 2]))  # still hashable


_FULL = AttentionUNet(UNetConfig(width=4, mults=(1, 2))).to_config_dict()


@pytest.mark.parametrize("config, match", [
    (_FULL | {"widht": 8}, "widht"),
    ({k: v for k, v in _FULL.items() if k != "groups"}, "groups"),
    (_FULL | {"width": True}, "width"),
    (_FULL | {"width": 4.0}, "width"),
    (_FULL | {"input_skip": 1}, "input_skip"),
    (_FULL | {"mults": [1, "2"]}, "mults"),
    (_FULL | {"mults": 2}, "mults"),
    (_FULL | {"mults": []}, "mults"),
    (_FULL | {"mults": [1, 0]}, "mults"),
    (_FULL | {"n_attention": 5}, "n_attention"),
    (_FULL | {"blocks_per_level": -1}, "blocks_per_level"),
    (_FULL | {"in_channels": 3, "out_channels": 1}, "input_skip"),
    ([1, 3], "dict"),
])
def test_build_unet_rejects_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        build_unet(config)
