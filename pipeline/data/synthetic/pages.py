"""Whole synthetic manga pages: panels of scenes from the series' cast, as a scan and as its
colored truth (`render_page`).

A page is what a colorist holds: 1000-2000 px tall, lines a few pixels wide, several
panels. Each panel is one scene drawn at the panel's size with the pen of a
PAGE_PEN-px image, so its lines and screentone have the widths the networks trained on
(2-5 px outlines, as in the 256-px training images) whatever the panel's size. Used by
`onepunch synthetic-page` (a page that was never in training, for the README's
page-resolution picture and a page-level ΔE) and by the benchmarks.

`write_series` draws a whole other series (`onepunch synthetic-series`): its own small
cast in every figure, as colored pages, black-and-white pages and held-out (scan, color)
pairs, so fine-tuning on one's own series can be measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.data.synthetic.palettes import make_cast
from pipeline.data.synthetic.scene_images import render_color, render_scan
from pipeline.data.synthetic.scenes import CAST_SHARE, make_scene

PAGE_PEN = 300  # lines as in a 300-px image: 2.4-5.7 px outlines


def panel_boxes(rng: np.random.Generator, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """A manga panel layout: 3-4 rows, each split into 1-2 panels, with white gutters."""
    gutter = max(4, round(0.012 * max(width, height)))
    margin = 2 * gutter
    rows = int(rng.integers(3, 5))
    cuts = np.sort(rng.uniform(0.8, 1.2, rows))
    heights = cuts / cuts.sum() * (height - 2 * margin - (rows - 1) * gutter)
    boxes, y = [], float(margin)
    for h in heights:
        split = rng.random() < 0.65
        xs = [margin, width - margin]
        if split:
            mid = margin + (width - 2 * margin) * rng.uniform(0.35, 0.65)
            xs = [margin, mid - gutter / 2, mid + gutter / 2, width - margin]
        for x0, x1 in zip(xs[0::2], xs[1::2]):
            boxes.append((round(x0), round(y), round(x1), round(y + h)))
        y += h + gutter
    return boxes


def render_page(seed: int, size: tuple[int, int] = (1024, 1448), cast_seed: int = 2020,
                cast_size: int = 8, cast_share: float = CAST_SHARE) -> tuple[Image.Image, Image.Image]:
    """(scan 'L', colored truth 'RGB') of one page of panels, deterministic in seed.

    Figures come from the cast of `cast_seed` (the default dataset's series) with chance
    `cast_share`, else from the priors; panel borders are black in both.
    """
    rng = np.random.default_rng([int(seed) % 2**63, 91])
    width, height = size
    cast = make_cast(cast_seed, cast_size) if cast_size else ()
    scan = Image.new("L", size, 255)
    color = Image.new("RGB", size, (255, 255, 255))
    border = max(2, round(0.003 * max(size)))
    for box in panel_boxes(rng, width, height):
        w, h = box[2] - box[0], box[3] - box[1]
        scene = make_scene(rng, w, h, cast, pen_scale=PAGE_PEN * max(size) / 1448, cast_share=cast_share)
        scan.paste(render_scan(scene), box[:2])
        color.paste(render_color(scene, None, rng, str(rng.choice(["white", "simple", "gradient"],
                                                                   p=[0.5, 0.3, 0.2]))), box[:2])
        for img, ink in ((scan, 0), (color, (0, 0, 0))):
            ImageDraw.Draw(img).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=ink, width=border)
    return scan, color


SERIES_SEEDS = {"color": 10_000, "lineart": 20_000, "heldout": 30_000}  # page seeds, + cast seed * 100_000


def write_series(out: Path, heldout: Path | None, pages: int = 20, lineart: int = 20, heldout_pages: int = 8,
                 cast_seed: int = 7, cast_size: int = 4, size: tuple[int, int] = (1024, 1448),
                 progress: bool = True) -> dict[str, int]:
    """A synthetic series, every figure one of its `cast_size` characters (fixed colors):

        OUT/color/page_001.png ...       `pages` colored pages (what a series' covers and
        OUT/lineart/page_001.png ...     color spreads give) and `lineart` other pages in
                                         black and white: a `folder` source
        HELDOUT/scan|color/page_001.png  `heldout_pages` other pages as (scan, color) pairs,
                                         for `onepunch evaluate` before and after fine-tuning

    The three sets are different pages. Each file is written atomically.
    """
    from tqdm import tqdm

    from pipeline.files import atomic_path

    jobs = [(out / "color" / f"page_{k + 1:03d}.png", None, "color", k) for k in range(pages)]
    jobs += [(out / "lineart" / f"page_{k + 1:03d}.png", None, "lineart", k) for k in range(lineart)]
    if heldout is not None:
        jobs += [(heldout / "scan" / f"page_{k + 1:03d}.png", heldout / "color" / f"page_{k + 1:03d}.png",
                  "heldout", k) for k in range(heldout_pages)]
    for first, second, kind, k in tqdm(jobs, desc="series pages", unit="page", disable=not progress):
        scan, color = render_page(cast_seed * 100_000 + SERIES_SEEDS[kind] + k, size, cast_seed, cast_size,
                                  cast_share=1.0)
        for path, img in ((first, color if kind == "color" else scan), (second, color)):
            if path is None:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                img.save(tmp, format="PNG")
    return {"color": pages, "lineart": lineart, "heldout": heldout_pages if heldout is not None else 0}
