"""A generated mini-Danbooru2020 that knows the true scan behind every colored image.

OnePunchGAN (manga/line-art colorization via a CycleGAN scan generator and an attention
U-Net colorizer) trains on tag-filtered Danbooru2020, where no colored illustration comes
with its line-art "scan". This module writes a small stand-in in exactly the published
layout, so every stage runs offline and quality can be *measured*:

    root/metadata/2020000000000000 ...   JSON lines, Danbooru2020 record format, shuffled,
                                         ~duplicate_fraction older snapshots, a few
                                         truncated lines
    root/512px/{id % 1000:04d}/{id}.jpg  rating-s images, fitted into the canvas keeping the
                                         record's aspect ratio, padded with white
    root/groundtruth/{id}.png            the true scan ('L') of every color-domain post, at
                                         the same geometry as its jpg (evaluation only)

Drawings come from one vector scene generator (`make_scene`: characters and props made of
blobs, ellipses and smoothed polygons with interior detail strokes) rendered two ways:
`render_scan` (black lines on white, screentone dots and hatching) and `render_color` (flat
palette fills, cel shading away from a light direction, highlights, colored/gradient
backgrounds, tinted lines, screentone replaced by color). The scan and color domains are
different scenes (unpaired), as in the real data. Distractor posts exercise the filters:
comics, 4koma, photos, partially_monochrome / spot_color, ratings q/e, deleted and banned
posts, non-image file_ext, tiny and extreme-aspect images, and corrupt jpgs.

Everything is deterministic from `SyntheticConfig.seed`: metadata from one generator,
each image from a generator seeded by (seed, post id), so the bytes do not depend on the
number of worker processes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from pipeline.config import SyntheticConfig
from pipeline.danbooru import METADATA_SHARD_NAMES, dump_record, image_relpath

JPEG_QUALITY = 90
PAD_GREY = 255  # the 512px images are padded with white
MAX_POST_ID = 5_000_000
MARKER = "SYNTHETIC.json"  # marks a folder this module may replace
SNAPSHOT_DATE = datetime(2021, 1, 21, tzinfo=timezone.utc)
FIRST_POST_DATE = datetime(2005, 5, 24, tzinfo=timezone.utc)

# Stroke widths as fractions of the longer image side: 4-10 px outlines at 512 px, so that
# lines still show (as grey) after the default 8x downsampling to 64 px.
OUTLINE_WIDTH = (0.008, 0.019)
DETAIL_WIDTH = (0.005, 0.011)


# =========================================================================== scenes


@dataclass
class Stroke:
    """An open brush stroke; tapered strokes are thin at both ends, like an inked line."""

    points: np.ndarray  # (N, 2) in scene pixels
    width: float  # widest point, scene pixels
    tapered: bool = True


@dataclass
class Region:
    """A closed shape: filled, optionally toned, with detail strokes and an outline."""

    outline: np.ndarray  # (N, 2) closed polygon, scene pixels
    width: float  # outline width; 0 = no outline
    material: str  # skin, hair, cloth, eye, iris, pupil, shine, object, ground, accent
    tone: str = "none"  # none, dots, hatch, crosshatch, black (how the scan shades it)
    details: list[Stroke] = field(default_factory=list)
    group: int = 0  # regions of one character or prop share their colors


@dataclass
class Scene:
    """A vector drawing: regions, back to front."""

    width: int
    height: int
    regions: list[Region]
    tone_period: float = 4.5  # screentone dot spacing (hatching: 1.6x), scene pixels
    tone_angle: float = math.pi / 4
    tags: list[str] = field(default_factory=list)  # Danbooru general tags for what is drawn

    def tone_tags(self) -> list[str]:
        """Tags a tagger would add to the scan of this scene."""
        tones = {r.tone for r in self.regions}
        return (["screentone"] if "dots" in tones else []) + \
            (["hatching_(texture)"] if tones & {"hatch", "crosshatch"} else [])


def _chaikin(points: np.ndarray, iters: int) -> np.ndarray:
    """Corner cutting: a smooth, bezier-like closed curve around a control polygon."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(iters):
        q = np.roll(p, -1, axis=0)
        cut = np.empty((2 * len(p), 2))
        cut[0::2] = 0.75 * p + 0.25 * q
        cut[1::2] = 0.25 * p + 0.75 * q
        p = cut
    return p


def _ellipse(cx: float, cy: float, rx: float, ry: float, rot: float = 0.0, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float,
          k: int = 7, jitter: float = 0.18) -> np.ndarray:
    """A lumpy closed shape: an ellipse with random radii at k control points, smoothed."""
    t = np.sort((np.arange(k) + rng.uniform(-0.3, 0.3, k)) / k) * 2 * np.pi
    r = 1 + rng.uniform(-jitter, jitter, k)
    rot = rng.uniform(0, 2 * np.pi)
    x, y = rx * r * np.cos(t), ry * r * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return _chaikin(np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1), 3)


def _bezier(p0, p1, p2, p3, n: int = 20) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


def _arc_stroke(rng: np.random.Generator, a, b, bend: float, width: float) -> Stroke:
    """A gently curved stroke from a to b, bowed sideways by `bend` times its length."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = b - a
    normal = np.array([-d[1], d[0]])
    p1 = a + d / 3 + normal * bend * rng.uniform(0.6, 1.4)
    p2 = a + 2 * d / 3 + normal * bend * rng.uniform(0.6, 1.4)
    return Stroke(_bezier(a, p1, p2, b, 16), width)


def _capsule(a, b, r0: float, r1: float, n: int = 10) -> np.ndarray:
    """A limb: two round ends joined by straight sides."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ang = math.atan2(b[1] - a[1], b[0] - a[0])
    t0 = np.linspace(ang + np.pi / 2, ang + 3 * np.pi / 2, n)
    t1 = np.linspace(ang - np.pi / 2, ang + np.pi / 2, n)
    return np.vstack([a + r0 * np.stack([np.cos(t0), np.sin(t0)], 1),
                      b + r1 * np.stack([np.cos(t1), np.sin(t1)], 1)])


def _widths(rng: np.random.Generator, scale: float) -> tuple[float, float]:
    """(outline, detail) stroke widths of one drawing: each artist has a pen."""
    return (scale * rng.uniform(*OUTLINE_WIDTH), scale * rng.uniform(*DETAIL_WIDTH))


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _character(rng: np.random.Generator, cx: float, top: float, height: float,
               pen: tuple[float, float], tags: list[str]) -> list[Region]:
    """A chibi-proportioned figure: hair, head, face, torso, arms."""
    out_w, det_w = pen
    rh = 0.17 * height  # head radius
    hx, hy = cx + rng.uniform(-0.1, 0.1) * rh, top + 1.15 * rh
    hair_tone = _choose(rng, {"none": 3, "black": 1.5, "dots": 2, "hatch": 1})
    cloth_tone = _choose(rng, {"none": 3, "dots": 2, "hatch": 1, "crosshatch": 0.7, "black": 0.4})
    regions: list[Region] = []

    long_hair = rng.random() < 0.55
    tags.append("long_hair" if long_hair else "short_hair")
    if long_hair:  # hair behind the body, reaching the shoulders or further
        length = rh * rng.uniform(1.6, 3.2)
        spread = rh * rng.uniform(1.25, 1.6)
        ctrl = [(hx - 1.15 * rh, hy - 0.2 * rh), (hx - spread, hy + length * 0.6),
                (hx - spread * 0.9, hy + length), (hx, hy + length * 0.92),
                (hx + spread * 0.9, hy + length), (hx + spread, hy + length * 0.6),
                (hx + 1.15 * rh, hy - 0.2 * rh), (hx, hy - 1.3 * rh)]
        ctrl = np.array(ctrl) + rng.normal(0, 0.06 * rh, (len(ctrl), 2))
        strands = [_arc_stroke(rng, (hx + s * rh, hy + 0.4 * rh), (hx + s * spread * 0.95, hy + length * 0.9),
                               0.08 * s, det_w) for s in (-1.0, -0.8, 0.8, 1.0)]
        regions.append(Region(_chaikin(ctrl, 3), out_w, "hair", hair_tone, strands))

    # torso: a rounded trapezoid from the shoulders down past the frame
    sy = hy + 1.3 * rh
    sw = rh * rng.uniform(1.05, 1.35)  # half shoulder width
    hem = top + height * rng.uniform(1.0, 1.15)
    hw = sw * rng.uniform(1.05, 1.45)
    torso = np.array([(hx - 0.35 * rh, sy - 0.15 * rh), (hx - sw, sy + 0.2 * rh), (hx - sw * 1.02, sy + 0.9 * rh),
                      (hx - hw, hem), (hx + hw, hem), (hx + sw * 1.02, sy + 0.9 * rh),
                      (hx + sw, sy + 0.2 * rh), (hx + 0.35 * rh, sy - 0.15 * rh)])
    folds = [_arc_stroke(rng, (hx + rng.uniform(-0.8, 0.8) * sw, sy + rng.uniform(1.0, 1.6) * rh),
                         (hx + rng.uniform(-0.9, 0.9) * hw, hem - rng.uniform(0.1, 0.5) * rh),
                         rng.uniform(-0.15, 0.15), det_w) for _ in range(int(rng.integers(1, 4)))]
    collar = rng.uniform(0.5, 1.0) * rh
    folds.append(Stroke(np.array([(hx - 0.45 * rh, sy - 0.05 * rh), (hx, sy + collar),
                                  (hx + 0.45 * rh, sy - 0.05 * rh)]), det_w * 1.2, tapered=False))
    neck = np.array([(hx - 0.3 * rh, hy + 0.6 * rh), (hx + 0.3 * rh, hy + 0.6 * rh),
                     (hx + 0.33 * rh, sy + 0.2 * rh), (hx - 0.33 * rh, sy + 0.2 * rh)])
    regions.append(Region(neck, out_w * 0.8, "skin"))
    regions.append(Region(_chaikin(torso, 2), out_w, "cloth", cloth_tone, folds))

    raised = int(rng.choice([-1, 1])) if rng.random() < 0.3 else 0
    if raised:
        tags.append("waving")
    for side in (-1, 1):  # arms beside the torso (or one waving), a hand at the end
        shoulder = (hx + side * (sw - 0.15 * rh), sy + 0.45 * rh)
        if side == raised:
            hand = (hx + side * (sw + rng.uniform(0.5, 1.0) * rh), sy - rng.uniform(0.8, 1.6) * rh)
        else:
            hand = (hx + side * (sw + rng.uniform(0.1, 0.7) * rh), sy + rng.uniform(1.9, 2.6) * rh)
        regions.append(Region(_capsule(shoulder, hand, 0.38 * rh, 0.3 * rh), out_w, "cloth", cloth_tone))
        regions.append(Region(_ellipse(hand[0], hand[1] + 0.25 * rh, 0.27 * rh, 0.3 * rh, n=24), out_w * 0.8,
                              "skin"))

    # head with a slightly pointed chin
    head = _ellipse(hx, hy, 0.95 * rh, rh, n=32)
    chin = head[:, 1] > hy + 0.3 * rh
    head[chin, 0] = hx + (head[chin, 0] - hx) * 0.85
    head[chin, 1] += 0.12 * rh
    mouth_y = hy + rng.uniform(0.55, 0.7) * rh
    bend = float(rng.choice([-0.3, 0.25, 0.35]))
    tags.append("frown" if bend < 0 else "smile")
    face = [_arc_stroke(rng, (hx - 0.15 * rh, mouth_y), (hx + 0.15 * rh, mouth_y), bend, det_w * 0.9)]
    if rng.random() < 0.5:  # blush lines
        tags.append("blush")
        for side in (-1, 1):
            for k in range(3):
                x0 = hx + side * (0.5 + 0.09 * k) * rh
                face.append(Stroke(np.array([(x0, hy + 0.35 * rh), (x0 - 0.07 * rh, hy + 0.5 * rh)]),
                                   det_w * 0.6, tapered=False))
    regions.append(Region(_chaikin(head, 1), out_w, "skin", "none", face))

    ey, er = hy + rng.uniform(0.1, 0.25) * rh, rh * rng.uniform(0.17, 0.24)
    iris_tone = _choose(rng, {"dots": 2, "hatch": 1, "black": 1})
    for side in (-1, 1):  # eye white, iris, pupil, shine; a heavy lash line on top
        ex = hx + side * 0.42 * rh
        lash = Stroke(np.array([(ex - 1.25 * er, ey - 0.9 * er), (ex, ey - 1.35 * er), (ex + 1.25 * er, ey - 0.9 * er)]),
                      out_w * 1.3)
        regions.append(Region(_ellipse(ex, ey, er, er * 1.3, n=24), det_w, "eye", "none", [lash]))
        regions.append(Region(_ellipse(ex, ey + 0.15 * er, 0.7 * er, er, n=24), det_w * 0.8, "iris", iris_tone))
        regions.append(Region(_ellipse(ex, ey + 0.25 * er, 0.35 * er, 0.5 * er, n=16), 0, "pupil", "black"))
        regions.append(Region(_ellipse(ex - 0.25 * side * er, ey - 0.25 * er, 0.2 * er, 0.2 * er, n=12), 0, "shine"))

    if rng.random() < 0.2:  # animal ears
        tags.append("animal_ears")
        for side in (-1, 1):
            base = np.array([hx + side * 0.35 * rh, hy - 0.9 * rh])
            ear = np.array([base - (0.3 * rh, -0.1 * rh), base + (side * 0.25 * rh, -0.85 * rh),
                            base + (0.35 * rh, 0.1 * rh)])
            inner = [_arc_stroke(rng, base + (side * 0.05 * rh, -0.1 * rh), base + (side * 0.2 * rh, -0.6 * rh),
                                 0.05, det_w)]
            regions.append(Region(_chaikin(ear, 1), out_w, "hair", hair_tone, inner))

    # front hair: a cap over the skull with a zigzag of bangs across the forehead
    cap_t = np.linspace(np.pi * 1.02, np.pi * 1.98, 9)
    cap = np.stack([hx + 1.12 * rh * np.cos(cap_t), hy + 0.1 * rh + 1.2 * rh * np.sin(cap_t)], 1)
    n_spikes = int(rng.integers(3, 7))
    xs = np.linspace(hx + 1.12 * rh, hx - 1.12 * rh, 2 * n_spikes + 1)
    fringe = hy + rng.uniform(-0.35, -0.1) * rh
    ys = np.where(np.arange(len(xs)) % 2 == 1, fringe + rng.uniform(0.15, 0.5, len(xs)) * rh,
                  fringe - rng.uniform(0.0, 0.2, len(xs)) * rh)
    ys[0] = ys[-1] = hy + rng.uniform(0.1, 0.6) * rh  # side locks
    bangs = np.stack([xs, ys], 1)
    front = np.vstack([cap, bangs[1:-1]])
    strands = [_arc_stroke(rng, (hx + rng.uniform(-0.4, 0.4) * rh, hy - 0.95 * rh), (x, y - 0.1 * rh),
                           rng.uniform(-0.12, 0.12), det_w)
               for x, y in bangs[1:-1:2][: int(rng.integers(2, 5))]]
    regions.append(Region(_chaikin(front, 2), out_w, "hair", hair_tone, strands))

    if rng.random() < 0.45:  # a bow on the hair
        tags.append("hair_bow")
        bx, by, br = hx + rng.choice([-1, 1]) * 0.75 * rh, hy - 0.85 * rh, 0.35 * rh
        for side in (-1, 1):
            wing = np.array([(bx, by), (bx + side * br * 1.4, by - br * 0.8), (bx + side * br * 1.5, by + br * 0.8)])
            regions.append(Region(_chaikin(wing, 2), det_w * 1.2, "accent",
                                  _choose(rng, {"none": 1, "dots": 1, "black": 1})))
        regions.append(Region(_ellipse(bx, by, 0.28 * br, 0.35 * br, n=12), det_w * 1.2, "accent"))
    elif rng.random() < 0.25:  # a hat: brim and crown
        tags.append("hat")
        bw = rh * rng.uniform(1.3, 1.8)
        by = hy - rng.uniform(0.55, 0.8) * rh
        crown = np.array([(hx - 0.8 * rh, by), (hx - 0.7 * rh, by - 0.9 * rh), (hx + 0.7 * rh, by - 0.95 * rh),
                          (hx + 0.8 * rh, by)])
        band = [Stroke(np.array([(hx - 0.78 * rh, by - 0.25 * rh), (hx + 0.78 * rh, by - 0.25 * rh)]), det_w * 1.5,
                       tapered=False)]
        hat_tone = _choose(rng, {"none": 2, "dots": 1, "hatch": 1})
        regions.append(Region(_ellipse(hx, by, bw, 0.22 * rh, n=28), out_w, "accent", hat_tone))
        regions.append(Region(_chaikin(crown, 1), out_w, "accent", hat_tone, band))

    tilt = rng.normal(0, 0.08)  # lean the whole figure a little
    group = int(rng.integers(1, 2**31))
    for region in regions:
        region.group = group
        region.outline = _rotate(region.outline, (hx, hy + 2 * rh), tilt)
        for s in region.details:
            s.points = _rotate(s.points, (hx, hy + 2 * rh), tilt)
    return regions


def _rotate(points: np.ndarray, centre, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    d = points - np.asarray(centre)
    return np.stack([centre[0] + c * d[:, 0] - s * d[:, 1], centre[1] + s * d[:, 0] + c * d[:, 1]], 1)


_PROP_TAGS = {"ball": "ball", "star": "star_(symbol)", "box": "gift_box", "flower": "flower", "blob": "fruit"}


def _prop(rng: np.random.Generator, cx: float, cy: float, r: float, pen: tuple[float, float],
          tags: list[str]) -> list[Region]:
    """A still-life object: ball, star, box, flower or lumpy blob."""
    regions = _prop_shapes(rng, cx, cy, r, pen, tags)
    group = int(rng.integers(1, 2**31))
    for region in regions:
        region.group = group
    return regions


def _prop_shapes(rng: np.random.Generator, cx: float, cy: float, r: float,
                 pen: tuple[float, float], tags: list[str]) -> list[Region]:
    out_w, det_w = pen
    kind = str(rng.choice(list(_PROP_TAGS)))
    tags.append(_PROP_TAGS[kind])
    tone = _choose(rng, {"none": 3, "dots": 2, "hatch": 1.2, "crosshatch": 0.6, "black": 0.4})
    if kind == "ball":
        stripes = [_arc_stroke(rng, (cx - r * 0.95, cy + o * r), (cx + r * 0.95, cy + o * r), 0.12, det_w)
                   for o in (-0.35, 0.3)]
        return [Region(_ellipse(cx, cy, r, r), out_w, "object", tone, stripes)]
    if kind == "star":
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False) + rng.uniform(0, 2 * np.pi)
        rad = np.where(np.arange(10) % 2 == 0, r, r * rng.uniform(0.45, 0.6))
        pts = np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1)
        return [Region(_chaikin(pts, 1), out_w, "object", tone)]
    if kind == "box":
        w, h = r * rng.uniform(0.8, 1.2), r * rng.uniform(0.6, 1.0)
        rect = np.array([(cx - w, cy - h), (cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h)])
        lid = np.array([(cx - w, cy - h), (cx - w * 0.7, cy - h * 1.6), (cx + w * 1.3, cy - h * 1.6), (cx + w, cy - h)])
        ribbon = [Stroke(np.array([(cx, cy - h), (cx, cy + h)]), det_w * 1.5, tapered=False)]
        return [Region(_chaikin(lid, 1), out_w, "object", "none"),
                Region(_chaikin(rect, 1), out_w, "object", tone, ribbon)]
    if kind == "flower":
        n = int(rng.integers(5, 8))
        petals = [Region(_ellipse(cx + 0.55 * r * math.cos(a), cy + 0.55 * r * math.sin(a), 0.5 * r, 0.3 * r, a, 20),
                         out_w * 0.8, "object", tone)
                  for a in np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 1)]
        return petals + [Region(_ellipse(cx, cy, 0.3 * r, 0.3 * r, n=20), out_w * 0.8, "accent", "dots")]
    veins = [_arc_stroke(rng, (cx + rng.uniform(-0.4, 0.4) * r, cy + rng.uniform(-0.4, 0.4) * r),
                         (cx + rng.uniform(-0.4, 0.4) * r, cy + rng.uniform(-0.4, 0.4) * r), 0.2, det_w)
             for _ in range(int(rng.integers(1, 3)))]
    return [Region(_blob(rng, cx, cy, r, r * rng.uniform(0.6, 1.0)), out_w, "object", tone, veins)]


def _ground(rng: np.random.Generator, w: int, h: int, pen: tuple[float, float]) -> Region:
    """A floor below a horizon line, with a few perspective lines."""
    y0 = h * rng.uniform(0.55, 0.8)
    tilt = h * rng.uniform(-0.08, 0.08)
    pad = 0.05 * max(w, h)  # outline off-canvas on three sides
    poly = np.array([(-pad, y0 - tilt), (w + pad, y0 + tilt), (w + pad, h + pad), (-pad, h + pad)])
    vx = w * rng.uniform(0.2, 0.8)
    lines = [Stroke(np.array([(vx + (x - vx) * 0.25, y0 + 0.05 * h), (x, h)]), pen[1], tapered=False)
             for x in np.linspace(-0.4 * w, 1.4 * w, int(rng.integers(3, 7)))]
    tone = _choose(rng, {"none": 1.5, "hatch": 1.5, "dots": 1})
    return Region(poly, pen[0], "ground", tone, lines)


def make_scene(rng: np.random.Generator, w: int, h: int) -> Scene:
    """A random drawing for a w x h image: one or two characters, or a still life."""
    assert w >= 1 and h >= 1
    scale = float(max(w, h))
    pen = _widths(rng, scale)
    regions: list[Region] = []
    tags: list[str] = []
    if rng.random() < 0.45:
        regions.append(_ground(rng, w, h, pen))
        tags.append("floor")
    layout = _choose(rng, {"character": 5, "pair": 1.5, "still_life": 2.5})
    small = min(w, h)
    if layout == "still_life":
        tags += ["no_humans", "still_life"]
        for _ in range(int(rng.integers(3, 7))):
            r = small * rng.uniform(0.12, 0.24)
            regions += _prop(rng, rng.uniform(0.15, 0.85) * w, rng.uniform(0.25, 0.85) * h, r, pen, tags)
    else:
        n_chars = 1 if layout == "character" else 2
        tags += ["1girl", "solo"] if n_chars == 1 else ["2girls", "multiple_girls"]
        height = h * rng.uniform(0.75, 1.05) / (1 if n_chars == 1 else 1.1)
        height = min(height, 1.6 * w / n_chars)  # keep wide figures inside narrow frames
        for i in range(n_chars):
            cx = w * (rng.uniform(0.35, 0.65) if n_chars == 1 else (0.3 + 0.4 * i + rng.uniform(-0.05, 0.05)))
            top = h * rng.uniform(0.0, 0.12) + (h - height) * rng.uniform(0.0, 0.3)
            regions += _character(rng, cx, top, height, pen, tags)
        if rng.random() < 0.5:
            r = small * rng.uniform(0.08, 0.14)
            side = rng.choice([0.12, 0.88])
            regions += _prop(rng, side * w, h * rng.uniform(0.55, 0.85), r, pen, tags)
    for region in regions:  # line weight varies a little from shape to shape
        region.width *= rng.uniform(0.8, 1.25)
    return Scene(w, h, regions, tone_period=scale * rng.uniform(0.007, 0.011),
                 tone_angle=float(rng.choice([math.pi / 4, math.pi / 3, 0.0])), tags=tags)


# =========================================================================== rendering


def _ribbon(points: np.ndarray, width: float) -> np.ndarray:
    """The outline of a stroke that swells from a point to `width` and back (brush ink)."""
    d = np.gradient(points, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    t = np.linspace(0, 1, len(points))
    half = 0.5 * width * (0.25 + 0.75 * np.sin(np.pi * t) ** 0.7)
    return np.vstack([points + n * half[:, None], (points - n * half[:, None])[::-1]])


def _xy(points: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(p) for p in points.tolist()]


def _draw_stroke(draw: ImageDraw.ImageDraw, s: Stroke, k: float, fill: Any) -> None:
    pts = s.points * k
    w = s.width * k
    if s.tapered and len(pts) > 2 and w >= 2:
        draw.polygon(_xy(_ribbon(pts, w)), fill=fill)
    else:
        draw.line(_xy(pts), fill=fill, width=max(1, round(w)), joint="curve")


def _draw_outline(draw: ImageDraw.ImageDraw, pts: np.ndarray, width: float, fill: Any) -> None:
    if width <= 0:
        return
    w = max(1, round(width))
    ring = np.vstack([pts, pts[:2]])  # wrap past the start so the seam gets a round joint
    draw.line(_xy(ring), fill=fill, width=w, joint="curve")


def _box(pts: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Integer bounding box of a polygon, clipped to the image; None if outside it."""
    x0 = max(0, int(math.floor(pts[:, 0].min())))
    y0 = max(0, int(math.floor(pts[:, 1].min())))
    x1 = min(size[0], int(math.ceil(pts[:, 0].max())) + 1)
    y1 = min(size[1], int(math.ceil(pts[:, 1].max())) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _mask(pts: np.ndarray, box: tuple[int, int, int, int], shift=(0.0, 0.0)) -> Image.Image:
    m = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(m).polygon(_xy(pts - np.array([box[0] - shift[0], box[1] - shift[1]])), fill=255)
    return m


def _tone_pattern(kind: str, box: tuple[int, int, int, int], period: float, angle: float) -> np.ndarray:
    """Boolean ink of a screentone (dots) or hatching over `box`, aligned to the page grid."""
    ys, xs = np.mgrid[box[1]:box[3], box[0]:box[2]].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    u, v = xs * c + ys * s, -xs * s + ys * c
    if kind == "dots":
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        return du * du + dv * dv < (0.28 * period) ** 2
    period *= 1.6  # hatching is coarser than dot screens
    ink = np.mod(u + v, period) < max(1.0, 0.25 * period)
    if kind == "crosshatch":
        ink |= np.mod(u - v, period) < max(1.0, 0.25 * period)
    return ink


def render_scan(scene: Scene, size: tuple[int, int] | None = None) -> Image.Image:
    """The true line-art scan: black ink on white, screentone and hatching, 'L' mode."""
    size = size or (scene.width, scene.height)
    k = size[0] / scene.width
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    period = max(2.0, scene.tone_period * k)
    for region in scene.regions:
        pts = region.outline * k
        if region.tone == "black":
            draw.polygon(_xy(pts), fill=0)
        else:
            draw.polygon(_xy(pts), fill=255)
            if region.tone != "none" and (box := _box(pts, size)) is not None:
                ink = _tone_pattern(region.tone, box, period, scene.tone_angle)
                ink &= np.asarray(_mask(pts, box)) > 0
                img.paste(0, box, Image.fromarray(ink.astype(np.uint8) * 255))
        for s in region.details:
            _draw_stroke(draw, s, k, 0)
        _draw_outline(draw, pts, region.width * k, 0)
    return img


# --------------------------------------------------------------------------- color


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(round(x)) for x in np.clip(c, 0, 255))


# material -> (hue, saturation, value) ranges of its base color; hue None: any
_MATERIAL_HSV = {
    "skin": ((0.03, 0.08), (0.15, 0.35), (0.9, 1.0)),
    "hair": (None, (0.35, 0.85), (0.45, 0.95)),
    "cloth": (None, (0.4, 0.9), (0.45, 0.9)),
    "iris": (None, (0.5, 0.95), (0.45, 0.85)),
    "pupil": (None, (0.5, 0.7), (0.2, 0.3)),
    "accent": (None, (0.6, 1.0), (0.7, 1.0)),
    "object": (None, (0.35, 0.9), (0.55, 0.95)),
    "ground": (None, (0.2, 0.55), (0.5, 0.85)),
}
_FIXED_COLORS = {"eye": np.array([250.0, 250, 252]), "shine": np.array([255.0, 255, 255])}
_PER_PICTURE = ("skin", "pupil", "ground")  # one color for the whole picture
_FLAT_MATERIALS = ("shine", "pupil", "eye", "ground")  # no cel shading
_GLOSSY_MATERIALS = ("hair", "object", "accent", "iris")  # get a highlight
_SKIN_SHADE = np.array([0.95, 0.78, 0.74])  # warm, not grey, shadows on skin


@dataclass
class _Palette:
    """One colorist's choices for one picture; each character or prop gets its own colors."""

    rng: np.random.Generator
    shade_mul: np.ndarray  # multiplied into a base color on the shadow side (tinted, cel style)
    light: np.ndarray  # unit vector towards the light, image coordinates
    line: np.ndarray | None  # None: each region's line is a dark version of its fill
    chosen: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def color(self, region: Region) -> np.ndarray:
        if region.material in _FIXED_COLORS:
            return _FIXED_COLORS[region.material]
        key = (region.material, 0 if region.material in _PER_PICTURE else region.group)
        if key not in self.chosen:  # drawn on first use: the region order fixes the rng order
            hue, sat, val = _MATERIAL_HSV[region.material]
            h = self.rng.uniform(*hue) if hue else self.rng.random()
            self.chosen[key] = _hsv(h, self.rng.uniform(*sat), self.rng.uniform(*val))
        return self.chosen[key]


def _make_palette(rng: np.random.Generator) -> _Palette:
    angle = rng.uniform(0, 2 * np.pi)
    line_kind = _choose(rng, {"black": 4, "brown": 2.5, "navy": 1, "trace": 2})
    line = {"black": np.array([20.0, 18, 22]), "brown": np.array([70.0, 40, 30]),
            "navy": np.array([30.0, 36, 80]), "trace": None}[line_kind]
    shade = np.array([0.68, 0.66, 0.8]) if rng.random() < 0.6 else np.full(3, 0.7)  # often bluish
    return _Palette(rng, shade, np.array([math.cos(angle), math.sin(angle)]), line)


BACKGROUNDS = {"simple": 3.0, "gradient": 5.0, "white": 1.2}  # kind -> how often


def pick_background(rng: np.random.Generator) -> str:
    return _choose(rng, BACKGROUNDS)


def _background(rng: np.random.Generator, size: tuple[int, int], kind: str) -> Image.Image:
    """A colored backdrop: flat color, a two-color gradient, or white."""
    if kind not in BACKGROUNDS:
        raise ValueError(f"background {kind!r}: allowed values are {', '.join(BACKGROUNDS)}")
    if kind == "white":
        return Image.new("RGB", size, (255, 255, 255))
    c0 = _hsv(rng.random(), rng.uniform(0.15, 0.6), rng.uniform(0.65, 0.95))
    if kind == "simple":
        return Image.new("RGB", size, _rgb(c0))
    c1 = _hsv(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.5, 1.0))
    # a smooth ramp computed small and upsampled: cheap, and bilinear keeps it smooth
    sw, sh = max(2, size[0] // 16), max(2, size[1] // 16)
    ang = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:sh, 0:sw] / np.array([sh - 1, sw - 1])[:, None, None]
    t = (xs - 0.5) * math.cos(ang) + (ys - 0.5) * math.sin(ang)
    t = ((t - t.min()) / max(np.ptp(t), 1e-6))[..., None]
    small = (c0 * (1 - t) + c1 * t).astype(np.uint8)
    return Image.fromarray(small, "RGB").resize(size, Image.BILINEAR)


def render_color(scene: Scene, size: tuple[int, int] | None, rng: np.random.Generator,
                 background: str | None = None) -> Image.Image:
    """The scene as a colored illustration ('RGB').

    Flat palette fills, a cel-shaded crescent on each region's side away from the light,
    a highlight towards it, tinted lines, and screentone/hatching replaced by color.
    `background` is one of BACKGROUNDS (None: drawn from rng).
    """
    size = size or (scene.width, scene.height)
    k = size[0] / scene.width
    pal = _make_palette(rng)
    img = _background(rng, size, background or pick_background(rng))
    draw = ImageDraw.Draw(img)
    for region in scene.regions:
        pts = region.outline * k
        base = pal.color(region)
        if region.tone == "black" and region.material not in ("pupil",):
            base = base * 0.45  # inked-black areas become a dark color
        elif region.tone in ("dots", "hatch", "crosshatch"):
            base = base * 0.85  # toned areas were darker ones
        fill = _rgb(base)
        draw.polygon(_xy(pts), fill=fill)
        box = _box(pts, size)
        extent = float(np.ptp(pts, axis=0).max())
        if box is not None and region.material not in _FLAT_MATERIALS and extent >= 6:
            region_mask = _mask(pts, box)
            # cel shading: the region minus itself shifted towards the light = the far rim
            skin = region.material == "skin"
            shift = pal.light * extent * (rng.uniform(0.05, 0.09) if skin else rng.uniform(0.08, 0.16))
            shadow = ImageChops.subtract(region_mask, _mask(pts, box, shift))
            img.paste(_rgb(base * (_SKIN_SHADE if skin else pal.shade_mul)), box, shadow)
            if region.material in _GLOSSY_MATERIALS and rng.random() < 0.8:  # a shine on the lit side
                centre = pts.mean(axis=0) + pal.light * extent * 0.28
                hl = _ellipse(centre[0], centre[1], extent * 0.16, extent * 0.08,
                              math.atan2(pal.light[1], pal.light[0]) + np.pi / 2, 16)
                hl_mask = ImageChops.multiply(region_mask, _mask(hl, box))
                img.paste(_rgb(base + (255 - base) * 0.55), box, hl_mask)
        line = _rgb(pal.line if pal.line is not None else base * 0.4)
        for s in region.details:
            _draw_stroke(draw, s, k, line)
        _draw_outline(draw, pts, region.width * k, line)
    return img


def fit_size(width: int, height: int, canvas: int) -> tuple[int, int]:
    """Size of an original width x height image in the 512px subset: shrunk to fit, never grown."""
    if width < 1 or height < 1:
        raise ValueError(f"image size {width}x{height}: both sides must be >= 1")
    k = min(1.0, canvas / max(width, height))
    return max(1, round(width * k)), max(1, round(height * k))


def pad_to_square(img: Image.Image, canvas: int) -> Image.Image:
    """Centre img on a canvas x canvas white square, as the 512px subset pads."""
    assert img.width <= canvas and img.height <= canvas
    fill = PAD_GREY if img.mode == "L" else (PAD_GREY,) * 3
    out = Image.new(img.mode, (canvas, canvas), fill)
    out.paste(img, ((canvas - img.width) // 2, (canvas - img.height) // 2))
    return out


# =========================================================================== distractor images


def _panel_rects(rng: np.random.Generator, w: int, h: int, gutter: int) -> list[tuple[int, int, int, int]]:
    """A manga page layout: rows, some split into two panels."""
    rows = int(rng.integers(2, 4))
    cuts = np.linspace(0, 1, rows + 1)[1:-1] + rng.uniform(-0.25, 0.25, rows - 1) / rows
    ys = [0, *(int(c * h) for c in cuts), h]
    rects = []
    for y0, y1 in zip(ys[:-1], ys[1:]):
        xs = [0, int(rng.uniform(0.3, 0.7) * w), w] if rng.random() < 0.6 else [0, w]
        rects += [(x0 + gutter, y0 + gutter, x1 - gutter, y1 - gutter) for x0, x1 in zip(xs[:-1], xs[1:])]
    return [r for r in rects if r[2] > r[0] and r[3] > r[1]]


def _frame_panels(page: Image.Image, rects: list[tuple[int, int, int, int]], width: int, ink: Any,
                  paper: Any) -> Image.Image:
    """Keep the drawing inside the panels, white gutters outside, a frame around each."""
    inside = Image.new("L", page.size, 0)
    mask_draw = ImageDraw.Draw(inside)
    for r in rects:
        mask_draw.rectangle(r, fill=255)
    out = Image.new(page.mode, page.size, paper)
    out.paste(page, (0, 0), inside)
    draw = ImageDraw.Draw(out)
    for r in rects:
        draw.rectangle(r, outline=ink, width=width)
    return out


def _speech_bubble(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, h: int, line: int) -> None:
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.4) * h
    rx, ry = rng.uniform(0.1, 0.18) * w, rng.uniform(0.06, 0.1) * h
    draw.polygon(_xy(_ellipse(cx, cy, rx, ry)), fill=255 if draw.mode == "L" else (255,) * 3)
    ink = 0 if draw.mode == "L" else (0, 0, 0)
    _draw_outline(draw, _ellipse(cx, cy, rx, ry), line, ink)
    for k in range(int(rng.integers(2, 4))):  # scribbled "text"
        y = cy - 0.45 * ry + k * 0.35 * ry
        draw.line([(cx - 0.6 * rx, y), (cx + rng.uniform(0.1, 0.6) * rx, y)], fill=ink, width=max(1, line // 2))


def _render_comic(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    page = render_scan(make_scene(rng, *size))
    line = max(1, round(max(size) * 0.008))
    page = _frame_panels(page, _panel_rects(rng, *size, gutter=max(2, max(size) // 64)), line, 0, 255)
    draw = ImageDraw.Draw(page)
    for _ in range(int(rng.integers(1, 3))):
        _speech_bubble(rng, draw, *size, line)
    return page


def _render_4koma(rng: np.random.Generator, size: tuple[int, int], colored: bool) -> Image.Image:
    """Four stacked panels, each its own small drawing."""
    w, h = size
    page = Image.new("RGB", size, (255, 255, 255))
    gutter = max(2, h // 60)
    ph = (h - 5 * gutter) // 4
    for i in range(4):
        scene = make_scene(rng, w - 2 * gutter, max(1, ph))
        panel = render_color(scene, None, rng) if colored else render_scan(scene).convert("RGB")
        page.paste(panel, (gutter, gutter + i * (ph + gutter)))
        ImageDraw.Draw(page).rectangle((gutter, gutter + i * (ph + gutter), w - gutter - 1,
                                        gutter + i * (ph + gutter) + ph - 1),
                                       outline=(0, 0, 0), width=max(1, w // 100))
    return page


def _render_photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A photograph-like image: smooth color fields and sensor noise, no line art."""
    fields = rng.uniform(20, 235, (5, 5, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(fields, "RGB").resize(size, Image.BICUBIC), dtype=np.int16)
    img = img + rng.normal(0, 6, (size[1], size[0], 1)).astype(np.int16)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _largest_region_mask(scene: Scene, size: tuple[int, int]) -> Image.Image:
    k = size[0] / scene.width
    candidates = [r for r in scene.regions if r.material not in ("ground", "pupil", "shine")] or scene.regions
    biggest = max(candidates, key=lambda r: float(np.ptp(r.outline, axis=0).prod()))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon(_xy(biggest.outline * k), fill=255)
    return mask


def _render_spot_color(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Black and white except one region in color."""
    scene = make_scene(rng, *size)
    scan = render_scan(scene).convert("RGB")
    red = Image.new("RGB", size, _rgb(_hsv(rng.uniform(-0.03, 0.03) % 1, 0.85, 0.85)))
    tinted = ImageChops.multiply(scan, red)  # keeps the ink lines dark inside the colored region
    return Image.composite(tinted, scan, _largest_region_mask(scene, size))


def _render_partially_monochrome(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A colored illustration with one side left in greyscale."""
    color = render_color(make_scene(rng, *size), None, rng)
    grey = color.convert("L").convert("RGB")
    mask = Image.new("L", size, 0)
    x = int(size[0] * rng.uniform(0.35, 0.65))
    ImageDraw.Draw(mask).polygon([(x, 0), (size[0], 0), (size[0], size[1]), (x - size[1] // 4, size[1])], fill=255)
    return Image.composite(grey, color, mask)


_CORRUPTIONS = ("truncated", "garbage", "html")


def _corrupt(rng: np.random.Generator, jpeg: bytes, how: str) -> bytes:
    """Broken file contents of the kinds mirrors deliver."""
    if how == "truncated":  # a download cut off mid-stream
        return jpeg[: len(jpeg) * 2 // 5]
    if how == "garbage":
        return rng.bytes(int(rng.integers(2_000, 20_000)))
    assert how == "html", how
    return b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n" \
           b"<body><h1>503 Service Unavailable</h1></body></html>\n"


# =========================================================================== posts

DOMAINS = ("color", "scan")
DISTRACTOR_KINDS = (  # filled round-robin, so a few distractors already cover every kind
    "comic", "4koma", "photo", "partially_monochrome", "spot_color", "rating_q", "rating_e",
    "deleted", "banned", "non_image", "tiny", "extreme_aspect",
)
CORRUPT_KIND = "corrupt"  # colored-looking, rating s, but the 512px jpg is broken
IMAGE_EXTS = ("jpg", "png")
NON_IMAGE_EXTS = ("zip", "swf", "webm", "mp4")
_LOOK_ALTERNATING = ("rating_q", "rating_e", "deleted", "banned", "non_image", "tiny", "extreme_aspect")


@dataclass(frozen=True)
class PostPlan:
    """What one post is and what its 512px image shows (decided before anything is drawn)."""

    id: int
    kind: str  # color, scan, a DISTRACTOR_KINDS entry, or corrupt
    look: str  # color, scan, comic, 4koma_color, 4koma_scan, photo, spot_color, partially_monochrome
    width: int  # the original's image_width / image_height
    height: int
    file_ext: str
    rating: str
    has_image: bool  # a 512px jpg exists (rating s, an image file_ext)
    background: str = "white"  # color looks: one of BACKGROUNDS
    corruption: str = ""  # corrupt kind: one of _CORRUPTIONS
    grey_jpeg: bool = False  # scan saved as a 1-channel JPEG


def distractor_counts(n: int) -> dict[str, int]:
    """How n distractors split over kinds: 2-3 corrupt files, the rest round-robin."""
    if n <= 0:
        return {}
    counts = {CORRUPT_KIND: min(3, max(1, n // 6))}
    counts.update({k: 0 for k in DISTRACTOR_KINDS})
    for i in range(n - counts[CORRUPT_KIND]):
        counts[DISTRACTOR_KINDS[i % len(DISTRACTOR_KINDS)]] += 1
    return {k: v for k, v in counts.items() if v}


def _entropy(seed: int) -> int:
    return int(seed) % 2**63  # SeedSequence wants a non-negative integer


def _dims(rng: np.random.Generator, long_side: tuple[int, int], aspect: tuple[float, float]) -> tuple[int, int]:
    """Original (width, height) with width/height drawn log-uniformly in `aspect`."""
    side = int(rng.integers(*long_side))
    a = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    return (side, max(1, round(side / a))) if a >= 1 else (max(1, round(side * a)), side)


def plan_posts(cfg: SyntheticConfig) -> list[PostPlan]:
    """Every post of the dataset: ids, kinds, original sizes, what gets a 512px file."""
    rng = np.random.default_rng([_entropy(cfg.seed), 1])
    kinds = ["color"] * cfg.n_color + ["scan"] * cfg.n_scan
    for kind, n in distractor_counts(cfg.n_distractors).items():
        kinds += [kind] * n
    ids = rng.choice(MAX_POST_ID, size=len(kinds), replace=False) + 1
    plans, seen = [], dict.fromkeys(kinds, 0)
    for post_id, kind in zip(ids.tolist(), kinds):
        i = seen[kind]
        seen[kind] += 1
        dims = _dims(rng, (600, 2400), (0.6, 1.6))
        look = "color" if kind == CORRUPT_KIND else kind
        rating, file_ext = "s", str(rng.choice(IMAGE_EXTS, p=[0.65, 0.35]))
        if kind in _LOOK_ALTERNATING:
            look = DOMAINS[i % 2]
        if kind == "comic":
            dims = _dims(rng, (900, 2400), (0.65, 0.75))
        elif kind == "4koma":
            dims = _dims(rng, (900, 2400), (0.55, 0.7))
            look = ("4koma_scan", "4koma_color")[i % 2]
        elif kind == "photo":
            file_ext = "jpg"
        elif kind in ("rating_q", "rating_e"):
            rating = kind[-1]
        elif kind == "non_image":
            file_ext = NON_IMAGE_EXTS[i % len(NON_IMAGE_EXTS)]
        elif kind == "tiny":
            dims = _dims(rng, (80, 250), (0.7, 1.4))
        elif kind == "extreme_aspect":
            dims = _dims(rng, (1200, 2400), (3.5, 5.0) if i % 2 == 0 else (0.2, 0.28))
        elif kind == CORRUPT_KIND:
            file_ext = "jpg"
        plans.append(PostPlan(
            id=post_id, kind=kind, look=look, width=dims[0], height=dims[1], file_ext=file_ext,
            rating=rating, has_image=rating == "s" and file_ext in IMAGE_EXTS,
            background=pick_background(rng),
            corruption=_CORRUPTIONS[i % len(_CORRUPTIONS)] if kind == CORRUPT_KIND else "",
            grey_jpeg=look == "scan" and rng.random() < 0.25,
        ))
    return plans


# --------------------------------------------------------------------------- rendering one post


def render_post(plan: PostPlan, seed: int, canvas: int) -> tuple[Scene, Image.Image | None, Image.Image | None]:
    """(scene, 512px image, true scan) of one post; the images are None when it has no file.

    The true scan (padded like the image) is drawn for color-domain posts only.
    """
    e = _entropy(seed)
    scene_rng, color_rng, extra_rng = (np.random.default_rng([e, plan.id, k]) for k in range(3))
    size = fit_size(plan.width, plan.height, canvas)
    scene = make_scene(scene_rng, *size)
    if not plan.has_image:
        return scene, None, None
    truth = None
    if plan.look == "scan":
        img = render_scan(scene)
        img = img if plan.grey_jpeg else img.convert("RGB")
    elif plan.look == "color":
        img = render_color(scene, None, color_rng, plan.background)
        if plan.kind == "color":
            truth = pad_to_square(render_scan(scene), canvas)
    elif plan.look == "comic":
        img = _render_comic(extra_rng, size)
    elif plan.look.startswith("4koma"):
        img = _render_4koma(extra_rng, size, colored=plan.look == "4koma_color")
    elif plan.look == "photo":
        img = _render_photo(extra_rng, size)
    elif plan.look == "spot_color":
        img = _render_spot_color(extra_rng, size)
    elif plan.look == "partially_monochrome":
        img = _render_partially_monochrome(extra_rng, size)
    else:
        raise AssertionError(f"unknown look {plan.look!r}")
    return scene, pad_to_square(img, canvas), truth


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _write_post(task: tuple[PostPlan, int, int, str]) -> dict[str, Any]:
    """Worker: draw one post, write its files under out_dir, return what metadata needs."""
    plan, seed, canvas, out_dir = task
    scene, img, truth = render_post(plan, seed, canvas)
    result = {"tags": scene.tags, "tone_tags": scene.tone_tags(), "abs_diff": 0, "pixels": 0}
    if img is None:
        return result
    data = _encode(img, "JPEG")
    if plan.corruption:
        data = _corrupt(np.random.default_rng([_entropy(seed), plan.id, 3]), data, plan.corruption)
    path = Path(out_dir, *image_relpath(plan.id, "jpg", "512px").parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if truth is not None:
        Path(out_dir, "groundtruth", f"{plan.id}.png").write_bytes(_encode(truth, "PNG"))
        grey = np.asarray(img.convert("L"), dtype=np.int16)
        result["abs_diff"] = int(np.abs(grey - np.asarray(truth, dtype=np.int16)).sum())
        result["pixels"] = grey.size
    return result


def _render_all(plans: list[PostPlan], seed: int, canvas: int, out_dir: Path, workers: int,
                progress: bool) -> list[dict[str, Any]]:
    (out_dir / "groundtruth").mkdir(parents=True, exist_ok=True)
    tasks = [(p, seed, canvas, str(out_dir)) for p in plans]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    step = max(1, len(tasks) // 10)

    def report(i: int) -> None:
        if progress and (i % step == 0 or i == len(tasks)):
            print(f"synthetic: drew {i}/{len(tasks)} posts", file=sys.stderr, flush=True)

    results = []
    if n_workers == 1:
        for i, task in enumerate(tasks, 1):
            results.append(_write_post(task))
            report(i)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the caller may hold threads (torch, DVC) that fork would copy mid-lock
    with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i, result in enumerate(pool.map(_write_post, tasks, chunksize=8), 1):
            results.append(result)
            report(i)
    return results


# --------------------------------------------------------------------------- records

# Tags that decide filtering: never dropped from an older snapshot.
FILTER_TAGS = frozenset({
    "monochrome", "greyscale", "lineart", "screentone", "hatching_(texture)", "comic", "4koma",
    "photo_(medium)", "partially_monochrome", "spot_color", "animated", "video", "ugoira", "flash",
})
_GENERAL = ("looking_at_viewer", "standing", "upper_body", "open_mouth", "closed_eyes", "bangs",
            "dress", "school_uniform", "ribbon", "holding", "sitting", "jewelry", "outdoors",
            "day", "shirt", "long_sleeves", "hair_ornament", "simple_background")
_HAIR = ("black_hair", "brown_hair", "blonde_hair", "blue_hair", "pink_hair", "silver_hair", "red_hair")
_EYES = ("blue_eyes", "red_eyes", "green_eyes", "brown_eyes", "purple_eyes", "yellow_eyes")
_ARTISTS = ("kantoku", "ningen_mame", "tony_taka", "ke-ta", "shiratama_(shiratamaco)", "hews",
            "émilie_dûpont", "zunko_(☆)", "ぽんぽん_(artist)", "kr◯s", "mika_pikazo", "🐱_(neko)",
            "ask_(askzy)", "fuzichoco", "void_0")
_FRANCHISES = {
    "touhou": ("hakurei_reimu", "kirisame_marisa", "remilia_scarlet"),
    "vocaloid": ("hatsune_miku", "kagamine_rin"),
    "kantai_collection": ("shimakaze_(kancolle)", "hibiki_(kancolle)"),
    "idolmaster": ("shimamura_uzuki",),
    "fate_(series)": ("saber", "tohsaka_rin"),
}
_META = ("highres", "commentary_request", "translated", "bad_id", "bad_pixiv_id", "twitter_username")
_HANDLES = ("sakura_drw", "ｈｉｋａｒｉ", "neko_no_te", "art.émile", "mizu☆iro")


def tag_id(name: str) -> int:
    """A stable positive id for a tag name (real ids are arbitrary too)."""
    return zlib.crc32(name.encode("utf-8")) % 1_700_000 + 1


def _when(rng: np.random.Generator, start: datetime, end: datetime) -> datetime:
    """A time between start and end, with 0, 3 or 6 significant fractional digits."""
    span = max(0.0, (end - start).total_seconds())
    t = start + timedelta(seconds=int(rng.uniform(0, span)))
    kind = rng.random()
    micro = 0 if kind < 0.25 else int(rng.integers(0, 1000)) * 1000 if kind < 0.6 else int(rng.integers(0, 10**6))
    return t.replace(microsecond=micro)


def _source(rng: np.random.Generator, pixiv_id: int | None, created: datetime, ext: str) -> str:
    if pixiv_id:
        if rng.random() < 0.3:  # the old page-style URL
            return f"http://www.pixiv.net/member_illust.php?mode=medium&illust_id={pixiv_id}"
        return f"https://i.pximg.net/img-original/img/{created:%Y/%m/%d/%H/%M/%S}/{pixiv_id}_p0.{ext}"
    handle = str(rng.choice(_HANDLES))
    choices = [
        "",
        f"https://twitter.com/{handle}/status/{int(rng.integers(10**17, 10**18))}",
        f"https://www.deviantart.com/{handle}/art/étude-{int(rng.integers(10**6, 10**8))}",
        f"https://seiga.nicovideo.jp/seiga/im{int(rng.integers(10**5, 10**7))} 「落書き」",
        "Scanned from 『月刊コミック』 2008年3月号 — p. 12",
    ]
    return choices[int(rng.choice(len(choices), p=[0.3, 0.35, 0.15, 0.1, 0.1]))]


def _domain_tags(rng: np.random.Generator, plan: PostPlan, scene_tags: list[str], tone_tags: list[str]) -> list[str]:
    """General tags that say what the image is (the ones the select stage filters on)."""
    look = plan.look
    tags = list(scene_tags)
    if look in ("scan", "4koma_scan", "comic", "spot_color"):
        mono = [t for t, p in (("monochrome", 0.95), ("greyscale", 0.85)) if rng.random() < p]
        tags += mono or ["monochrome"]
        tags += ["simple_background", "white_background"]
    if look == "scan":
        tags += (["lineart"] if rng.random() < 0.6 else []) + tone_tags
    elif look in ("color", "4koma_color", "partially_monochrome"):
        tags += {"simple": ["simple_background"], "white": ["simple_background", "white_background"],
                 "gradient": ["gradient_background"]}[plan.background]
        if "no_humans" not in scene_tags:
            tags += [str(rng.choice(_HAIR)), str(rng.choice(_EYES))]
    if look == "comic":
        tags += ["comic", "speech_bubble"]
    elif look.startswith("4koma"):
        tags += ["4koma", "comic"]
    elif look == "photo":
        tags = ["photo_(medium)", "1girl", "solo"] + (["cosplay"] if rng.random() < 0.5 else [])
    elif look == "spot_color":
        tags += ["spot_color"]
    elif look == "partially_monochrome":
        tags += ["partially_monochrome"] + (["greyscale"] if rng.random() < 0.5 else [])
    if plan.file_ext in NON_IMAGE_EXTS:
        tags += {"zip": ["animated", "ugoira"], "swf": ["animated", "flash"]}.get(plan.file_ext,
                                                                                 ["animated", "video"])
    extra = rng.choice(len(_GENERAL), size=int(rng.integers(1, 5)), replace=False)
    return tags + [_GENERAL[i] for i in extra]


def make_record(rng: np.random.Generator, plan: PostPlan, scene_tags: list[str],
                tone_tags: list[str]) -> dict[str, Any]:
    """A post with Python values (ints, None, datetimes, bools, tag tuples) for dump_record()."""
    frac = plan.id / MAX_POST_ID  # ids grow with upload time, as on Danbooru
    span = SNAPSHOT_DATE - timedelta(days=30) - FIRST_POST_DATE
    anchor = FIRST_POST_DATE + span * frac
    created = _when(rng, max(FIRST_POST_DATE, anchor - timedelta(days=20)), anchor + timedelta(days=20))
    updated = _when(rng, created + timedelta(minutes=1), SNAPSHOT_DATE)
    up = int(rng.gamma(1.1, 6.0 if plan.rating == "s" else 10.0))
    down = -int(rng.poisson(0.4))
    pixiv_id = int(rng.integers(1_000_000, 86_000_000)) if rng.random() < 0.55 else None

    copyright_ = "original" if rng.random() < 0.6 else str(rng.choice(list(_FRANCHISES)))
    tags: list[tuple[str, int]] = [(t, 0) for t in _domain_tags(rng, plan, scene_tags, tone_tags)]
    tags.append((copyright_, 3))
    if copyright_ != "original":
        tags.append((str(rng.choice(_FRANCHISES[copyright_])), 4))
    if rng.random() < 0.9:
        tags.append((str(rng.choice(_ARTISTS)), 1))
    if max(plan.width, plan.height) >= 1600:
        tags.append(("highres", 5))
    tags += [(m, 5) for m in _META if rng.random() < 0.12]
    tags = list(dict.fromkeys(tags))
    tags = [tags[i] for i in rng.permutation(len(tags))]
    if rng.random() < 0.06:  # Danbooru2020 repeats tags inside some records
        tags.append(tags[int(rng.integers(len(tags)))])

    n_pixels = plan.width * plan.height
    size_per_pixel = {"jpg": (0.15, 0.6), "png": (0.8, 2.5)}.get(plan.file_ext, (1.5, 12.0))
    return {
        "id": plan.id,
        "uploader_id": int(rng.integers(1, 700_000)),
        "created_at": created,
        "updated_at": updated,
        "last_commented_at": _when(rng, created, SNAPSHOT_DATE) if rng.random() < 0.3 else None,
        "last_noted_at": _when(rng, created, SNAPSHOT_DATE) if rng.random() < 0.07 else None,
        "score": up + down,
        "up_score": up,
        "down_score": down,
        "favs": sorted({int(x) for x in rng.integers(1, 700_000, size=min(up, 12))}),
        "image_width": plan.width,
        "image_height": plan.height,
        "file_size": int(n_pixels * rng.uniform(*size_per_pixel)),
        "file_ext": plan.file_ext,
        "rating": plan.rating,
        "md5": rng.bytes(16).hex(),  # like Danbooru2020's, it does not match the file
        "source": _source(rng, pixiv_id, created, plan.file_ext),
        "parent_id": int(rng.integers(1, plan.id)) if plan.id > 1 and rng.random() < 0.1 else None,
        "approver_id": int(rng.integers(1, 600_000)) if rng.random() < 0.65 else None,
        "pixiv_id": pixiv_id,
        "is_deleted": plan.kind == "deleted",
        "is_banned": plan.kind == "banned",
        "is_pending": False,
        "is_flagged": plan.kind == "deleted" and rng.random() < 0.3,
        "is_note_locked": False,
        "is_rating_locked": rng.random() < 0.04,
        "is_status_locked": rng.random() < 0.01,
        "has_children": rng.random() < 0.05,
        "pools": [int(rng.integers(1, 20_000))] if rng.random() < 0.04 else [],
        "tags": [(name, cat, tag_id(name)) for name, cat in tags],
    }


def older_snapshot(rng: np.random.Generator, post: dict[str, Any]) -> dict[str, Any]:
    """The same post as an earlier yearly snapshot saw it: fewer tags, lower score, not yet deleted."""
    old = dict(post)
    old["updated_at"] = _when(rng, post["created_at"], post["updated_at"] - timedelta(seconds=30))
    assert old["updated_at"] < post["updated_at"]
    droppable = [i for i, t in enumerate(post["tags"]) if t[1] == 0 and t[0] not in FILTER_TAGS]
    drop = set(rng.choice(droppable, size=min(len(droppable), int(rng.integers(1, 4))), replace=False).tolist()) \
        if droppable else set()
    old["tags"] = [t for i, t in enumerate(post["tags"]) if i not in drop]
    old["up_score"] = int(post["up_score"] * rng.uniform(0.3, 0.9))
    old["score"] = old["up_score"] + post["down_score"]
    old["favs"] = post["favs"][: len(post["favs"]) // 2]
    for flag in ("is_deleted", "is_banned", "is_flagged"):
        old[flag] = False
    for name in ("last_commented_at", "last_noted_at"):
        if post[name] is not None and post[name] > old["updated_at"]:
            old[name] = None
    return old


def build_metadata(cfg: SyntheticConfig, plans: list[PostPlan],
                   drawn: list[dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """JSON lines per shard name: records, older snapshots in other shards, a few truncated lines."""
    rng = np.random.default_rng([_entropy(cfg.seed), 2])
    shards = METADATA_SHARD_NAMES[: cfg.n_shards]
    posts = [make_record(rng, p, d["tags"], d["tone_tags"]) for p, d in zip(plans, drawn)]
    lines: list[tuple[int, str]] = []  # (shard index, line)
    home = rng.integers(0, len(shards), size=len(posts))
    for shard, post in zip(home.tolist(), posts):
        lines.append((shard, _line(post)))
    n_dup = round(cfg.duplicate_fraction * len(posts))
    chosen = rng.choice(len(posts), size=n_dup, replace=False).tolist()
    deleted = [i for i, p in enumerate(plans) if p.kind == "deleted"]
    if chosen and deleted and not set(chosen) & set(deleted):
        # make sure one post was deleted after its older snapshot: deduping must keep the newest
        chosen[0] = int(rng.choice(deleted))
    for i in sorted(chosen):
        other = (home[i] + 1 + rng.integers(len(shards) - 1)) % len(shards) if len(shards) > 1 else 0
        lines.append((int(other), _line(older_snapshot(rng, posts[i]))))
    n_bad = int(rng.integers(1, 4)) if posts else 0
    for _ in range(n_bad):  # a line cut off mid-record, as from an interrupted export
        text = _line(posts[int(rng.integers(len(posts)))])
        lines.append((int(rng.integers(len(shards))), text[: int(rng.integers(10, len(text) - 5))]))
    by_shard: dict[str, list[str]] = {name: [] for name in shards}
    for shard, text in lines:
        by_shard[shards[shard]].append(text)
    for name, shard_lines in by_shard.items():
        by_shard[name] = [shard_lines[i] for i in rng.permutation(len(shard_lines))]
    return by_shard, {"n_posts": len(posts), "n_records": len(posts) + n_dup, "n_duplicates": n_dup,
                      "n_malformed_lines": n_bad}


def _line(post: dict[str, Any]) -> str:
    return json.dumps(dump_record(post), ensure_ascii=False, separators=(",", ":"))  # compact, as shipped


# =========================================================================== the dataset


def generate_dataset(cfg: SyntheticConfig, root: str | Path, workers: int = 0,
                     progress: bool = True) -> dict[str, Any]:
    """Write the synthetic Danbooru2020 mirror to root (replacing an earlier one); return stats.

    Everything is built in a sibling folder and renamed into place at the end, so a killed
    run leaves either the previous result or nothing, and a re-run starts clean.
    """
    cfg.validate("source.synthetic")
    root = Path(root)
    _check_replaceable(root)
    start = time.perf_counter()
    partial = root.parent / f".{root.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)

    plans = plan_posts(cfg)
    drawn = _render_all(plans, cfg.seed, cfg.canvas, partial, workers, progress)
    shards, counts = build_metadata(cfg, plans, drawn)
    (partial / "metadata").mkdir()
    for name, lines in shards.items():
        (partial / "metadata" / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    kinds = {k: sum(p.kind == k for p in plans) for k in dict.fromkeys(p.kind for p in plans)}
    marker = {"generator": __name__, "config": dataclasses.asdict(cfg), "kinds": kinds, **counts}
    (partial / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    old = root.parent / f".{root.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if root.exists():
        root.rename(old)
    partial.rename(root)
    shutil.rmtree(old, ignore_errors=True)

    diff = sum(d["abs_diff"] for d in drawn)
    pixels = sum(d["pixels"] for d in drawn)
    return {
        "kinds": kinds,
        **counts,
        "n_images": sum(p.has_image for p in plans),
        "n_groundtruth": sum(p.kind == "color" and p.has_image for p in plans),
        "grey_vs_scan_mad": round(diff / pixels, 3) if pixels else 0.0,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _check_replaceable(root: Path) -> None:
    """Refuse to delete a folder this module did not write (e.g. a real mirror)."""
    if root.is_file():
        raise FileExistsError(f"{root}: is a file; the synthetic source needs a folder path")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise FileExistsError(f"{root}: not empty and not written by the synthetic generator (no {MARKER}); "
                              "refusing to replace it: remove it or choose another source.root")
