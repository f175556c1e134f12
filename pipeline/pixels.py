"""Pixel conventions every network here shares: uint8 NHWC images <-> float NCHW tensors in
[-1, 1], ITU-R 601 luma (what "greyscale" means everywhere), and keeping a tensor's layout.
"""

from __future__ import annotations

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights: what "greyscale" means everywhere here


def luma(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of an RGB batch (B, 3, H, W) -> (B, 1, H, W), any value range."""
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """Keep the caller's layout (channels_last on the fast path, NCHW on the plain one)."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def greyscale_u8(color: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of uint8 (N, H, W, 3) -> uint8 (N, H, W, 1): the naive 'scan'."""
    w = np.array(LUMA, dtype=np.float32)
    return np.clip(np.rint(color.astype(np.float32) @ w), 0, 255).astype(np.uint8)[..., None]


def to_model_input(batch: torch.Tensor, device: torch.device,
                   memory_format: torch.memory_format = torch.channels_last) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [-1, 1] on `device`."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return (x / 127.5 - 1.0).contiguous(memory_format=memory_format)


def to_uint8_image(x: torch.Tensor) -> torch.Tensor:
    """float (B, C, H, W) in [-1, 1] -> uint8 (B, C, H, W)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
