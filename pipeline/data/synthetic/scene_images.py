"""A synthetic scene as images: the true scan (`render_scan`), a colored illustration
(`render_color`) and the benchmark's ceiling (`render_oracle`).

Also the backgrounds and the 512px subset's padding (`pad_to_square`; its sizes:
`pipeline.imaging.shrink_to_fit`).
Used by the `source` stage (kind synthetic, via `generate_dataset`) and by `onepunch synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from pipeline.data.materials import CODE
from pipeline.data.synthetic.palettes import (
    GRADIENT_BACKGROUND,
    SIMPLE_BACKGROUND,
    jittered,
    oracle_fill,
    pick,
)
from pipeline.data.synthetic.scenes import Scene, Stroke, choose, ellipse

PAD_GREY = 255  # the 512px images are padded with white


def _ribbon(points: np.ndarray, width: float) -> np.ndarray:
    """The outline of a stroke that swells from a point to `width` and back (brush ink)."""
    d = np.gradient(points, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    t = np.linspace(0, 1, len(points))
    half = 0.5 * width * (0.25 + 0.75 * np.sin(np.pi * t) ** 0.7)
    return np.vstack([points + n * half[:, None], (points - n * half[:, None])[::-1]])


def xy_points(points: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(p) for p in points.tolist()]


def _draw_stroke(draw: ImageDraw.ImageDraw, s: Stroke, k: float, fill: Any) -> None:
    pts = s.points * k
    w = s.width * k
    if s.tapered and len(pts) > 2 and w >= 2:
        draw.polygon(xy_points(_ribbon(pts, w)), fill=fill)
    else:
        draw.line(xy_points(pts), fill=fill, width=max(1, round(w)), joint="curve")


def draw_outline(draw: ImageDraw.ImageDraw, pts: np.ndarray, width: float, fill: Any) -> None:
    if width <= 0:
        return
    w = max(1, round(width))
    ring = np.vstack([pts, pts[:2]])  # wrap past the start so the seam gets a round joint
    draw.line(xy_points(ring), fill=fill, width=w, joint="curve")


def _box(pts: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Integer bounding box of a polygon, clipped to the image; None if outside it."""
    x0 = max(0, int(math.floor(pts[:, 0].min())))
    y0 = max(0, int(math.floor(pts[:, 1].min())))
    x1 = min(size[0], int(math.ceil(pts[:, 0].max())) + 1)
    y1 = min(size[1], int(math.ceil(pts[:, 1].max())) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _mask(pts: np.ndarray, box: tuple[int, int, int, int], shift=(0.0, 0.0)) -> Image.Image:
    m = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(m).polygon(xy_points(pts - np.array([box[0] - shift[0], box[1] - shift[1]])), fill=255)
    return m


def _tone_pattern(kind: str, box: tuple[int, int, int, int], period: float, angle: float) -> np.ndarray:
    """Boolean ink of a screentone (dots) or hatching over `box`, aligned to the page grid."""
    ys, xs = np.mgrid[box[1]:box[3], box[0]:box[2]].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    u, v = xs * c + ys * s, -xs * s + ys * c
    if kind in ("dots", "dots_dense"):  # light tone: ~18% ink; dense: ~50%
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        return du * du + dv * dv < ((0.24 if kind == "dots" else 0.40) * period) ** 2
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
            draw.polygon(xy_points(pts), fill=0)
        else:
            draw.polygon(xy_points(pts), fill=255)
            if region.tone != "none" and (box := _box(pts, size)) is not None:
                ink = _tone_pattern(region.tone, box, period, scene.tone_angle)
                ink &= np.asarray(_mask(pts, box)) > 0
                img.paste(0, box, Image.fromarray(ink.astype(np.uint8) * 255))
        for s in region.details:
            _draw_stroke(draw, s, k, 0)
        draw_outline(draw, pts, region.width * k, 0)
    return img


# --------------------------------------------------------------------------- color


def hsv_color(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255


def rgb_tuple(c: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(round(x)) for x in np.clip(c, 0, 255))


_FLAT_MATERIALS = ("shine", "pupil", "eye", "ground")  # no cel shading
_GLOSSY_MATERIALS = ("hair", "object", "accent", "iris")  # get a highlight
_SKIN_SHADE = np.array([0.95, 0.78, 0.74])  # warm, not grey, shadows on skin


@dataclass
class _Palette:
    """One colorist's choices for one picture: shadow tint, light direction, line color."""

    shade_mul: np.ndarray  # multiplied into a base color on the shadow side (tinted, cel style)
    light: np.ndarray  # unit vector towards the light, image coordinates
    line: np.ndarray | None  # None: each region's line is a dark version of its fill


def _make_palette(rng: np.random.Generator) -> _Palette:
    angle = rng.uniform(0, 2 * np.pi)
    line_kind = choose(rng, {"black": 4, "brown": 2.5, "navy": 1, "trace": 2})
    line = {"black": np.array([20.0, 18, 22]), "brown": np.array([70.0, 40, 30]),
            "navy": np.array([30.0, 36, 80]), "trace": None}[line_kind]
    shade = np.array([0.68, 0.66, 0.8]) if rng.random() < 0.6 else np.full(3, 0.7)  # often bluish
    return _Palette(shade, np.array([math.cos(angle), math.sin(angle)]), line)


# kind -> how often: Danbooru's white_background is far more common than gradient_background
# (roughly 0.9M against 0.15M posts in 2020), simple_background covers both flat kinds
BACKGROUNDS = {"simple": 3.0, "gradient": 1.5, "white": 4.5}


def pick_background(rng: np.random.Generator) -> str:
    return choose(rng, BACKGROUNDS)


def _background(rng: np.random.Generator, size: tuple[int, int], kind: str) -> Image.Image:
    """A colored backdrop: a flat pastel, a two-color gradient (mostly sky), or white."""
    if kind not in BACKGROUNDS:
        raise ValueError(f"background {kind!r}: allowed values are {', '.join(BACKGROUNDS)}")
    if kind == "white":
        return Image.new("RGB", size, (255, 255, 255))
    if kind == "simple":
        return Image.new("RGB", size, rgb_tuple(jittered(rng, SIMPLE_BACKGROUND[pick(rng, SIMPLE_BACKGROUND)][0], 6)))
    top, bottom = GRADIENT_BACKGROUND[pick(rng, GRADIENT_BACKGROUND)][0]
    c0, c1 = jittered(rng, top, 8), jittered(rng, bottom, 6)
    # a smooth ramp computed small and upsampled: cheap, and bilinear keeps it smooth
    sw, sh = max(2, size[0] // 16), max(2, size[1] // 16)
    ang = np.pi / 2 + rng.normal(0, 0.3)  # top to bottom, give or take
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
        base = np.asarray(region.color, dtype=np.float64)
        fill = rgb_tuple(base)
        draw.polygon(xy_points(pts), fill=fill)
        box = _box(pts, size)
        extent = float(np.ptp(pts, axis=0).max())
        if box is not None and region.material not in _FLAT_MATERIALS and extent >= 6:
            region_mask = _mask(pts, box)
            # cel shading: the region minus itself shifted towards the light = the far rim
            skin = region.material == "skin"
            shift = pal.light * extent * (rng.uniform(0.05, 0.09) if skin else rng.uniform(0.08, 0.16))
            shadow = ImageChops.subtract(region_mask, _mask(pts, box, shift))
            img.paste(rgb_tuple(base * (_SKIN_SHADE if skin else pal.shade_mul)), box, shadow)
            if region.material in _GLOSSY_MATERIALS and rng.random() < 0.8:  # a shine on the lit side
                centre = pts.mean(axis=0) + pal.light * extent * 0.28
                hl = ellipse(centre[0], centre[1], extent * 0.16, extent * 0.08,
                              math.atan2(pal.light[1], pal.light[0]) + np.pi / 2, 16)
                hl_mask = ImageChops.multiply(region_mask, _mask(hl, box))
                img.paste(rgb_tuple(base + (255 - base) * 0.55), box, hl_mask)
        line = rgb_tuple(pal.line if pal.line is not None else base * 0.4)
        for s in region.details:
            _draw_stroke(draw, s, k, line)
        draw_outline(draw, pts, region.width * k, line)
    return img


def _kind_mean(kind: str) -> np.ndarray:
    if kind == "white":
        return np.full(3, 255.0)
    table = SIMPLE_BACKGROUND if kind == "simple" else GRADIENT_BACKGROUND
    cols = np.array([v[0] if kind == "simple" else np.mean(v[0], axis=0) for v in table.values()], dtype=np.float64)
    w = np.array([v[1] for v in table.values()], dtype=np.float64)
    return (cols * w[:, None]).sum(0) / w.sum()


def background_mean() -> np.ndarray:
    """The mean backdrop color over all kinds (what the oracle paints behind the scene: a
    scan leaves every backdrop white, so nothing in it tells the kinds apart)."""
    w = np.array(list(BACKGROUNDS.values()), dtype=np.float64)
    return sum(_kind_mean(k) * wk for k, wk in zip(BACKGROUNDS, w)) / w.sum()


def render_oracle(scene: Scene, scan: Image.Image | None = None, grey: bool = False) -> Image.Image:
    """The benchmark's ceiling: each region flat in its material's mean color at its ink level
    (`palettes.oracle_fill`), the backdrop the mean backdrop, the true scan multiplied over.

    What a colorizer that recognises materials and reads the scan's ink, but knows no
    character, would paint. grey=True keeps only each fill's lightness: the same picture
    with no color, the floor a colorizer must beat.
    """
    scan = scan or render_scan(scene)
    size = scan.size
    k = size[0] / scene.width
    img = Image.new("RGB", size, rgb_tuple(background_mean()))
    draw = ImageDraw.Draw(img)
    for region in scene.regions:
        draw.polygon(xy_points(region.outline * k), fill=rgb_tuple(oracle_fill(region.material, region.tone)))
    if grey:
        img = img.convert("L").convert("RGB")
    return ImageChops.multiply(img, scan.convert("RGB"))


def render_materials(scene: Scene, size: tuple[int, int] | None = None) -> Image.Image:
    """Each pixel's material code ('L', `pipeline.data.materials.CODE`): the regions drawn
    in the scan's order (a later region covers an earlier one), the backdrop behind them.
    Drawn without antialiasing, so every pixel holds exactly one code."""
    size = size or (scene.width, scene.height)
    k = size[0] / scene.width
    img = Image.new("L", size, CODE["backdrop"])
    draw = ImageDraw.Draw(img)
    for region in scene.regions:
        draw.polygon(xy_points(region.outline * k), fill=CODE[region.material])
    return img


def pad_to_square(img: Image.Image, canvas: int, fill: int = PAD_GREY) -> Image.Image:
    """Centre img on a canvas x canvas square of `fill` (white by default, as the 512px
    subset pads)."""
    assert img.width <= canvas and img.height <= canvas
    fill = fill if img.mode == "L" else (fill,) * 3
    out = Image.new(img.mode, (canvas, canvas), fill)
    out.paste(img, ((canvas - img.width) // 2, (canvas - img.height) // 2))
    return out
