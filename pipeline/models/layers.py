"""Reusable layers of both GAN stages (CycleGAN scan generator and U-Net colorizer).

- `SimpleSelfAttention`: the "simple" (non-pooled) self-attention of fastai's
  `SimpleSelfAttention` (OnePunchGAN's simple, non-pooled attention), o = γ · (x xᵀ / N) · conv1x1(x) + x. Unlike
  SAGAN's query/key attention (Zhang et al. 2019) it never forms an N×N map, so it is
  cheap enough for full-resolution feature maps.
- `icnr_` and `PixelShuffleUpsample`: sub-pixel convolution upsampling (Shi et al. 2016,
  "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
  Convolutional Neural Network") with ICNR initialisation (Aitken et al. 2017,
  "Checkerboard artifact free sub-pixel convolution"), as in fastai's PixelShuffle_ICNR.
- `ResidualBlock`: the ResNet block of the CycleGAN generator (Zhu et al. 2017, after
  Johnson et al. 2016).
- `ConvNormAct`, `group_norm`: the conv → norm → activation unit everything is built
  from. Normalisation is GroupNorm, never BatchNorm: batches are tiny (4-8 images) and
  split across DDP ranks, where batch statistics are noisy and rank-dependent.
- `count_flops`: forward FLOPs of a module, for the benchmarks' GFLOP/s.

Layer choices are injected as factories (`norm_layer: ch -> nn.Module`,
`act_layer: () -> nn.Module`); `None` means `nn.Identity`, so every `forward` is a
straight line.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

NormFactory = Callable[[int], nn.Module]  # channels -> normalisation layer
ActFactory = Callable[[], nn.Module]  # () -> activation layer


def _identity_norm(channels: int) -> nn.Module:
    return nn.Identity()


def _identity_act() -> nn.Module:
    return nn.Identity()


def group_norm(groups: int, eps: float = 1e-5) -> NormFactory:
    """A factory `channels -> nn.GroupNorm` using up to `groups` groups.

    The group count adapts to narrow layers: it is the largest divisor of `channels`
    that is <= `groups` (GroupNorm needs groups | channels), so `group_norm(8)` works for
    4 channels (4 groups) and 12 channels (6 groups) alike.
    """
    if groups < 1:
        raise ValueError(f"group_norm: groups must be an integer >= 1, got {groups!r}")

    def make(channels: int) -> nn.Module:
        g = min(groups, channels)
        while channels % g:
            g -= 1
        return GroupNorm(g, channels, eps=eps)

    return make


class GroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` that keeps a bf16/fp16 activation in its dtype under autocast.

    Autocast runs group_norm in fp32, so every normalised bf16 activation would be copied
    up to fp32 and copied back down by the next convolution: two extra passes over each
    activation (on an H100, copies, casts and layout changes together, were 38% of the
    full-scale colorizer step's GPU time). The kernel accumulates its statistics in fp32
    either way; only the stored output is bf16.
    Same parameters and state-dict keys as `nn.GroupNorm`; fp32 inputs take its own path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)
        return super().forward(x)


class ConvNormAct(nn.Module):
    """conv → norm → act, the unit of every encoder/discriminator stage.

    `padding` defaults to kernel_size // 2 ("same" for odd kernels at stride 1);
    `padding_mode="reflect"` is what the CycleGAN generator uses to avoid border artefacts.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        padding: int | None = None,
        padding_mode: str = "zeros",
        norm_layer: NormFactory | None = None,
        act_layer: ActFactory | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, padding_mode=padding_mode, bias=bias)
        self.norm = (norm_layer or _identity_norm)(out_ch)
        self.act = (act_layer or _identity_act)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ResidualBlock(nn.Module):
    """x + (conv3x3 → norm → act → conv3x3 → norm)(x): the CycleGAN ResNet block.

    Code (paper): ResnetBlock (Zhu et al. 2017, "R256" in appendix 7.2). No activation
    after the sum, and reflection padding, as in the reference implementation.
    """

    def __init__(
        self,
        ch: int,
        norm_layer: NormFactory | None = None,
        act_layer: ActFactory | None = nn.ReLU,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(ch, ch, 3, padding_mode=padding_mode, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(ch, ch, 3, padding_mode=padding_mode, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class SimpleSelfAttention(nn.Module):
    """Simple (non-pooled) self-attention: o = γ · (x xᵀ / N) · conv1x1(x) + x.

    Code (paper/fastai): `x` is the feature map flattened to (C, N), N = H·W;
    `self.conv` is the 1×1 convolution; `self.gamma` is γ.

    x xᵀ is a C×C Gram matrix of channel correlations over all pixels, so every output
    pixel sees global context, yet cost and memory are O(C²·N): linear in the pixel count,
    unlike SAGAN's N×N attention map. That is what lets it sit on the largest feature maps.

    The 1/N scale keeps the Gram entries O(|x|²) at any resolution; without it the
    diagonal of x xᵀ grows with N (at 256², 65,536 unit-variance pixels already exceed
    fp16's maximum of 65,504) and the output grows with N·|x|³. The 1/√N is folded into
    both operands, so no intermediate grows with N either.

    γ starts at 0: at initialisation the layer is exactly the identity, and the network
    learns how much attention to mix in (as in SAGAN). Note that γ = 0 also means the
    1×1 conv gets zero gradient until γ moves away from 0.
    """

    def __init__(self, channels: int, spectral_norm: bool = False) -> None:
        super().__init__()
        conv = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.conv = nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv
        self.gamma = nn.Parameter(torch.zeros(()))  # γ

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        v = self.conv(x).flatten(2)  # conv1x1(x): (B, C, N)
        xs = x.flatten(2) * n**-0.5  # x / √N: (B, C, N)
        gram = torch.bmm(xs, xs.transpose(1, 2))  # x xᵀ / N: (B, C, C)
        o = torch.bmm(gram, v)  # (x xᵀ / N) · conv1x1(x): (B, C, N)
        return x + self.gamma * o.view(b, c, h, w)  # x first: the output keeps x's memory format


def icnr_(
    weight: torch.Tensor,
    scale: int = 2,
    init: Callable[[torch.Tensor], object] = nn.init.kaiming_normal_,
) -> torch.Tensor:
    """ICNR initialisation (Aitken et al. 2017) of a conv weight feeding `PixelShuffle(scale)`.

    PixelShuffle builds output channel c's sub-pixel (i, j) from input channel
    c·scale² + i·scale + j. Giving all scale² filters of each output channel the same
    weights makes the shuffled output equal to nearest-neighbour upsampling of a single
    conv, so there is no checkerboard at initialisation. In place; returns `weight`.
    """
    out_ch, in_ch, kh, kw = weight.shape
    if out_ch % (scale * scale):
        raise ValueError(f"icnr_: out channels ({out_ch}) must be a multiple of scale² ({scale * scale})")
    with torch.no_grad():
        base = weight.new_empty(out_ch // (scale * scale), in_ch, kh, kw)
        init(base)
        weight.copy_(base.repeat_interleave(scale * scale, dim=0))  # (out_ch, in_ch, kh, kw)
    return weight


class PixelShuffleUpsample(nn.Module):
    """×scale upsampling: conv3x3 to out_ch·scale² (ICNR init) → PixelShuffle → [blur] → norm → act.

    Sub-pixel convolution (Shi et al. 2016) learns the upsampling instead of
    interpolating; ICNR (Aitken et al. 2017) removes its checkerboard at init. The
    optional blur (replication pad + 2×2 average pool, stride 1) is fastai's
    PixelShuffle_ICNR(blur=True) trick against checkerboards that reappear in training.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        scale: int = 2,
        norm_layer: NormFactory | None = None,
        act_layer: ActFactory | None = None,
        *,
        blur: bool = False,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * scale * scale, 3, padding=1, padding_mode=padding_mode)
        icnr_(self.conv.weight, scale)
        nn.init.zeros_(self.conv.bias)  # a per-sub-pixel bias would re-introduce the checkerboard
        self.shuffle = nn.PixelShuffle(scale)
        # pad left/top by one then average 2×2: same size, each pixel mixes with its up/left neighbours
        self.blur = nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1)) if blur \
            else nn.Identity()
        self.norm = (norm_layer or _identity_norm)(out_ch)
        self.act = (act_layer or _identity_act)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, out_ch·scale², H, W)
        x = self.shuffle(x)  # (B, out_ch, H·scale, W·scale)
        return self.act(self.norm(self.blur(x)))


class ImageGenerator(nn.Module):
    """What both generators share around their networks: any input size and the output.

    The input is replicate-padded up to a multiple of `pad_multiple` (and at least
    `min_size`, where every reflection padding is valid), `_net` runs on it, and the result
    is cropped back to H, W. With `config.input_skip` the network learns a residual over
    the plain channel conversion `_skip(x)`: hardtanh(skip + residual), which keeps the
    output in [-1, 1] without squashing the skip path; otherwise tanh(residual).

    Subclasses set `config`, `pad_multiple` and `min_size` and define `_skip` and `_net`.
    """

    config: Any
    pad_multiple: int
    min_size: int

    def _padded_size(self, size: int) -> int:
        return max(-(-size // self.pad_multiple) * self.pad_multiple, self.min_size)

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = self._padded_size(h) - h, self._padded_size(w) - w
        padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x  # (B, C_in, H', W')
        residual = self._net(padded)[..., :h, :w]  # (B, C_out, H, W)
        if self.config.input_skip:
            return F.hardtanh(self._skip(x) + residual)
        return torch.tanh(residual)


def count_flops(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs (2 × multiply-accumulates) of `module` on one zero input of `input_shape`.

    Counts what `torch.utils.flop_counter.FlopCounterMode` counts: convolutions, matmuls
    (including the attention's bmm), linear layers; elementwise ops and norms are not
    counted, as usual for GFLOP/s figures. Runs in eval mode without grad, so it neither
    builds a graph nor advances spectral-norm power iterations; the mode is restored.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(input_shape, device=device, dtype=dtype))
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())
