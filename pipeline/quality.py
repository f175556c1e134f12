"""Image quality measures for the evaluation (DESIGN.md "Evaluation").

PSNR and SSIM come from torchmetrics (Gaussian-window SSIM of Wang et al. 2004); L1 is the
mean absolute difference. All take float tensors in [0, 1], shape (B, C, H, W), and return
one value per image so callers can average or report spread.
"""

from __future__ import annotations

import torch


def l1_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred.float() - target.float()).abs().flatten(1).mean(1)


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(pred.float(), target.float(), data_range=1.0, reduction="none",
                                   dim=(1, 2, 3))


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(pred.float(), target.float(), data_range=1.0,
                                               reduction="none")


def compare(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L1, PSNR (dB) and SSIM of `pred` against `target`."""
    return {"l1": l1_per_image(pred, target), "psnr": psnr_per_image(pred, target),
            "ssim": ssim_per_image(pred, target)}
