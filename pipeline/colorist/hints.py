"""Color hints: a colorist's dots, spread over the regions of the line art they sit in, as the
colorizer's optional input channels beside the scan (`pipeline.models.colorizer.HINT_CHANNELS`).

User-guided colorization (Zhang et al. 2017, "Real-Time User-Guided Image Colorization with
Learned Deep Priors"; AlacGAN, Ci et al. 2018) feeds the network sparse user colors plus a
mask, and trains it on hints sampled from the target: a random number of points (geometric,
so often none, sometimes many), each a small patch's mean color. One model is then
automatic with no hints and obeys hints when given.

Here each hint is also spread over the region of the line art it sits in, as a colorist's
bucket fill would, on open outlines too (`pipeline.colorist.regions`: a region stops at the
lines and at the narrowest point of a gap; screentone is inside it, a black fill is its own
region). A region holding several hints blends them, each pixel weighted by its inverse
squared distance to each hint. The network then has to carry a color to the edge of a
region, not across a page. Encoding, uint8 (H, W, 4) like every other network input:

- channels 0-2: the spread hint color (128 where there is none: 0 in model space);
- channel 3: 255 on the hint itself, 160 on the region it spreads over, 0 elsewhere.
"""

from __future__ import annotations

import numpy as np

from pipeline.colorist.regions import LINE_LEVEL, regions
from pipeline.models.colorizer import HINT_CHANNELS, NO_COLOR

HINT_MARK, SPREAD_MARK = 255, 160


def encode_hints(scan: np.ndarray, hint_ids: np.ndarray, colors: np.ndarray,
                 labels: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 4) hint channels for a uint8 (H, W) scan.

    hint_ids: int (H, W), the index into colors (K, 3) uint8 of the hint covering each
    pixel, -1 where there is none. Each hint spreads over the regions its pixels touch.
    """
    from scipy import ndimage

    h, w = hint_ids.shape
    out = np.empty((h, w, HINT_CHANNELS), np.uint8)
    out[..., :3] = NO_COLOR
    out[..., 3] = 0
    marked = hint_ids >= 0
    if not marked.any():
        return out
    colors = np.asarray(colors, np.uint8).reshape(-1, 3)
    if labels is None:
        labels, _ = regions(scan)
    ids_per_region: dict[int, set[int]] = {}
    for region, hint in zip(labels[marked].tolist(), hint_ids[marked].tolist()):
        if region:
            ids_per_region.setdefault(region, set()).add(hint)
    if ids_per_region:
        objects = ndimage.find_objects(labels)
        for region, hints in ids_per_region.items():
            box = objects[region - 1]
            inside = labels[box] == region
            view = out[box]
            if len(hints) == 1:
                view[inside, :3] = colors[next(iter(hints))]
            else:
                view[inside, :3] = _blend(hint_ids[box], inside, sorted(hints), colors)
            view[inside, 3] = SPREAD_MARK
    out[marked, :3] = colors[hint_ids[marked]]
    out[marked, 3] = HINT_MARK
    return out


def hint_layer(encoded: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): the hints' colors flat over the regions they spread over, white paper
    elsewhere, and under the lines the color of the nearest region (a colorist's flats for
    `--auto none`: only what was dotted is colored)."""
    from pipeline.colorist.regions import under_walls

    layer = np.where(encoded[..., 3:] > 0, encoded[..., :3], np.uint8(255)).astype(np.uint8)
    return under_walls(layer, labels == 0)


def _blend(sub_ids: np.ndarray, inside: np.ndarray, hints: list[int], colors: np.ndarray) -> np.ndarray:
    """Colors (n_inside, 3) for a region holding several hints: inverse-square-distance
    weights to each hint's centre (Shepard interpolation), so two dots in a sky give a smooth
    gradient between their colors, not two flat halves."""
    ys, xs = np.nonzero(inside)
    weights = np.empty((len(ys), len(hints)), np.float64)
    for j, k in enumerate(hints):
        hy, hx = np.nonzero(sub_ids == k)
        d2 = (ys - hy.mean()) ** 2 + (xs - hx.mean()) ** 2
        weights[:, j] = 1.0 / (d2 + 1.0)
    weights /= weights.sum(1, keepdims=True)
    mixed = weights @ colors[hints].astype(np.float64)  # (n_inside, 3)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def sample_hints(rng: np.random.Generator, scan: np.ndarray, color: np.ndarray, n: int,
                 max_patch: int) -> tuple[np.ndarray, np.ndarray]:
    """n hints taken from a target: (hint_ids (H, W) int32, colors (n', 3) uint8).

    Each hint is a square patch (side 1..max_patch, centred on a non-ink pixel drawn
    uniformly, as a user dots inside regions) carrying the target's mean color over it.
    n' < n only when the scan has fewer paintable pixels than hints.
    """
    h, w = scan.shape
    hint_ids = np.full((h, w), -1, np.int32)
    free = np.flatnonzero(np.asarray(scan).ravel() >= LINE_LEVEL)
    if n <= 0 or free.size == 0:
        return hint_ids, np.zeros((0, 3), np.uint8)
    picks = rng.choice(free, size=min(n, free.size), replace=False)
    sides = rng.integers(1, max_patch + 1, size=len(picks))
    colors = np.empty((len(picks), 3), np.uint8)
    for k, (p, side) in enumerate(zip(picks.tolist(), sides.tolist())):
        y, x = divmod(p, w)
        y0, x0 = max(0, y - side // 2), max(0, x - side // 2)
        y1, x1 = min(h, y0 + side), min(w, x0 + side)
        colors[k] = np.rint(color[y0:y1, x0:x1].reshape(-1, 3).mean(0)).astype(np.uint8)
        hint_ids[y0:y1, x0:x1] = k
    return hint_ids, colors
