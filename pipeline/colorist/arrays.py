"""Colorizing stacks of uint8 arrays, composed as `onepunch colorize` composes a page (the
page's ink multiplied over the color layer): what the evaluation measures and the training
sample grids show.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from pipeline.batched import run_batched
from pipeline.colorist.ink import ink_multiply
from pipeline.models.colorizer import with_hints
from pipeline.runtime import Runtime


def colorize_arrays(model: nn.Module, scans: np.ndarray, rt: Runtime, batch: int = 64,
                    ink: str = "multiply", hints: np.ndarray | None = None) -> np.ndarray:
    """uint8 (N, H, W, 1) scans -> uint8 (N, H, W, 3) colorizations; ink="multiply": the
    scans multiplied over the color layer, as `pipeline.colorist.page` composes a page.

    hints: uint8 (N, H, W, 4) hint channels (`pipeline.colorist.hints.encode_hints`) for a
    colorizer trained with hints; None: no hints (a hint model then runs automatic)."""
    colors = run_batched(model, with_hints(model, scans, hints), 3, rt, batch)
    return ink_multiply(colors, np.asarray(scans)) if ink == "multiply" else colors
