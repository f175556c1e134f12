"""Optimizer and learning-rate schedule of both GAN stages (Adam, CycleGAN's linear decay).
"""

from __future__ import annotations

from typing import Callable

import torch

from pipeline.runtime import Runtime


def adam(params, lr: float, betas: tuple[float, float], rt: Runtime) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel (one launch per step instead of one per tensor group)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=rt.device.type == "cuda")


def linear_decay(total_steps: int, decay_start: float) -> Callable[[int], float]:
    """LR factor: 1 until `decay_start` of the run, then linear to 0 at the end (CycleGAN)."""
    start = int(total_steps * decay_start)

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start) / max(1, total_steps - start))

    return factor
