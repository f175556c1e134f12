"""Distractor images of the synthetic mini-Danbooru2020: comics, 4koma, photos, spot color, corrupt files.

They exercise the select stage's filters. Used by the `source` stage (kind synthetic, via
`generate_dataset`) and by `onepunch synthetic`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from pipeline.data.synthetic.scene_images import (
    draw_outline,
    hsv_color,
    render_color,
    render_scan,
    rgb_tuple,
    xy_points,
)
from pipeline.data.synthetic.scenes import Scene, ellipse, make_scene


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
    draw.polygon(xy_points(ellipse(cx, cy, rx, ry)), fill=255 if draw.mode == "L" else (255,) * 3)
    ink = 0 if draw.mode == "L" else (0, 0, 0)
    draw_outline(draw, ellipse(cx, cy, rx, ry), line, ink)
    for k in range(int(rng.integers(2, 4))):  # scribbled "text"
        y = cy - 0.45 * ry + k * 0.35 * ry
        draw.line([(cx - 0.6 * rx, y), (cx + rng.uniform(0.1, 0.6) * rx, y)], fill=ink, width=max(1, line // 2))


def render_comic(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    page = render_scan(make_scene(rng, *size))
    line = max(1, round(max(size) * 0.008))
    page = _frame_panels(page, _panel_rects(rng, *size, gutter=max(2, max(size) // 64)), line, 0, 255)
    draw = ImageDraw.Draw(page)
    for _ in range(int(rng.integers(1, 3))):
        _speech_bubble(rng, draw, *size, line)
    return page


def render_4koma(rng: np.random.Generator, size: tuple[int, int], colored: bool) -> Image.Image:
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


def render_photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
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
    ImageDraw.Draw(mask).polygon(xy_points(biggest.outline * k), fill=255)
    return mask


def render_spot_color(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Black and white except one region in color."""
    scene = make_scene(rng, *size)
    scan = render_scan(scene).convert("RGB")
    red = Image.new("RGB", size, rgb_tuple(hsv_color(rng.uniform(-0.03, 0.03) % 1, 0.85, 0.85)))
    tinted = ImageChops.multiply(scan, red)  # keeps the ink lines dark inside the colored region
    return Image.composite(tinted, scan, _largest_region_mask(scene, size))


def render_partially_monochrome(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A colored illustration with one side left in greyscale."""
    color = render_color(make_scene(rng, *size), None, rng)
    grey = color.convert("L").convert("RGB")
    mask = Image.new("L", size, 0)
    x = int(size[0] * rng.uniform(0.35, 0.65))
    ImageDraw.Draw(mask).polygon([(x, 0), (size[0], 0), (size[0], size[1]), (x - size[1] // 4, size[1])], fill=255)
    return Image.composite(grey, color, mask)


CORRUPTIONS = ("truncated", "garbage", "html")


def corrupt(rng: np.random.Generator, jpeg: bytes, how: str) -> bytes:
    """Broken file contents of the kinds mirrors deliver."""
    if how == "truncated":  # a download cut off mid-stream
        return jpeg[: len(jpeg) * 2 // 5]
    if how == "garbage":
        return rng.bytes(int(rng.integers(2_000, 20_000)))
    assert how == "html", how
    return b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n" \
           b"<body><h1>503 Service Unavailable</h1></body></html>\n"
