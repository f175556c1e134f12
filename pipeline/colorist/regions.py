"""The regions of a page's line art: the areas a hint fills, as a colorist's bucket would, but
on real line art, whose outlines are open (a strand of hair meets the background, a face's
contour stops short of the jaw).

The walls are the line ink (`pipeline.colorist.ink.separate`: not the screentone dots, not the
inside of a black fill, whose edge is a wall; not the strokes found as ridges over tone, which
may be hatching: a hatched area is one area). Every other pixel belongs to a basin of its
distance to the walls: the distance transform's maxima are the middles of areas, and two
areas joined through a gap in an outline meet at the gap's narrowest point, where the
distance is smallest (the watershed of the distance transform, the classic way to split
touching shapes). Basins are then merged back where the passage between them is wide for
their size: where the distance at the saddle is at least `NECK` of the shallower basin's
depth, the passage is part of one area (a sleeve narrowing at the wrist), not a gap in an
outline (a hair strand open to the sky). So a hint fills what is enclosed, stops at the
narrowest point of a gap, crosses screentone inside its area, and never crosses a line.

Measured against closed regions (4-connected paper, today's bucket fill), a geodesic
nearest-dot fill with a distance cap, and a LazyBrush graph cut: `docs/colorist.md`.
"""

from __future__ import annotations

import numpy as np

LINE_LEVEL = 100  # scan pixels darker than this (0..255) are ink: never a hint's own pixel in training
NECK = 0.5  # a passage this wide (relative to the shallower basin's depth) joins two basins into one area
NECK_LENGTH = 3.0  # an open border longer than this many times its passage's width is no neck
# a passage at least twice this wide (pixels; lines are 2-5 px at page scale) is open paper,
# never a gap in an outline, whatever the basins' depths (a sky above a head)
OPEN_SADDLE = 16.0


def walls(scan: np.ndarray, sep=None) -> np.ndarray:
    """bool (H, W): the line ink, and the edge of a black fill where it meets paper or light
    tone (a black cape beside a white shirt is two areas, and so are a night sky and the
    hatched, toned hair drawn against it without an outline); a fill that fades into
    screentone, a night sky darkening from a gradient tone, is one: where the tone next to
    it is darker than `FADE_SHADING`."""
    from scipy import ndimage

    from pipeline.colorist.ink import separation

    sep = sep if sep is not None else separation(scan)
    line = sep.line & ~sep.ridge  # strokes found over tone are no walls
    paper = ~sep.fill & ~sep.tone & ~line
    rim = sep.fill & ~ndimage.binary_erosion(sep.fill, border_value=1)
    beside = paper
    contact = sep.tone & ~sep.line & ndimage.binary_dilation(rim)
    if contact.any():
        beside = paper | (contact & (_tone_shading(scan, sep) >= FADE_SHADING))
    return line | (rim & ndimage.binary_dilation(beside))


# a black fill meets tone at a wall where the tone, descreened without the fill, is at least
# this light (0 black, 1 paper); darker tone is the fill fading out (a gradient night sky).
# On the 10 real pages of the shared set, 89-100 % of the tone touching a fill is lighter
FADE_SHADING = 0.5


def _tone_shading(scan: np.ndarray, sep) -> np.ndarray:
    """float32 (H, W): the page descreened over its tone and paper only (neither the strokes
    nor the fills darken it), at the separation's blur: how dark the tone beside a fill is."""
    from pipeline.colorist.ink import normalized_blur

    return normalized_blur(np.asarray(scan, np.float32) / 255, ~sep.line & ~sep.fill, sep.tone_sigma)


def regions(scan: np.ndarray, sep=None, neck: float | None = None) -> tuple[np.ndarray, int]:
    """The areas of a uint8 (H, W) page: labels (H, W) int32, 0 on the walls, and their count."""
    return basins(walls(scan, sep), neck)


def basins(wall: np.ndarray, neck: float | None = None) -> tuple[np.ndarray, int]:
    """Labels 1..n of the non-wall pixels of a bool (H, W) mask (the module docstring);
    neck None: NECK."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    wall = np.asarray(wall, bool)
    free = ~wall
    if not free.any():
        return np.zeros(wall.shape, np.int32), 0
    pad = 16  # the page's edge is no wall: areas run off it
    dist = ndimage.distance_transform_edt(np.pad(free, pad, constant_values=True))[pad:-pad, pad:-pad]
    dist = dist.astype(np.float32)
    peaks = (dist >= ndimage.maximum_filter(dist, 3)) & free
    markers, n = ndimage.label(peaks, np.ones((3, 3), bool))
    labels = watershed(-dist, markers, mask=free)
    roots = _merge_through_wide_passages(labels, dist, n, NECK if neck is None else neck)
    _, dense = np.unique(roots, return_inverse=True)  # roots[0] = 0 stays 0: consecutive labels
    return dense.reshape(-1)[labels].astype(np.int32), int(dense.max())


def _merge_through_wide_passages(labels: np.ndarray, dist: np.ndarray, n: int, neck: float) -> np.ndarray:
    """Union-find over the basins, widest passages first: root label of each basin (0: 0).

    Two basins stay apart only where they meet through a neck: a passage whose width (twice
    the distance at its saddle) is under `neck` times the shallower basin's depth and under
    2 * OPEN_SADDLE pixels, and whose border runs across open paper for no longer than a
    neck's width would (`NECK_LENGTH` times it). A long open border is no gap in an outline: the watershed has split one area
    (a face between its features) down a plateau."""
    pairs, saddles = [], []
    for a, b, da, db in ((labels[:, :-1], labels[:, 1:], dist[:, :-1], dist[:, 1:]),
                         (labels[:-1, :], labels[1:, :], dist[:-1, :], dist[1:, :])):
        m = (a != b) & (a > 0) & (b > 0)
        lo, hi = np.minimum(a[m], b[m]).astype(np.int64), np.maximum(a[m], b[m]).astype(np.int64)
        pairs.append(lo * (n + 1) + hi)
        saddles.append(np.minimum(da[m], db[m]))
    key, value = np.concatenate(pairs), np.concatenate(saddles)
    order = np.lexsort((-value, key))  # per pair, its widest crossing first
    key, value = key[order], value[order]
    first = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
    length = np.diff(np.r_[np.flatnonzero(first), len(key)])  # pixel pairs along the open border
    key, value = key[first], value[first]
    depth = np.zeros(n + 1, np.float32)
    np.maximum.at(depth, labels.ravel(), dist.ravel())
    parent = list(range(n + 1))
    top = depth.tolist()

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    a_of, b_of, v, long_border = (key // (n + 1)).tolist(), (key % (n + 1)).tolist(), value.tolist(), \
        (length > NECK_LENGTH * 2 * np.maximum(value, 1)).tolist()
    for i in np.argsort(-value, kind="stable").tolist():
        x, y = find(a_of[i]), find(b_of[i])
        if x != y and (long_border[i] or v[i] >= OPEN_SADDLE or v[i] >= neck * min(top[x], top[y])):
            parent[y] = x
            top[x] = max(top[x], top[y])
    return np.array([find(i) for i in range(n + 1)])


def under_walls(values: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """`values` (H, W, ...) with every wall pixel given the value of its nearest non-wall
    pixel: a color layer that runs under the lines, as a colorist's flats do."""
    from scipy import ndimage

    if not wall.any() or wall.all():
        return values
    iy, ix = ndimage.distance_transform_edt(wall, return_distances=False, return_indices=True)
    return values[iy, ix]


# px from a wall within which a network's colors are taken from farther inside their area:
# its colors spread a few pixels across the outlines (a halo on the paper around a figure);
# chosen on the training pairs' generated scans (ΔE2000 of the composite least at 4 of 1-8,
# docs/colorist.md)
HALO_REACH = 4


def inside_edges(colors: np.ndarray, labels: np.ndarray, reach: int = HALO_REACH) -> np.ndarray:
    """`colors` (H, W, C) with every pixel within `reach` px of a wall (label 0 of `labels`,
    `regions`) given the color of the nearest pixel of its own area that lies farther from
    the walls: colors stop at the outline instead of bleeding across it. An area with no
    pixel that far in (a strand, a thin gap) keeps its colors; so do the walls, which the ink
    covers."""
    from scipy import ndimage

    inside = labels > 0
    if inside.all() or not inside.any():  # no wall to measure from (and scipy's edt needs one)
        return colors
    deep = ndimage.distance_transform_edt(inside) > reach
    if not deep.any():
        return colors
    iy, ix = ndimage.distance_transform_edt(~deep, return_distances=False, return_indices=True)
    take = inside & ~deep & (labels[iy, ix] == labels)
    out = colors.copy()
    out[take] = colors[iy[take], ix[take]]
    return out
