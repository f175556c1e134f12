"""Running a network over a whole page of any size: whole when it fits, else in overlapping
tiles blended linearly across the overlaps (no visible seams, memory bounded by one tile).
"""

from __future__ import annotations

import torch

TILE = 1024  # tile side of `run_tiled`; a 1024 x 1448 page runs in two tiles
TILE_OVERLAP = 128  # pixels shared by neighbouring tiles, blended linearly
WHOLE_LIMIT = 1600 * 1600  # pages up to this many pixels run whole (no seams at all)


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _ramp(n: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """Blend weights along one tile side: rising over the overlap, flat inside; flat at the
    page's own edges."""
    i = torch.arange(n, dtype=torch.float32)
    w = torch.minimum((i + 1) / (overlap + 1), (n - i) / (overlap + 1)).clamp(max=1.0)
    if first:
        w[: n // 2] = 1.0
    if last:
        w[n // 2:] = 1.0
    return w


@torch.no_grad()
def run_tiled(fn, x: torch.Tensor, out_channels: int, tile: int | None = None, overlap: int | None = None,
              whole_limit: int | None = None) -> torch.Tensor:
    """fn over a (1, C, H, W) page: whole when it has at most whole_limit pixels, else in
    overlapping tile x tile windows blended linearly across the overlaps (no visible seams,
    memory bounded by one tile whatever the page size). None: the module's TILE,
    TILE_OVERLAP and WHOLE_LIMIT, read at call time."""
    tile = TILE if tile is None else tile
    overlap = TILE_OVERLAP if overlap is None else overlap
    whole_limit = WHOLE_LIMIT if whole_limit is None else whole_limit
    _, _, h, w = x.shape
    if h * w <= whole_limit:
        return fn(x).float()
    out = torch.zeros((1, out_channels, h, w), dtype=torch.float32, device=x.device)
    weight = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
    step = max(1, tile - overlap)
    ys, xs = _starts(h, tile, step), _starts(w, tile, step)
    for y in ys:
        for x0 in xs:
            th, tw = min(tile, h - y), min(tile, w - x0)
            y_w = _ramp(th, overlap, y == ys[0], y == ys[-1]).to(x.device)
            x_w = _ramp(tw, overlap, x0 == xs[0], x0 == xs[-1]).to(x.device)
            wgt = (y_w[:, None] * x_w[None, :])[None, None]
            out[..., y:y + th, x0:x0 + tw] += fn(x[..., y:y + th, x0:x0 + tw]).float() * wgt
            weight[..., y:y + th, x0:x0 + tw] += wgt
    return out / weight


def runs_whole(h: int, w: int) -> bool:
    """Does a page of h x w pixels run whole (no tiles)?"""
    return h * w <= WHOLE_LIMIT
