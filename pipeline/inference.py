"""Running the published networks on uint8 arrays in batches (the stages), and the ink
composite both the stages and `onepunch colorize` use. Whole pages of any size (the CLI):
`pipeline.page_inference`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from pipeline.models.pixels import to_model_input, to_uint8_image
from pipeline.training.runtime import Runtime


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


def colorize_arrays(model: nn.Module, scans: np.ndarray, rt: Runtime, batch: int = 64,
                    ink: str = "multiply", hints: np.ndarray | None = None) -> np.ndarray:
    """uint8 (N, H, W, 1) scans -> uint8 (N, H, W, 3) colorizations; ink="multiply": the
    scans multiplied over the color layer, as `colorize_image` composes a page.

    hints: uint8 (N, H, W, 4) hint channels (`pipeline.models.hints.encode_hints`) for a
    colorizer trained with hints; None: no hints (a hint model then runs automatic)."""
    colors = run_batched(model, with_hints(model, scans, hints), 3, rt, batch)
    return ink_multiply(colors, np.asarray(scans)) if ink == "multiply" else colors


def with_hints(model: nn.Module, scans: np.ndarray, hints: np.ndarray | None) -> np.ndarray:
    """The colorizer's input: the scans, followed by hint channels when it takes them."""
    from pipeline.models.hints import HINT_CHANNELS, NO_COLOR, takes_hints

    if not takes_hints(model):
        if hints is not None:
            raise ValueError("this colorizer was trained without hints (colorizer.hints_max: 0); "
                             "colorize without hints, or train one with hints")
        return scans
    scans = np.asarray(scans)
    if hints is None:
        hints = np.zeros((*scans.shape[:3], HINT_CHANNELS), np.uint8)
        hints[..., :3] = NO_COLOR
    assert hints.shape[:3] == scans.shape[:3], "hints and scans differ in shape"
    return np.concatenate([scans, hints], -1)


def ink_multiply(color_u8: np.ndarray, ink_u8: np.ndarray) -> np.ndarray:
    """A colorist's composite: the ink layer (H, W) or (H, W, 1) multiplied over the color
    layer (..., H, W, 3), all uint8. Every output channel is at most the ink's value, so each
    line pixel comes out at least as dark as the page's own ink."""
    ink = ink_u8 if ink_u8.ndim == color_u8.ndim else ink_u8[..., None]
    return ((color_u8.astype(np.uint16) * ink.astype(np.uint16) + 127) // 255).astype(np.uint8)
