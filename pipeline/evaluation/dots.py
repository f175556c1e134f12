"""A colorist's dots, and what they do to a page: the protocol that measures hints on real art.

For a pair (line art, its coloring), a colorist puts one dot in each of the N largest areas
of like color (`colorist_dots`): the line art's paper pixels, the coloring's CIELAB
quantised in steps of `QUANT`, 4-connected, at least `MIN_AREA` pixels; areas a colorist
leaves alone are skipped (white paper: L* > 92 and chroma < 8; black: L* < 15). Each dot
sits at its area's most interior pixel and carries the area's median color.

What the colorization then gets right or wrong (`hint_measures`), against the coloring:
- ΔE2000 over the page;
- gross errors: the line art's paper pixels more than ΔE 25 off;
- tinted paper: the coloring's white paper that comes out colored (chroma > 12), as a share
  of that white paper: what a hint that floods through an open outline does;
- obedience: per dotted area, ΔE2000 between the dot's color and the median color painted
  over the area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.metrics import delta_e_map, lab

QUANT = 12.0  # CIELAB step of "like color"
MIN_AREA = 64  # pixels: smaller areas get no dot
INK_LEVEL = 100  # line-art pixels darker than this are ink, not paper
GROSS_DELTA_E = 25.0
PAPER_L, PAPER_CHROMA = 92.0, 8.0  # the coloring's white paper
BLACK_L = 15.0
TINTED_CHROMA = 12.0


@dataclass(frozen=True)
class Dot:
    y: int
    x: int
    color: tuple[int, int, int]
    area: int  # the area's label in `areas`


def like_color_areas(line_art: np.ndarray, coloring: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels (H, W) int32 of the areas of like color over the line art's paper (0: none)."""
    from skimage.measure import label

    q = np.floor(lab(coloring) / QUANT).astype(np.int64) + 32  # (H, W, 3), every channel >= 0
    key = (q[..., 0] * 128 + q[..., 1]) * 128 + q[..., 2]
    key[line_art < INK_LEVEL] = -1
    labels, n = label(key, background=-1, connectivity=1, return_num=True)
    return labels.astype(np.int32), int(n)


def colorist_dots(line_art: np.ndarray, coloring: np.ndarray, n: int) -> list[Dot]:
    """The N dots of the protocol (fewer when the page has fewer areas worth a dot)."""
    from scipy import ndimage

    if n <= 0:
        return []
    labels, count = like_color_areas(line_art, coloring)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    lab_img = lab(coloring)
    boxes = ndimage.find_objects(labels)
    dots: list[Dot] = []
    for area in np.argsort(-sizes, kind="stable"):
        if len(dots) == n or sizes[area] < MIN_AREA:
            break
        box = boxes[area - 1]
        inside = labels[box] == area
        med_lab = np.median(lab_img[box][inside], axis=0)
        chroma = float(np.hypot(med_lab[1], med_lab[2]))
        if (med_lab[0] > PAPER_L and chroma < PAPER_CHROMA) or med_lab[0] < BLACK_L:
            continue  # paper and black: a colorist leaves them alone
        depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        color = np.median(coloring[box][inside].reshape(-1, 3), axis=0)
        dots.append(Dot(int(y + box[0].start), int(x + box[1].start),
                        tuple(round(float(c)) for c in color), int(area)))
    return dots


def as_points(dots: list[Dot]) -> list[dict]:
    """The dots as a hint file's JSON points (`onepunch colorize --hints`)."""
    return [{"x": d.x, "y": d.y, "color": "#{:02x}{:02x}{:02x}".format(*d.color)} for d in dots]


def hint_measures(result: np.ndarray, coloring: np.ndarray, line_art: np.ndarray,
                  dots: list[Dot] = (), areas: np.ndarray | None = None) -> dict[str, float]:
    """The protocol's measures of a colorization `result` (H, W, 3) uint8 against the
    coloring; obedience needs the dots and the areas they were placed in."""
    truth_lab, out_lab = lab(coloring), lab(result)
    de = delta_e_map(out_lab, truth_lab)
    paper = line_art >= INK_LEVEL
    truth_chroma = np.hypot(truth_lab[..., 1], truth_lab[..., 2])
    white = (truth_lab[..., 0] > PAPER_L) & (truth_chroma < PAPER_CHROMA) & paper
    tinted = white & (np.hypot(out_lab[..., 1], out_lab[..., 2]) > TINTED_CHROMA)
    out = {"delta_e": float(de.mean()),
           "gross_errors": float((de[paper] > GROSS_DELTA_E).mean()) if paper.any() else 0.0,
           "tinted_paper": float(tinted.sum() / max(1, white.sum()))}
    if dots and areas is not None:
        obeyed = []
        for d in dots:
            where = areas == d.area
            painted = np.median(out_lab[where], axis=0)
            asked = lab(np.array(d.color, np.uint8)[None, None])[0, 0]
            obeyed.append(float(delta_e_map(painted[None], asked[None])[0]))
        out["obedience_delta_e"] = float(np.mean(obeyed))
    return out
