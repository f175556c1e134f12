"""Colorizing stacks of uint8 arrays, composed as `onepunch colorize` composes a page
(`pipeline.colorist.ink.compose_page`: strokes multiplied over the color layer, black fills in
a dark shade of their color, screentone descreened): what the evaluation measures and the
training sample grids show.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from pipeline.batched import run_batched
from pipeline.colorist.ink import compose_page, separate
from pipeline.models.colorizer import with_hints
from pipeline.runtime import Runtime


def colorize_arrays(model: nn.Module, scans: np.ndarray, rt: Runtime, batch: int = 64,
                    ink: str = "multiply", hints: np.ndarray | None = None, edges: bool = True,
                    labels: list[np.ndarray] | None = None) -> np.ndarray:
    """uint8 (N, H, W, 1) scans -> uint8 (N, H, W, 3) colorizations; ink="multiply": composed
    as `pipeline.colorist.page` composes a page; "none": the color layer.

    hints: uint8 (N, H, W, 4) hint channels (`pipeline.colorist.hints.encode_hints`) for a
    colorizer trained with hints; None: no hints (a hint model then runs automatic).
    edges: the colors near each outline taken from farther inside its area, as
    `onepunch colorize` does (`pipeline.colorist.regions.inside_edges`); False: the
    network's colors as they come. labels: the scans' regions, where the caller has them
    (`pipeline.colorist.regions.regions`; None: computed here)."""
    colors = run_batched(model, with_hints(model, scans, hints), 3, rt, batch)
    if edges:
        colors = clean_edges(colors, scans, labels)
    return compose_arrays(colors, scans) if ink == "multiply" else colors


def clean_edges(colors: np.ndarray, scans: np.ndarray, labels: list[np.ndarray] | None = None) -> np.ndarray:
    """uint8 (N, H, W, 3) color layers of (N, H, W, 1) scans, each with its colors stopped at
    the scan's outlines (`pipeline.colorist.regions.inside_edges`); labels: their regions
    (None: computed from the scans)."""
    from pipeline.colorist.regions import inside_edges, regions

    scans = np.asarray(scans)
    if labels is None:
        labels = [regions(s[..., 0])[0] for s in scans]
    return np.stack([inside_edges(c, lbl) for c, lbl in zip(colors, labels)])


def compose_arrays(colors: np.ndarray, scans: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) color layers and (N, H, W, 1) scans -> the pages, each composed as
    `onepunch colorize` composes one."""
    return np.stack([compose_page(c, s[..., 0]) for c, s in zip(colors, np.asarray(scans))])


def stroke_masks(scans: np.ndarray) -> np.ndarray:
    """bool (N, H, W): the strokes of uint8 (N, H, W, 1) scans, what the composite keeps
    pixel-exact (not their black fills, which take a color, nor their screentone, which
    becomes shading): where line fidelity is measured."""
    return np.stack([separate(s[..., 0]).line for s in np.asarray(scans)])
