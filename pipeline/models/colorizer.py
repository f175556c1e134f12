"""The colorizer, the OnePunchGAN attention U-Net (scan → color): its architecture, its input
(the scan, then optional hint channels), and its published model file (`models/colorizer.pt`).
The step that trains it is `pipeline.training.colorizer_step`.

OnePunchGAN (README, "train_colorizer") colorizes a 1-channel scan with
a U-Net generator trained as a conditional GAN:

- U-Net (Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image
  Segmentation"): an encoder that halves the resolution per level, a decoder that doubles
  it back, and at each level the encoder feature map concatenated into the decoder (the
  skip connection), so line-art detail reaches the output without passing the bottleneck.
  pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
  Networks") made this the generator of paired image translation; its 70×70 PatchGAN,
  `pipeline.models.discriminator.PatchDiscriminator(DiscriminatorConfig(in_channels=1 + 3))` for the
  conditional version, is the colorizer's discriminator.
- Decoder upsampling by sub-pixel convolution (Shi et al. 2016, "Real-Time Single Image
  and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network")
  with ICNR initialisation (Aitken et al. 2017, "Checkerboard artifact free sub-pixel
  convolution"): `pipeline.models.layers.PixelShuffleUpsample`.
- Simple (non-pooled) self-attention at the largest feature maps:
  `pipeline.models.layers.SimpleSelfAttention`, linear in the pixel count, so it fits at full
  resolution. It lets a color chosen in one place (hair, clothes) agree with the same
  region elsewhere in the image, which 3×3 convolutions cannot see.

`UNetConfig` round-trips through a plain dict (`to_config_dict()` / `build_unet(dict)`),
so a published checkpoint carries its architecture and loads with `weights_only=True`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.models.layers import (
    ConvNormAct,
    ImageGenerator,
    NormFactory,
    PixelShuffleUpsample,
    ResidualBlock,
    SimpleSelfAttention,
    group_norm,
)
from pipeline.models.model_file import config_from_dict
from pipeline.runtime import unwrap
from pipeline.validation import UNET_LEVELS, is_int, require

# Color hints (Zhang et al. 2017; AlacGAN, Ci et al. 2018): 4 uint8 channels after the scan,
# like every other network input. Channels 0-2: the hint color spread over its region (NO_COLOR,
# 0 in model space, where there is none); channel 3: the mask (`pipeline.colorist.hints`).
HINT_CHANNELS = 4
NO_COLOR = 128


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of an `AttentionUNet`.

    The U-Net has `len(mults)` resolution levels; level i runs at 1/2**i of the input size
    with `width * mults[i]` channels. Each level has an encoder side and a decoder side (at
    the deepest level the two sides, joined without a skip, are the bottleneck), and each
    side is a slot for one self-attention layer: 2 * len(mults) slots in all.
    """

    in_channels: int = 1  # the scan (1), or the scan + hint channels (1 + HINT_CHANNELS)
    out_channels: int = 3  # RGB
    width: int = 16  # channels at full resolution (pix2pix: 64)
    mults: tuple[int, ...] = (1, 2, 4, 8)  # channel multiplier per level; len(mults) - 1 downsamplings
    # SimpleSelfAttention layers, placed in the slots with the largest feature maps: level 0
    # first, and within a level the decoder side before the encoder side (the decoder's
    # features feed the output, and already hold the skip). Default 3: decoder and encoder
    # at full resolution, decoder at 1/2.
    n_attention: int = 3
    groups: int = 8  # GroupNorm groups (adapted to narrow layers); 0: no normalisation
    blocks_per_level: int = 1  # ResidualBlocks per encoder/decoder side of each level
    # Output = the scan repeated to grey RGB + a learned residual (final conv zero-initialised),
    # as in the CycleGAN generators: the net starts as the plain grey conversion and only has
    # to learn the colors (with hint channels, in_channels 1 + 4: the hint colors where they
    # spread, the grey scan elsewhere). On CPU budgets of ~1k steps this is the difference between
    # colored outputs and still-learning-to-copy-the-lines outputs.
    input_skip: bool = True

    def __post_init__(self) -> None:
        require(is_int(self.in_channels) and self.in_channels >= 1, "UNetConfig.in_channels", "an integer >= 1",
                 self.in_channels)
        require(is_int(self.out_channels) and self.out_channels >= 1, "UNetConfig.out_channels", "an integer >= 1",
                 self.out_channels)
        require(is_int(self.width) and self.width >= 1, "UNetConfig.width", "an integer >= 1", self.width)
        require(isinstance(self.mults, (tuple, list)) and UNET_LEVELS[0] <= len(self.mults) <= UNET_LEVELS[1]
                and all(is_int(m) and m >= 1 for m in self.mults),
                "UNetConfig.mults", f"{UNET_LEVELS[0]} to {UNET_LEVELS[1]} integers >= 1, e.g. (1, 2, 4, 8)",
                self.mults)
        object.__setattr__(self, "mults", tuple(self.mults))  # a list from params.yaml: keep the config hashable
        require(is_int(self.n_attention) and 0 <= self.n_attention <= 2 * len(self.mults), "UNetConfig.n_attention",
                 f"an integer in [0, 2 * len(mults)] = [0, {2 * len(self.mults)}]", self.n_attention)
        require(is_int(self.groups) and self.groups >= 0, "UNetConfig.groups", "an integer >= 0", self.groups)
        require(is_int(self.blocks_per_level) and self.blocks_per_level >= 0, "UNetConfig.blocks_per_level",
                 "an integer >= 0", self.blocks_per_level)
        require(type(self.input_skip) is bool, "UNetConfig.input_skip", "a bool", self.input_skip)
        require(not self.input_skip or self.in_channels in (1, 1 + HINT_CHANNELS, self.out_channels),
                "UNetConfig.input_skip", "False unless in_channels is 1 (the scan, repeated), 1 + 4 (scan and "
                "hints) or equals out_channels", self.input_skip)

    @property
    def n_levels(self) -> int:
        return len(self.mults)

    def attention_slots(self) -> list[tuple[int, str]]:
        """(level, side) of each attention layer, largest feature maps first."""
        slots = [(level, side) for level in range(self.n_levels) for side in ("decoder", "encoder")]
        return slots[: self.n_attention]


def _residual_blocks(ch: int, n: int, norm: NormFactory | None, act) -> nn.Module:
    return nn.Sequential(*[ResidualBlock(ch, norm, act) for _ in range(n)])


class AttentionUNet(ImageGenerator):
    """The OnePunchGAN colorizer generator: U-Net + simple self-attention + pixel-shuffle decoder.

    Code (paper):  encoder[i]  = [blocks, attention, downsample]   contracting path, level i
                   bottleneck  = [blocks, attention, blocks, attention]   deepest level
                   decoder[i]  = [upsample, merge, blocks, attention]     expansive path, level i
                   skips       = the encoder maps "copied and cropped" into the decoder
                                 (Ronneberger et al. 2015, Fig. 1); here padded, not cropped

    with channels dims[i] = width · mults[i] at 1/2**i resolution. Per side of level i:

    - blocks: `blocks_per_level` ResidualBlocks (reflect padding), LeakyReLU(0.2) in the
      encoder and ReLU in the decoder, as in pix2pix's U-Net (appendix 6.1.1);
    - downsample: conv3x3 stride 2, dims[i] → dims[i+1];
    - upsample: PixelShuffleUpsample dims[i+1] → dims[i] (conv + pixel shuffle, ICNR init);
    - merge: concatenation [upsampled, skip] (2·dims[i] channels) → conv3x3 → dims[i];
    - attention: SimpleSelfAttention (γ = 0 at init: the identity) in the slots given by
      `UNetConfig.attention_slots()`, nn.Identity elsewhere.

    Input: (B, in_channels, H, W) scan in [-1, 1] (then the hint channels, if any), any H, W (replicate-padded to a multiple
    of 2**(len(mults) - 1) and cropped back). Output: (B, out_channels, H, W) in [-1, 1]:
    hardtanh(scan repeated to RGB + residual) with `input_skip` (exactly the grey scan at
    init, the final conv being zero), else tanh(residual).
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.config = cfg
        norm = group_norm(cfg.groups) if cfg.groups else None
        lrelu = functools.partial(nn.LeakyReLU, 0.2)
        dims = [cfg.width * m for m in cfg.mults]  # channels per resolution level
        slots = set(cfg.attention_slots())

        def attention(level: int, side: str) -> nn.Module:
            return SimpleSelfAttention(dims[level]) if (level, side) in slots else nn.Identity()

        self.stem = ConvNormAct(cfg.in_channels, dims[0], 3, padding_mode="reflect", norm_layer=norm,
                                act_layer=lrelu)
        self.encoder = nn.ModuleList([
            nn.ModuleList([
                _residual_blocks(a, cfg.blocks_per_level, norm, lrelu),
                attention(level, "encoder"),
                ConvNormAct(a, b, 3, stride=2, padding=1, norm_layer=norm, act_layer=lrelu),  # H → H/2
            ])
            for level, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
        ])
        deepest = cfg.n_levels - 1
        self.bottleneck = nn.Sequential(
            _residual_blocks(dims[-1], cfg.blocks_per_level, norm, lrelu),
            attention(deepest, "encoder"),
            _residual_blocks(dims[-1], cfg.blocks_per_level, norm, nn.ReLU),
            attention(deepest, "decoder"),
        )
        self.decoder = nn.ModuleList([
            nn.ModuleList([
                PixelShuffleUpsample(b, a, 2, norm, nn.ReLU),  # H/2 → H
                ConvNormAct(2 * a, a, 3, norm_layer=norm, act_layer=nn.ReLU),  # merge [up, skip]
                _residual_blocks(a, cfg.blocks_per_level, norm, nn.ReLU),
                attention(level, "decoder"),
            ])
            for level, (a, b) in reversed(list(enumerate(zip(dims[:-1], dims[1:]))))
        ])
        self.head = nn.Conv2d(dims[0], cfg.out_channels, 3, padding=1, padding_mode="reflect")
        if cfg.input_skip:  # residual = 0: start as the plain grey conversion
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.pad_multiple = 2 ** (cfg.n_levels - 1)
        # reflection padding (stem, residual blocks, head) needs >= 2 pixels at every level
        self.min_size = 2 * self.pad_multiple

    def to_config_dict(self) -> dict[str, Any]:
        """Plain-dict architecture (lists, not tuples): JSON- and `weights_only`-loadable."""
        return {**dataclasses.asdict(self.config), "mults": list(self.config.mults)}

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.in_channels == self.config.out_channels:
            return x
        grey = x[:, :1].expand(-1, self.config.out_channels, -1, -1)  # the scan as grey RGB: (B, C_out, H, W)
        if self.config.in_channels == 1 + HINT_CHANNELS and self.config.out_channels == 3:
            # with hints: start from the hint colors where they spread (mask channel above
            # its "none" value, -1 in model space), so a hint is obeyed from the first step
            # and the network learns the shading over it
            painted = x[:, 1 + 3:1 + 4] > -0.5  # (B, 1, H, W)
            return torch.where(painted, x[:, 1:1 + 3], grey)
        return grey

    def _net(self, x: torch.Tensor) -> torch.Tensor:  # H', W': multiples of 2**(L-1)
        x = self.stem(x)  # (B, dims[0], H', W')
        skips = []
        for blocks, attn, down in self.encoder:  # level i: (B, dims[i], H'/2**i, W'/2**i)
            x = attn(blocks(x))
            skips.append(x)
            x = down(x)  # (B, dims[i+1], H'/2**(i+1), W'/2**(i+1))
        x = self.bottleneck(x)  # (B, dims[-1], H'/2**(L-1), W'/2**(L-1))
        for up, merge, blocks, attn in self.decoder:
            x = up(x)  # (B, dims[i], H'/2**i, W'/2**i)
            x = merge(torch.cat([x, skips.pop()], 1))  # (B, 2·dims[i], ...) -> (B, dims[i], ...)
            x = attn(blocks(x))
        assert not skips, "every encoder map must be consumed by the decoder"
        return self.head(x)  # (B, C_out, H', W')


def build_unet(config: Mapping[str, Any]) -> AttentionUNet:
    """Rebuild an AttentionUNet from `to_config_dict()` output (e.g. stored in a checkpoint).

    Every key is required: a key missing from a checkpoint would silently take today's
    default, which need not be the architecture the weights were trained with.
    """
    return AttentionUNet(config_from_dict(UNetConfig, config, require_all=True))


MODEL_FORMAT = "onepunchgan/colorizer"


MODEL_VERSION = 1


def takes_hints(model: nn.Module) -> bool:
    """Was this colorizer trained with hint channels? (A published model carries its config.)"""
    config = getattr(unwrap(model), "config", None)
    return getattr(config, "in_channels", 1) == 1 + HINT_CHANNELS


def require_hints(model: nn.Module, name: str = "this colorizer") -> None:
    """Refuse hints for a colorizer that has no hint channels, saying what to do."""
    if not takes_hints(model):
        raise ValueError(f"{name} was trained without hints (colorizer.hints_max: 0): colorize without "
                         "hints, or use a colorizer trained with them")


def with_hints(model: nn.Module, scans: np.ndarray, hints: np.ndarray | None) -> np.ndarray:
    """The colorizer's uint8 input (N, H, W, 1 [+ HINT_CHANNELS]): the scans, followed by the
    hint channels when it takes them (no hints given: none anywhere, the automatic colorizer)."""
    if not takes_hints(model):
        if hints is not None:
            require_hints(model)
        return scans
    scans = np.asarray(scans)
    if hints is None:
        hints = np.zeros((*scans.shape[:3], HINT_CHANNELS), np.uint8)
        hints[..., :3] = NO_COLOR
    assert hints.shape[:3] == scans.shape[:3], "hints and scans differ in shape"
    return np.concatenate([scans, hints], -1)


def publish_colorizer(g: nn.Module, path: str | Path, image_size: int, steps: int, variant: str) -> None:
    from pipeline.models.model_file import publish_model

    # these words are stored in every published file; they name the module hints lived in when
    # the released models were trained, and stay as they are so that a re-run publishes the
    # same bytes (dvc.lock's md5)
    described = ("1-channel scan in [-1, 1] + 4 hint channels (pipeline.models.hints)" if takes_hints(g)
                 else "1-channel scan in [-1, 1]")
    publish_model(g, path, MODEL_FORMAT, MODEL_VERSION, image_size=image_size, trained_steps=steps,
                  variant=variant, input=described, output="RGB in [-1, 1]")


def load_colorizer(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    from pipeline.models.model_file import load_model

    return load_model(path, MODEL_FORMAT, MODEL_VERSION, build_unet, "colorizer",
                      f"run `dvc repro` or `dvc pull {path}`", device)
