"""`RandomAffine`: batched per-sample flip / small rotation / shift in one `grid_sample`;
applied to a channel-concatenation it transforms a (scan, color) pair identically.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pipeline.pixels import memory_format_of


class RandomAffine:
    """Per-sample random horizontal flip, rotation (±degrees) and shift (±fraction).

    Border padding: the prepared images are padded with white, so border pixels are the
    natural fill. Parameters come from the object's generator (checkpointed).
    """

    def __init__(self, flip: bool = True, degrees: float = 5.0, shift: float = 0.06, seed: int = 0):
        self.flip, self.degrees, self.shift = flip, degrees, shift
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float. Concatenate a pair on C to transform both identically."""
        b = x.shape[0]
        g = self.generator
        angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(self.degrees)
        sx = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if self.flip else torch.ones(b)
        t = (torch.rand(b, 2, generator=g) * 2 - 1) * self.shift * 2  # grid units span [-1, 1]
        if self.degrees == 0 and self.shift == 0 and not self.flip:
            return x
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * sx, -sin, t[:, 0]
        theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * sx, cos, t[:, 1]
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.contiguous(memory_format=memory_format_of(x))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
