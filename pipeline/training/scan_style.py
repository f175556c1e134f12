"""`ScanStyle`: turn a generated scan into an ink-and-tone scan, as a colorizer input augmentation.

A generated scan (the CycleGAN's G_scan output) keeps what a true scan loses: continuous
grey shading, highlights inside dark fills, folds drawn in grey. A colorizer trained on
generated scans alone can learn those cues, and true scans do not carry them (issue 25's
"domain gap"). `ScanStyle` re-inks a share of the training scans the way manga is inked
(the convention of `pipeline.data.synthetic.palettes.ink_tone`, and of real screentone):

1. descreen: a Gaussian blur of random width gives each pixel its local tone;
2. quantise the tone into ink levels — solid black, dense tone, light tone, white paper —
   at randomly jittered thresholds (or, with `continuous`, keep it as an AM halftone);
3. screen: each level becomes round dots on a lattice of random pitch, angle and phase
   (at the smallest pitches, 2-3 px, the light tone aliases: 5-19 % ink instead of 18 %);
4. solid ink: every pixel darker than a random 0.35-0.5 after a light blur is inked solid
   on top, so outlines survive as clean binary lines, and dark fills go solid black as
   manga inks dark colors; the dense-tone level is thus left to about 0.5-0.66.

The colorizer's target colors are untouched; the re-inked scan replaces the generated one
wherever the step uses the scan, as a true scan would: the generator's input, the
discriminator's condition and the ink composed over the colors for the composite L1.
Parameters are drawn
from the object's generator (checkpointed), so a resumed run draws what an uninterrupted
one would.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pipeline.pixels import memory_format_of

# ink coverage of the four levels (white paper, light tone, dense tone, solid black): the
# synthetic scans' light tone inks ~18% of the paper, dense tone ~50%
LEVEL_COVERAGE = (0.0, 0.18, 0.5, 1.0)
# default lightness thresholds between the levels (of [0, 1]), midway between the levels'
# descreened lightness (1, 0.82, 0.5, 0); each is jittered per sample
LEVEL_EDGES = (0.9, 0.66, 0.28)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) blurred with a per-sample Gaussian of std `sigma` (B,), reflect padding."""
    radius = min(int(math.ceil(3 * float(sigma.max()))), min(x.shape[-2:]) - 1)  # reflect needs pad < size
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None].to(x.device, x.dtype)) ** 2)  # (B, K)
    k = k / k.sum(1, keepdim=True)
    b = x.shape[0]
    # one grouped convolution per axis: sample i uses its own kernel (groups = B)
    y = F.pad(x.reshape(1, b, *x.shape[2:]), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=b)
    y = F.conv2d(y, k[:, None, :, None], groups=b)
    return y.reshape_as(x)


def dot_screen(shape: tuple[int, int], pitch: torch.Tensor, angle: torch.Tensor, phase: torch.Tensor,
               device: torch.device) -> torch.Tensor:
    """(B, 1, H, W) distance of each pixel to the nearest dot centre of each sample's lattice,
    in units of the pitch (0 at a centre, at most 1/√2 between four)."""
    h, w = shape
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    cos, sin = torch.cos(angle).to(device)[:, None, None], torch.sin(angle).to(device)[:, None, None]
    pitch = pitch.to(device)[:, None, None]
    u = (xs * cos + ys * sin) / pitch + phase[:, 0].to(device)[:, None, None]  # (B, H, W)
    v = (-xs * sin + ys * cos) / pitch + phase[:, 1].to(device)[:, None, None]
    du, dv = u - torch.round(u), v - torch.round(v)
    return torch.sqrt(du * du + dv * dv)[:, None]


def ink_from_coverage(coverage: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Boolean ink of round dots covering `coverage` (of [0, 1]) of the paper: a dot of
    area c has radius √(c/π) pitches; past 0.9 the dots merge into solid black."""
    return (distance < torch.sqrt(coverage.clamp(0, 1) / math.pi)) | (coverage > 0.9)


class ScanStyle:
    """Per sample, with probability `p`, re-ink a scan as lines + screentone (module docstring).

    `pitch` is the dot lattice's spacing range in pixels at the training resolution.
    """

    def __init__(self, p: float, seed: int, pitch: tuple[float, float] = (2.0, 4.5), continuous: float = 0.25):
        if not 0 <= p <= 1:
            raise ValueError(f"ScanStyle: p must be a probability in [0, 1], got {p!r}")
        self.p, self.pitch, self.continuous = p, pitch, continuous
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, scan: torch.Tensor) -> torch.Tensor:
        """scan: (B, 1, H, W) in [-1, 1] -> the same shape, the chosen samples re-inked."""
        b = scan.shape[0]
        g = self.generator
        # every parameter is drawn for every sample, chosen or not: the generator's use per
        # batch does not depend on which samples were chosen
        chosen = torch.rand(b, generator=g) < self.p
        descreen = 0.8 + 1.2 * torch.rand(b, generator=g)  # σ of the local tone, pixels
        edges = torch.tensor(LEVEL_EDGES) + 0.06 * (torch.rand(b, 3, generator=g) * 2 - 1)  # (B, 3)
        continuous = torch.rand(b, generator=g) < self.continuous
        lo, hi = self.pitch
        pitch = lo + (hi - lo) * torch.rand(b, generator=g)
        angle = torch.rand(b, generator=g) * (math.pi / 2)
        phase = torch.rand(b, 2, generator=g)
        line_sigma = 0.3 + 0.3 * torch.rand(b, generator=g)
        line_at = 0.35 + 0.15 * torch.rand(b, generator=g)  # lightness below which a stroke is ink
        if not bool(chosen.any()):
            return scan
        dev = scan.device
        with torch.no_grad():
            x = (scan.float() + 1) / 2  # (B, 1, H, W) lightness in [0, 1]
            tone = gaussian_blur(x, descreen)
            e = edges.to(dev)[:, :, None, None]  # (B, 3, 1, 1)
            level = (tone < e[:, 0:1]).int() + (tone < e[:, 1:2]).int() + (tone < e[:, 2:3]).int()  # 0..3
            coverage = torch.tensor(LEVEL_COVERAGE, device=dev)[level]
            coverage = torch.where(continuous.to(dev)[:, None, None, None], 1 - tone, coverage)
            ink = ink_from_coverage(coverage, dot_screen(x.shape[-2:], pitch, angle, phase, dev))
            ink |= gaussian_blur(x, line_sigma) < line_at.to(dev)[:, None, None, None]
            restyled = (1 - ink.float()) * 2 - 1
            out = torch.where(chosen.to(dev)[:, None, None, None], restyled.to(scan.dtype), scan)
        return out.contiguous(memory_format=memory_format_of(scan))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
