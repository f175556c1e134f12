"""The weak generators of the scan-generator CycleGAN, and its published model file
(`models/scan_generator.pt`); the step that trains them is `pipeline.training.cyclegan_step`.

CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks") learns two mappings between unpaired domains, here color (X, 3
channels) and scan (Y, 1 channel). The four networks go by one name each, everywhere in
the project (code, checkpoints, logs, docs):

    name      paper (Zhu et al.)   what                              network
    G_scan    G: X → Y             color → scan, the one we keep     WeakGenerator(3 → 1)
    G_color   F: Y → X             scan → color                      WeakGenerator(1 → 3)
    D_scan    D_Y                  real vs. generated scans          PatchDiscriminator(1)
    D_color   D_X                  real vs. generated colors         PatchDiscriminator(3)

OnePunchGAN makes the generators *deliberately weak* (narrow, few residual blocks, no
skip connections): a weak color→scan generator cannot hide the color information in
imperceptible high-frequency patterns to pass the cycle test (Chu et al. 2017,
"CycleGAN, a Master of Steganography"), so it has to produce something that looks like a
scan.

The discriminators are `pipeline.models.discriminator.PatchDiscriminator`.

Architectures are frozen dataclasses that round-trip through plain dicts
(`to_config_dict()` / `build_generator(dict)`), so a published checkpoint carries its
architecture and can be rebuilt without params.yaml.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.layers import (
    ConvNormAct,
    ImageGenerator,
    PixelShuffleUpsample,
    ResidualBlock,
    group_norm,
)
from pipeline.models.model_file import config_from_dict
from pipeline.pixels import luma
from pipeline.validation import N_DOWN, N_RES, in_range, require


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a `WeakGenerator`."""

    in_channels: int  # 3 for G_scan (color → scan), 1 for G_color (scan → color)
    out_channels: int
    width: int = 16  # channels after the stem; doubles per downsampling (CycleGAN: 64)
    n_down: int = 2  # stride-2 downsamplings, mirrored by pixel-shuffle upsamplings
    n_res: int = 3  # residual blocks at the bottleneck (CycleGAN: 9 at 256 px)
    groups: int = 8  # GroupNorm groups (adapted to narrow layers); 0: no normalisation
    # Learn a residual on top of the input's channel conversion (luma for 3 -> 1, repeat for
    # 1 -> 3): the generator starts at greyscale(color) and only learns what de-coloring and
    # de-shading change. Converges in hundreds of steps instead of tens of thousands.
    input_skip: bool = False
    # Paper by construction: the output's levels are stretched so that this lightness (of
    # [0, 1]) and everything lighter is pure white, as a scanner's white point makes a page's
    # paper white; the generator's faint texture on paper is cut off. 1.0: no stretch.
    white_point: float = 1.0

    def __post_init__(self) -> None:
        cls = type(self)
        require(0.5 <= self.white_point <= 1.0, f"{cls.__name__}.white_point", "a number in [0.5, 1]",
                self.white_point)
        require(self.in_channels >= 1, f"{cls.__name__}.in_channels", "an integer >= 1", self.in_channels)
        require(self.out_channels >= 1, f"{cls.__name__}.out_channels", "an integer >= 1", self.out_channels)
        require(not self.input_skip or (self.in_channels, self.out_channels) in ((3, 1), (1, 3), (1, 1), (3, 3)),
                f"{cls.__name__}.input_skip", "False unless channels are 3->1, 1->3, 1->1 or 3->3", self.input_skip)
        require(self.width >= 1, f"{cls.__name__}.width", "an integer >= 1", self.width)
        require(N_DOWN[0] <= self.n_down <= N_DOWN[1], f"{cls.__name__}.n_down", in_range(N_DOWN), self.n_down)
        require(N_RES[0] <= self.n_res <= N_RES[1], f"{cls.__name__}.n_res", in_range(N_RES), self.n_res)
        require(self.groups >= 0, f"{cls.__name__}.groups", "an integer >= 0", self.groups)


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
        config = dataclasses.asdict(self.config)
        if config["white_point"] == 1.0:  # the files from before the white point: byte for byte the same
            del config["white_point"]
        return config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.config.white_point < 1.0:  # in [-1, 1]: (v / white_point) on v = (out + 1) / 2, capped at white
            out = F.hardtanh((out + 1) / self.config.white_point - 1)
        return out

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


def build_generator(config: Mapping[str, Any]) -> WeakGenerator:
    """Rebuild a WeakGenerator from `to_config_dict()` output (e.g. stored in a checkpoint)."""
    return WeakGenerator(config_from_dict(GeneratorConfig, config))


MODEL_FORMAT = "onepunchgan/scan_generator"


MODEL_VERSION = 1


def publish_scan_generator(g_scan: nn.Module, path: str | Path, image_size: int, steps: int) -> None:
    """models/scan_generator.pt: weights + architecture, loadable with weights_only=True."""
    from pipeline.models.model_file import publish_model

    publish_model(g_scan, path, MODEL_FORMAT, MODEL_VERSION, image_size=image_size, trained_steps=steps,
                  input="RGB in [-1, 1]", output="1-channel scan in [-1, 1]")


def load_scan_generator(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the published scan generator from its own config (no params.yaml needed)."""
    from pipeline.models.model_file import load_model

    return load_model(path, MODEL_FORMAT, MODEL_VERSION, build_generator, "scan generator",
                      "run `dvc repro train_cyclegan` or `dvc pull models/scan_generator.pt`", device)
