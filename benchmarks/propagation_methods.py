"""The hint propagations `pipeline.colorist.regions` was measured against (bench_real_hints.py
`--method`): each returns, for a uint8 (H, W) page and its hints (ids (H, W), -1 where none),
labels (H, W) int32 in the form `pipeline.colorist.hints.encode_hints` spreads over: 0 on the
walls, every pixel a hint claims in a label that hint's pixels touch, every other pixel in a
label no hint touches (the page as drawn, or the network's own colors).

- `closed`: the bucket fill this project had: 4-connected paper, ink specks up to 48 px
  (screentone dots) counted as paper. One dot floods everything an open outline connects.
- `geodesic`: each pixel to its nearest dot along paths over an ink-cost map (ink costs
  `INK_COST` per pixel crossed), none past a distance cap: the floor the issue set.
- `graphcut`: LazyBrush (Sýkora et al. 2009): each dot a hard seed, edges cut cheaply along
  ink (weight K * intensity + 1), every pixel a soft "none" seed (`NONE_BONUS` per pixel
  against every dot), one binary min-cut per dot (PyMaxflow), at half resolution for time.
"""

from __future__ import annotations

import numpy as np

INK_COST = 200.0  # geodesic: crossing one ink pixel costs this many paper pixels
CAP = 0.2  # geodesic: the distance cap, as a share of the page's long side
LAZY_K = 30.0  # graphcut: a white edge costs K + 1, an ink edge 1
NONE_BONUS = float(__import__("os").environ.get("NONE_BONUS", "0.002"))  # graphcut: per pixel, what "none" gains over a dot


def closed(scan: np.ndarray, hint_ids: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    ink = scan < 100
    specks, n = ndimage.label(ink)
    if n:
        small = np.bincount(specks.ravel(), minlength=n + 1) <= 48
        small[0] = False
        ink &= ~small[specks]
    labels, _ = ndimage.label(~ink)
    return labels.astype(np.int32)


def _from_owner(owner: np.ndarray, wall: np.ndarray, hint_ids: np.ndarray) -> np.ndarray:
    """Labels from a per-pixel owning hint (-1: none): hint k -> k + 1, none -> K + 1."""
    k = int(hint_ids.max()) + 1 if (hint_ids >= 0).any() else 0
    labels = np.where(owner >= 0, owner + 1, k + 1).astype(np.int32)
    labels[wall & (hint_ids < 0)] = 0
    labels[hint_ids >= 0] = hint_ids[hint_ids >= 0] + 1
    return labels


def geodesic(scan: np.ndarray, hint_ids: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    h, w = scan.shape
    ink = 1.0 - scan.astype(np.float64) / 255
    cost = 1.0 + INK_COST * ink  # entering a pixel
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
        a, b = a.ravel(), b.ravel()
        rows += [a, b]
        cols += [b, a]
        vals += [cost.ravel()[b], cost.ravel()[a]]
    graph = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w, h * w))
    seeds = np.flatnonzero(hint_ids.ravel() >= 0)
    if not len(seeds):
        return _from_owner(np.full((h, w), -1), scan < 100, hint_ids)
    dist, _, source = dijkstra(graph.tocsr(), indices=seeds, min_only=True, return_predecessors=True)
    owner = np.where(source >= 0, hint_ids.ravel()[np.maximum(source, 0)], -1)
    owner[dist > CAP * max(h, w)] = -1
    return _from_owner(owner.reshape(h, w), scan < 100, hint_ids)


def graphcut(scan: np.ndarray, hint_ids: np.ndarray) -> np.ndarray:
    import maxflow
    from PIL import Image

    h, w = scan.shape
    small = np.asarray(Image.fromarray(scan).resize((w // 2, h // 2), Image.Resampling.BOX), np.float64) / 255
    ids = hint_ids[::2, ::2][: h // 2, : w // 2]
    hs, ws = small.shape
    # pairwise: cutting between two pixels costs K * (their darker intensity) + 1
    right = LAZY_K * np.minimum(small[:, :-1], small[:, 1:]) + 1
    down = LAZY_K * np.minimum(small[:-1, :], small[1:, :]) + 1
    owner = np.full((hs, ws), -1)
    for k in np.unique(ids[ids >= 0]).tolist():
        g = maxflow.Graph[float]()
        nodes = g.add_grid_nodes((hs, ws))
        wr = np.zeros((hs, ws))
        wr[:, :-1] = right
        g.add_grid_edges(nodes, weights=wr, structure=np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]]), symmetric=True)
        wd = np.zeros((hs, ws))
        wd[:-1, :] = down
        g.add_grid_edges(nodes, weights=wd, structure=np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]]), symmetric=True)
        big = 1e9
        source = np.where(ids == k, big, 0.0)  # the dot
        sink = np.where((ids >= 0) & (ids != k), big, NONE_BONUS)  # other dots, and "none" everywhere
        g.add_grid_tedges(nodes, source, sink)
        g.maxflow()
        mine = ~g.get_grid_segments(nodes)  # source side
        owner[mine & (owner < 0)] = k
    full = np.full((h, w), -1)
    full[: hs * 2, : ws * 2] = np.repeat(np.repeat(owner, 2, 0), 2, 1)
    return _from_owner(full, scan < 100, hint_ids)


METHODS = {"closed": closed, "geodesic": geodesic, "graphcut": graphcut}
