"""GAN objectives: least-squares GAN (Mao et al. 2017), as in CycleGAN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean squared distance of the score map to 1 (real) or 0 (fake)."""
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    return F.mse_loss(pred.float(), target.float())
