"""Running a network over stacks of uint8 images in batches (make_pairs, the evaluation, the
training sample grids). Whole pages of any size, tiled: `pipeline.colorist.page`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from pipeline.pixels import to_model_input, to_uint8_image
from pipeline.runtime import Runtime


@torch.no_grad()
def run_batched(model: nn.Module, images, out_channels: int, rt: Runtime, batch: int = 64,
                progress: bool = False, desc: str = "") -> np.ndarray:
    """Inference over uint8 (N, H, W, C) images -> uint8 (N, H, W, out_channels)."""
    from tqdm import tqdm

    model.eval()
    out = []
    for chunk in tqdm(list(iterate_batches(images, batch)), disable=not progress, desc=desc, unit="batch"):
        x = to_model_input(torch.from_numpy(chunk), rt.device, rt.memory_format)
        with rt.autocast():
            y = model(x)
        out.append(to_uint8_image(y).permute(0, 2, 3, 1).cpu().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:3], out_channels), np.uint8)


def iterate_batches(array: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Sequential batches for inference (make_pairs, evaluation)."""
    for i in range(0, len(array), batch_size):
        yield np.ascontiguousarray(array[i:i + batch_size])


def generate_scans(model: nn.Module, color: np.ndarray, rt: Runtime, batch: int = 64,
                   progress: bool = False) -> np.ndarray:
    """uint8 (N, H, W, 3) colored images -> uint8 (N, H, W, 1) scans."""
    return run_batched(model, color, 1, rt, batch, progress, desc="scans")
