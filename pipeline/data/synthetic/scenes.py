"""Vector scenes of the synthetic mini-Danbooru2020: strokes, regions, characters and props.

`make_scene` draws one random scene, which `scene_images` turns into a scan and a colored
illustration. Every region's color is decided here, from the priors of `palettes` (a
character of the series' cast keeps its colors), and so is how the scan inks it: the manga
convention, by the color's lightness (`palettes.ink_tone`). Used by the `source` stage (kind synthetic, via `generate_dataset`) and by
`onepunch synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.data.synthetic.palettes import (
    EYE_WHITE,
    GROUND,
    OBJECTS,
    PUPIL,
    SHINE,
    CharacterLook,
    draw_color,
    ink_level,
    ink_tone,
    random_look,
)

# Stroke widths as fractions of the longer image side: 4-10 px outlines at 512 px, so that
# lines still show (as grey) after the default 8x downsampling to 64 px.
OUTLINE_WIDTH = (0.008, 0.019)
DETAIL_WIDTH = (0.005, 0.011)


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
    tone: str = "none"  # none, dots, dots_dense, hatch, crosshatch, black (how the scan inks it)
    details: list[Stroke] = field(default_factory=list)
    group: int = 0  # regions of one character or prop share their colors
    color: np.ndarray | None = None  # sRGB base color (set by make_scene)


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
        return (["screentone"] if tones & {"dots", "dots_dense"} else []) + \
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


def ellipse(cx: float, cy: float, rx: float, ry: float, rot: float = 0.0, n: int = 40) -> np.ndarray:
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


def choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _character(rng: np.random.Generator, cx: float, top: float, height: float,
               pen: tuple[float, float], tags: list[str], look: CharacterLook) -> list[Region]:
    """A chibi-proportioned figure: hair, head, face, torso, arms, in `look`'s colors."""
    out_w, det_w = pen
    rh = 0.17 * height  # head radius
    hx, hy = cx + rng.uniform(-0.1, 0.1) * rh, top + 1.15 * rh
    hair_tone = cloth_tone = iris_tone = "none"  # inked by color in make_scene
    regions: list[Region] = []
    tags += [f"{look.hair}_hair", f"{look.eyes}_eyes"]

    long_hair = look.long_hair
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
        regions.append(Region(ellipse(hand[0], hand[1] + 0.25 * rh, 0.27 * rh, 0.3 * rh, n=24), out_w * 0.8,
                              "skin"))

    # head with a slightly pointed chin
    head = ellipse(hx, hy, 0.95 * rh, rh, n=32)
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
    for side in (-1, 1):  # eye white, iris, pupil, shine; a heavy lash line on top
        ex = hx + side * 0.42 * rh
        lash = Stroke(np.array([(ex - 1.25 * er, ey - 0.9 * er), (ex, ey - 1.35 * er), (ex + 1.25 * er, ey - 0.9 * er)]),
                      out_w * 1.3)
        regions.append(Region(ellipse(ex, ey, er, er * 1.3, n=24), det_w, "eye", "none", [lash]))
        regions.append(Region(ellipse(ex, ey + 0.15 * er, 0.7 * er, er, n=24), det_w * 0.8, "iris", iris_tone))
        regions.append(Region(ellipse(ex, ey + 0.25 * er, 0.35 * er, 0.5 * er, n=16), 0, "pupil", "black"))
        regions.append(Region(ellipse(ex - 0.25 * side * er, ey - 0.25 * er, 0.2 * er, 0.2 * er, n=12), 0, "shine"))

    if look.animal_ears:
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

    if look.headwear == "bow":
        tags.append("hair_bow")
        bx, by, br = hx + rng.choice([-1, 1]) * 0.75 * rh, hy - 0.85 * rh, 0.35 * rh
        for side in (-1, 1):
            wing = np.array([(bx, by), (bx + side * br * 1.4, by - br * 0.8), (bx + side * br * 1.5, by + br * 0.8)])
            regions.append(Region(_chaikin(wing, 2), det_w * 1.2, "accent"))
        regions.append(Region(ellipse(bx, by, 0.28 * br, 0.35 * br, n=12), det_w * 1.2, "accent"))
    elif look.headwear == "hat":  # brim and crown
        tags.append("hat")
        bw = rh * rng.uniform(1.3, 1.8)
        by = hy - rng.uniform(0.55, 0.8) * rh
        crown = np.array([(hx - 0.8 * rh, by), (hx - 0.7 * rh, by - 0.9 * rh), (hx + 0.7 * rh, by - 0.95 * rh),
                          (hx + 0.8 * rh, by)])
        band = [Stroke(np.array([(hx - 0.78 * rh, by - 0.25 * rh), (hx + 0.78 * rh, by - 0.25 * rh)]), det_w * 1.5,
                       tapered=False)]
        regions.append(Region(ellipse(hx, by, bw, 0.22 * rh, n=28), out_w, "accent"))
        regions.append(Region(_chaikin(crown, 1), out_w, "accent", "none", band))

    tilt = rng.normal(0, 0.08)  # lean the whole figure a little
    group = int(rng.integers(1, 2**31))
    colors = {"hair": look.color("hair"), "iris": look.color("iris"), "cloth": look.color("cloth"),
              "accent": look.color("accent"), "skin": np.array(look.skin), "eye": np.array(EYE_WHITE, float),
              "pupil": np.array(PUPIL, float), "shine": np.array(SHINE, float)}
    for region in regions:
        region.group = group
        region.color = colors[region.material]
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
    kind = str(rng.choice(list(_PROP_TAGS)))
    regions = _prop_shapes(rng, kind, cx, cy, r, pen, tags)
    group = int(rng.integers(1, 2**31))
    _, color = draw_color(rng, OBJECTS["fruit" if kind == "blob" else kind])
    _, centre = draw_color(rng, OBJECTS["flower_centre"])
    for region in regions:
        region.group = group
        region.color = centre if region.material == "accent" else color
    return regions


def _prop_shapes(rng: np.random.Generator, kind: str, cx: float, cy: float, r: float,
                 pen: tuple[float, float], tags: list[str]) -> list[Region]:
    out_w, det_w = pen
    tags.append(_PROP_TAGS[kind])
    tone = "none"  # inked by color in make_scene
    if kind == "ball":
        stripes = [_arc_stroke(rng, (cx - r * 0.95, cy + o * r), (cx + r * 0.95, cy + o * r), 0.12, det_w)
                   for o in (-0.35, 0.3)]
        return [Region(ellipse(cx, cy, r, r), out_w, "object", tone, stripes)]
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
        petals = [Region(ellipse(cx + 0.55 * r * math.cos(a), cy + 0.55 * r * math.sin(a), 0.5 * r, 0.3 * r, a, 20),
                         out_w * 0.8, "object", tone)
                  for a in np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 1)]
        return petals + [Region(ellipse(cx, cy, 0.3 * r, 0.3 * r, n=20), out_w * 0.8, "accent")]
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
    _, color = draw_color(rng, GROUND)
    return Region(poly, pen[0], "ground", "none", lines, color=color)


CAST_SHARE = 0.7  # chance that a figure is one of the series' recurring characters
LIGHTER_INKING = 0.1  # chance that an artist inks a region one level lighter than its color


def _ink(rng: np.random.Generator, regions: list[Region], style: str) -> None:
    """Set each region's scan tone from its color's lightness, as a manga artist inks.

    One decision per (character or prop, material): a character's hair is inked alike
    wherever it shows. Pupils are always black, eye whites and shines always white.
    """
    decided: dict[tuple[int, str], str] = {}
    for region in regions:
        key = (region.group, region.material)
        if key not in decided:
            level = ink_level(region.color)
            if region.material in ("pupil", "eye", "shine"):
                level = {"pupil": "black"}.get(region.material, "white")
            elif level != "white" and rng.random() < LIGHTER_INKING:
                level = {"black": "dense", "dense": "light", "light": "white"}[level]
            decided[key] = ink_tone(level, style)
        region.tone = decided[key]


def make_scene(rng: np.random.Generator, w: int, h: int, cast: tuple[CharacterLook, ...] = (),
               pen_scale: float | None = None, cast_share: float = CAST_SHARE) -> Scene:
    """A random drawing for a w x h image: one or two characters (each of the `cast` with
    chance `cast_share`, else a one-off from the priors), or a still life.

    Line widths and the screentone period are fractions of `pen_scale` (default: the long
    side): a page panel passes a fixed pen so that its lines keep a page's widths however
    wide the panel is.
    """
    assert w >= 1 and h >= 1
    scale = float(max(w, h)) if pen_scale is None else float(pen_scale)
    pen = _widths(rng, scale)
    regions: list[Region] = []
    tags: list[str] = []
    if rng.random() < 0.45:
        regions.append(_ground(rng, w, h, pen))
        tags.append("floor")
    layout = choose(rng, {"character": 5, "pair": 1.5, "still_life": 2.5})
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
            if cast and rng.random() < cast_share:
                look = cast[int(rng.integers(len(cast)))]
                tags.append(look.name)
            else:
                look = random_look(rng)
            regions += _character(rng, cx, top, height, pen, tags, look)
        if rng.random() < 0.5:
            r = small * rng.uniform(0.08, 0.14)
            side = rng.choice([0.12, 0.88])
            regions += _prop(rng, side * w, h * rng.uniform(0.55, 0.85), r, pen, tags)
    for region in regions:  # line weight varies a little from shape to shape
        region.width *= rng.uniform(0.8, 1.25)
    _ink(rng, regions, "dots" if rng.random() < 0.65 else "hatch")
    return Scene(w, h, regions, tone_period=scale * rng.uniform(0.007, 0.011),
                 tone_angle=float(rng.choice([math.pi / 4, math.pi / 3, 0.0])), tags=tags)
