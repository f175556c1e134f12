"""GAN pieces shared by the scan generator (CycleGAN) and the colorizer (pix2pix-style cGAN).

- `lsgan_loss`: least-squares GAN objective (Mao et al. 2017), as in CycleGAN.
- `ImagePool`: the 50-image history of generated images each discriminator also sees
  (Shrivastava et al. 2017; CycleGAN §4), so D doesn't chase G's latest mode.
- `RandomAffine`: batched per-sample flip / small rotation / shift in one `grid_sample`;
  `apply` on a channel-concatenation transforms a (scan, color) pair identically.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean squared distance of the score map to 1 (real) or 0 (fake)."""
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    return F.mse_loss(pred.float(), target.float())


class ImagePool:
    """History buffer of generated images (CycleGAN's pool, size 50 by default).

    `query` returns, per image, either the new image or (p=0.5, once the pool is full) a
    stored one that it replaces. Draws come from the pool's own generator, so a
    checkpointed pool resumes exactly.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                j = int(torch.randint(0, self.size, (), generator=self.generator))
                out.append(self.images[j].clone())
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.cat(out).contiguous(memory_format=_format_of(images))

    def state_dict(self) -> dict:
        return {"images": [t.cpu() for t in self.images], "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        device = self.images[0].device if self.images else None
        self.images = [t.to(device) if device is not None else t for t in state["images"]]
        self.generator.set_state(state["generator"])

    def to(self, device: torch.device) -> "ImagePool":
        self.images = [t.to(device) for t in self.images]
        return self


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
        return out.contiguous(memory_format=_format_of(x))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _format_of(x: torch.Tensor) -> torch.memory_format:
    """Keep the caller's layout (channels_last on the fast path, NCHW on the plain one)."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights: what "greyscale" means everywhere here


def luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of an RGB batch (B, 3, H, W) -> (B, 1, H, W), any value range."""
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)
