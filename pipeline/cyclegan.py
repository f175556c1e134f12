"""The networks of the scan-generator CycleGAN (models only; losses and training live elsewhere).

CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks") learns two mappings between unpaired domains, here
color (X, 3 channels) and scan (Y, 1 channel):

    Code (paper):  G_A = G: X → Y  color → scan   WeakGenerator(3 → 1), the one we keep
                   G_B = F: Y → X  scan → color   WeakGenerator(1 → 3)
                   D_A = D_Y       real vs. fake scans    PatchDiscriminator(1)
                   D_B = D_X       real vs. fake colors   PatchDiscriminator(3)

OnePunchGAN makes the generators *deliberately weak* (narrow, few residual blocks, no
skip connections): a weak color→scan generator cannot hide the color information in
imperceptible high-frequency patterns to pass the cycle test (Chu et al. 2017,
"CycleGAN, a Master of Steganography"), so it has to produce something that looks like a
scan.

The discriminator is the 70×70 PatchGAN (Isola et al. 2017, "Image-to-Image Translation
with Conditional Adversarial Networks"), with the simple self-attention of
`pipeline.layers` after its downsampling blocks.

Architectures are frozen dataclasses that round-trip through plain dicts
(`to_config_dict()` / `build_generator(dict)`), so a published checkpoint carries its
architecture and can be rebuilt without params.yaml.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline.gan import luma
from pipeline.modelio import config_from_dict
from pipeline.layers import (ConvNormAct, ImageGenerator, PixelShuffleUpsample, ResidualBlock, SimpleSelfAttention,
                             group_norm)


def _require(ok: bool, cls: type, key: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{cls.__name__}.{key} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a `WeakGenerator`."""

    in_channels: int  # 3 for color → scan (G_A), 1 for scan → color (G_B)
    out_channels: int
    width: int = 16  # channels after the stem; doubles per downsampling (CycleGAN: 64)
    n_down: int = 2  # stride-2 downsamplings, mirrored by pixel-shuffle upsamplings
    n_res: int = 3  # residual blocks at the bottleneck (CycleGAN: 9 at 256 px)
    groups: int = 8  # GroupNorm groups (adapted to narrow layers); 0: no normalisation
    # Learn a residual on top of the input's channel conversion (luma for 3 -> 1, repeat for
    # 1 -> 3): the generator starts at greyscale(color) and only learns what de-coloring and
    # de-shading change. Converges in hundreds of steps instead of tens of thousands.
    input_skip: bool = False

    def __post_init__(self) -> None:
        cls = type(self)
        _require(self.in_channels >= 1, cls, "in_channels", "an integer >= 1", self.in_channels)
        _require(self.out_channels >= 1, cls, "out_channels", "an integer >= 1", self.out_channels)
        _require(not self.input_skip or (self.in_channels, self.out_channels) in ((3, 1), (1, 3), (1, 1), (3, 3)),
                 cls, "input_skip", "False unless channels are 3->1, 1->3, 1->1 or 3->3",
                 self.input_skip)
        _require(self.width >= 1, cls, "width", "an integer >= 1", self.width)
        _require(0 <= self.n_down <= 6, cls, "n_down", "an integer in [0, 6]", self.n_down)
        _require(self.n_res >= 0, cls, "n_res", "an integer >= 0", self.n_res)
        _require(self.groups >= 0, cls, "groups", "an integer >= 0", self.groups)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of a `PatchDiscriminator`."""

    in_channels: int  # 1 for D_A (scans), 3 for D_B (colors), 1 + 3 for a conditional pair
    width: int = 16  # channels of the first layer (pix2pix: 64)
    n_layers: int = 3  # stride-2 blocks; 3 gives the 70×70 receptive field
    attention: bool = True  # SimpleSelfAttention after each stride-2 block
    groups: int = 8  # GroupNorm groups (adapted to narrow layers); 0: no normalisation

    def __post_init__(self) -> None:
        cls = type(self)
        _require(self.in_channels >= 1, cls, "in_channels", "an integer >= 1", self.in_channels)
        _require(self.width >= 1, cls, "width", "an integer >= 1", self.width)
        _require(1 <= self.n_layers <= 6, cls, "n_layers", "an integer in [1, 6]", self.n_layers)
        _require(self.groups >= 0, cls, "groups", "an integer >= 0", self.groups)


class WeakGenerator(ImageGenerator):
    """The deliberately weak CycleGAN generator: ResNet generator without skips, narrowed.

    stem conv7 (reflect) → n_down × [conv3x3 stride 2, width ×2] → n_res × ResidualBlock
    → n_down × PixelShuffleUpsample (width ÷2) → conv7 (reflect) → tanh.

    Code (paper): Zhu et al. 2017 appendix 7.2, "c7s1-k, dk, Rk, uk, c7s1-3", with the
    fractionally strided convolutions `uk` replaced by pixel shuffle (ICNR) as in the
    OnePunchGAN decoder, and InstanceNorm by GroupNorm.

    Input and output are in [-1, 1]. Any H, W is accepted: the input is padded
    (replicate) up to a multiple of 2**n_down — and to a minimum size at which the
    reflection paddings are valid — and the output is cropped back to H, W.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.config = cfg
        norm = group_norm(cfg.groups) if cfg.groups else None
        dims = [cfg.width * 2**i for i in range(cfg.n_down + 1)]  # channels per resolution level

        self.stem = ConvNormAct(cfg.in_channels, dims[0], 7, padding_mode="reflect", norm_layer=norm,
                                act_layer=nn.ReLU)  # c7s1-k
        self.down = nn.Sequential(*[
            ConvNormAct(a, b, 3, stride=2, padding=1, norm_layer=norm, act_layer=nn.ReLU)  # dk
            for a, b in zip(dims[:-1], dims[1:])
        ])
        self.res = nn.Sequential(*[ResidualBlock(dims[-1], norm) for _ in range(cfg.n_res)])  # Rk
        self.up = nn.Sequential(*[
            PixelShuffleUpsample(b, a, 2, norm, nn.ReLU)  # uk
            for a, b in reversed(list(zip(dims[:-1], dims[1:])))
        ])
        self.head = nn.Conv2d(dims[0], cfg.out_channels, 7, padding=3, padding_mode="reflect")  # c7s1-out
        if cfg.input_skip:  # start as the plain channel conversion: residual = 0
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.pad_multiple = 2**cfg.n_down
        # reflect padding needs pad < size: 3 at full resolution (conv7), 1 at the bottleneck
        self.min_size = max(4, 2 * self.pad_multiple)

    def to_config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        cin, cout = self.config.in_channels, self.config.out_channels
        if cin == 3 and cout == 1:
            return luma(x)
        if cin == 1 and cout == 3:
            return x.expand(-1, 3, -1, -1)
        return x

    def _net(self, x: torch.Tensor) -> torch.Tensor:  # H', W': multiples of 2**n_down
        x = self.stem(x)  # (B, width, H', W')
        x = self.down(x)  # (B, width·2**n_down, H'/2**n_down, W'/2**n_down)
        x = self.res(x)
        x = self.up(x)  # (B, width, H', W')
        return self.head(x)  # (B, C_out, H', W')


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator with simple self-attention; outputs an LSGAN score map.

    Code (paper): Isola et al. 2017 (pix2pix) appendix 6.1.2, the 70×70 discriminator
    "C64-C128-C256-C512" of 4×4 convolutions with strides 2, 2, 2, 1, LeakyReLU(0.2),
    no normalisation on C64, then a 4×4 stride-1 convolution to 1 channel. Here 64 is
    `cfg.width`, the widths double per block up to 8·width, and n_layers = 3 gives the
    stride-2 blocks C64-C128-C256. GroupNorm replaces BatchNorm/InstanceNorm.

    Each output pixel scores one 70×70 input patch (for n_layers = 3): the discriminator
    judges local texture, leaving global structure to the L1/cycle losses. With
    `cfg.attention`, a SimpleSelfAttention follows each stride-2 block; at init (γ = 0)
    it is the identity, so the receptive field starts at exactly 70×70 and the network
    can learn to use global context. GroupNorm statistics are global too, but carry no
    spatial detail.

    No sigmoid: the least-squares GAN loss (Mao et al. 2017) regresses the raw scores.
    """

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = cfg
        norm = group_norm(cfg.groups) if cfg.groups else None
        lrelu = functools.partial(nn.LeakyReLU, 0.2)
        dims = [cfg.in_channels] + [cfg.width * min(2**i, 8) for i in range(cfg.n_layers + 1)]

        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-2], dims[1:-1])):  # C64, C128, C256: stride 2
            blocks.append(ConvNormAct(a, b, 4, stride=2, padding=1, norm_layer=norm if i else None,
                                      act_layer=lrelu))
            blocks.append(SimpleSelfAttention(b) if cfg.attention else nn.Identity())
        blocks.append(ConvNormAct(dims[-2], dims[-1], 4, stride=1, padding=1, norm_layer=norm,
                                  act_layer=lrelu))  # C512: stride 1
        self.features = nn.Sequential(*blocks)
        self.head = nn.Conv2d(dims[-1], 1, 4, stride=1, padding=1)  # one score per patch

    def to_config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C_in, H, W) -> (B, 1, h, w); for n_layers = 3, h = H/8 - 2
        return self.head(self.features(x))


def build_generator(config: Mapping[str, Any]) -> WeakGenerator:
    """Rebuild a WeakGenerator from `to_config_dict()` output (e.g. stored in a checkpoint)."""
    return WeakGenerator(config_from_dict(GeneratorConfig, config))


def build_discriminator(config: Mapping[str, Any]) -> PatchDiscriminator:
    """Rebuild a PatchDiscriminator from `to_config_dict()` output."""
    return PatchDiscriminator(config_from_dict(DiscriminatorConfig, config))
