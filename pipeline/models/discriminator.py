"""The 70×70 PatchGAN discriminator (Isola et al. 2017) of both GANs, with the simple
self-attention of `pipeline.models.layers` after its downsampling blocks.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.layers import (
    ConvNormAct,
    SimpleSelfAttention,
    group_norm,
)
from pipeline.models.model_file import config_from_dict
from pipeline.validation import DISC_LAYERS, in_range, require


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of a `PatchDiscriminator`."""

    in_channels: int  # 1 for D_scan, 3 for D_color, 1 + 3 for the colorizer's (scan, color) pair
    width: int = 16  # channels of the first layer (pix2pix: 64)
    n_layers: int = 3  # stride-2 blocks; 3 gives the 70×70 receptive field
    attention: bool = True  # SimpleSelfAttention after each stride-2 block
    groups: int = 8  # GroupNorm groups (adapted to narrow layers); 0: no normalisation
    spectral_norm: bool = False  # every convolution spectrally normalised (Miyato et al. 2018)
    # A high-pass view beside each input channel: tanh(gain · (x − its 3×3 mean)), so faint
    # texture (a generated scan's grey speckle on paper) is amplified for D, lines saturate
    # at ±1, and flat paper (as true scans have) is 0. 0: the input alone.
    highpass: float = 0.0

    def __post_init__(self) -> None:
        cls = type(self)
        require(self.in_channels >= 1, f"{cls.__name__}.in_channels", "an integer >= 1", self.in_channels)
        require(self.width >= 1, f"{cls.__name__}.width", "an integer >= 1", self.width)
        require(DISC_LAYERS[0] <= self.n_layers <= DISC_LAYERS[1], f"{cls.__name__}.n_layers", in_range(DISC_LAYERS),
                self.n_layers)
        require(self.groups >= 0, f"{cls.__name__}.groups", "an integer >= 0", self.groups)
        require(self.highpass >= 0, f"{cls.__name__}.highpass", "a number >= 0", self.highpass)


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
        channels_in = cfg.in_channels * (2 if cfg.highpass else 1)
        dims = [channels_in] + [cfg.width * min(2**i, 8) for i in range(cfg.n_layers + 1)]

        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-2], dims[1:-1])):  # C64, C128, C256: stride 2
            blocks.append(ConvNormAct(a, b, 4, stride=2, padding=1, norm_layer=norm if i else None,
                                      act_layer=lrelu))
            blocks.append(SimpleSelfAttention(b) if cfg.attention else nn.Identity())
        blocks.append(ConvNormAct(dims[-2], dims[-1], 4, stride=1, padding=1, norm_layer=norm,
                                  act_layer=lrelu))  # C512: stride 1
        self.features = nn.Sequential(*blocks)
        self.head = nn.Conv2d(dims[-1], 1, 4, stride=1, padding=1)  # one score per patch
        if cfg.spectral_norm:  # a 1-Lipschitz D cannot win outright by growing its weights
            for module in list(self.modules()):
                for name, child in list(module.named_children()):
                    if isinstance(child, nn.Conv2d):
                        setattr(module, name, nn.utils.parametrizations.spectral_norm(child))

    def to_config_dict(self) -> dict[str, Any]:
        config = dataclasses.asdict(self.config)
        if not config["highpass"]:  # checkpoints from before the high-pass view: the same dict
            del config["highpass"]
        return config

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.highpass:
            return x
        mean = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return torch.cat([x, torch.tanh(self.config.highpass * (x - mean))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C_in, H, W) -> (B, 1, h, w); for n_layers = 3, h = H/8 - 2
        return self.head(self.features(self._inputs(x)))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The score map and every block's activations (for a feature-matching loss)."""
        feats = []
        x = self._inputs(x)
        for block in self.features:
            x = block(x)
            if not isinstance(block, (SimpleSelfAttention, nn.Identity)):
                feats.append(x)
        return self.head(x), feats


def build_discriminator(config: Mapping[str, Any]) -> PatchDiscriminator:
    """Rebuild a PatchDiscriminator from `to_config_dict()` output."""
    return PatchDiscriminator(config_from_dict(DiscriminatorConfig, config))
