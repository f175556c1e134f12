"""Per-core throughput of `pipeline.imaging.prepare_image` against a naive Pillow loop.

Generates N drawing-like 512x512 JPEGs (filled shapes with black outlines and strokes,
padded with white like Danbooru's 512px set, quality 90), or reads them from --input,
then times in this one process, pinned to one CPU core, so the figures are per core:

  naive: Image.open -> convert("RGB") -> resize((S, S), LANCZOS) -> numpy array
  ours:  prepare_image(size=S, fit="pad", channels=3)

Both read the same in-memory bytes (file I/O is not timed). The methods are timed
interleaved, 25 images at a time, --repeats times; each chunk counts with its fastest
timing, so load from other processes on a shared host spoils a chunk, not the figure.
It also reports the mean absolute difference between the two outputs (0..255 scale),
so what the speed costs in pixels is on record: where the scale ratio is a power of two
ours is JPEG DCT scaling (an area average) instead of LANCZOS. Results go to --json.

    python benchmarks/bench_images.py                # 300 images, sizes 256 and 64
    python benchmarks/bench_images.py --n 50 --size 128
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
from pipeline.imaging import prepare_image

MAX_PIXELS = 100_000_000
SIDE = 512
PALETTE = [(233, 87, 94), (250, 200, 120), (120, 180, 230), (150, 210, 140), (200, 150, 220),
           (250, 230, 210), (90, 90, 160), (240, 240, 180)]


def make_drawing(rng: np.random.Generator, side: int = SIDE) -> Image.Image:
    """A cartoon-like picture: coloured filled shapes with dark outlines, loose strokes and
    hatching, on a light background, letterboxed onto a white square."""
    aspect = rng.uniform(0.6, 1.0)
    w, h = (side, round(side * aspect)) if rng.random() < 0.5 else (round(side * aspect), side)
    bg = tuple(int(c) for c in rng.integers(225, 256, 3))
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(8, 20)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(20, w // 2), y0 + rng.integers(20, h // 2)
        fill = PALETTE[rng.integers(len(PALETTE))]
        width = int(rng.integers(1, 5))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill, outline=(20, 20, 20), width=width)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill, outline=(20, 20, 20), width=width)
        else:
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(rng.integers(3, 7))]
            draw.polygon(pts, fill=fill, outline=(20, 20, 20), width=width)
    for _ in range(rng.integers(5, 15)):  # strokes: hair, folds
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(rng.integers(2, 5))]
        draw.line(pts, fill=(0, 0, 0), width=int(rng.integers(1, 4)))
    x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
    for k in range(0, 60, 4):  # a patch of hatching: fine detail the resize must keep
        draw.line((x0 + k, y0, x0 + k + 20, y0 + 60), fill=(40, 40, 40), width=1)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(img, ((side - w) // 2, (side - h) // 2))
    return square


def generate(folder: Path, n: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.jpg"
        make_drawing(rng).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def naive(data: bytes, size: int) -> np.ndarray:
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def ours(data: bytes, size: int) -> np.ndarray:
    return prepare_image(data, size=size, fit="pad", channels=3, max_pixels=MAX_PIXELS)


def best_rates(fns, blobs: list[bytes], size: int, repeats: int, chunk: int = 25) -> dict[str, float]:
    """Images per second of each fn, robust to a shared, noisy host: the images are timed
    in chunks, methods interleaved chunk by chunk, and each chunk counts with its fastest
    of `repeats` timings, so a burst of load elsewhere spoils a chunk, not the figure."""
    chunks = [blobs[i : i + chunk] for i in range(0, len(blobs), chunk)]
    best = {fn.__name__: [float("inf")] * len(chunks) for fn in fns}
    for _ in range(repeats):
        for k, part in enumerate(chunks):
            for fn in fns:
                t0 = time.perf_counter()
                for data in part:
                    fn(data, size)
                best[fn.__name__][k] = min(best[fn.__name__][k], time.perf_counter() - t0)
    return {name: len(blobs) / sum(times) for name, times in best.items()}


def pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this OS)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300,
                    help="images to generate, or the most to read from --input (default: %(default)s)")
    ap.add_argument("--size", type=int, nargs="+", default=[256, 64],
                    help="output side(s) in pixels (default: %(default)s)")
    ap.add_argument("--input", type=Path,
                    help="folder of .jpg/.jpeg/.png files to use instead of generated drawings "
                         "(naive stretches non-square ones; ours pads)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timings of each chunk of 25 images per method; the fastest counts (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated drawings (default: %(default)s)")
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "images.json",
                    help="results file to write (default: benchmarks/results/images.json)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.input:
            suffixes = (".jpg", ".jpeg", ".png")
            paths = sorted(p for p in args.input.iterdir() if p.suffix.lower() in suffixes)[: args.n]
            if not paths:
                ap.error(f"no .jpg/.jpeg/.png files in {args.input}")
        else:
            paths = generate(Path(tmp), args.n, args.seed)
        blobs = [p.read_bytes() for p in paths]
    source = f"{args.input}" if args.input else f"generated {SIDE}x{SIDE} drawings, JPEG q90"
    pinning = pin_to_one_core()
    print(f"{len(blobs)} images ({source}), {pinning}")

    results = []
    for size in args.size:
        for fn in (naive, ours):  # warm-up: lazy imports, plugin registry
            fn(blobs[0], size)
        best = best_rates((naive, ours), blobs, size, args.repeats)
        diff = np.mean([np.abs(naive(b, size).astype(np.int16) - ours(b, size)).mean() for b in blobs])
        row = {"size": size, "naive_images_per_s": round(best["naive"], 1),
               "ours_images_per_s": round(best["ours"], 1), "speedup": round(best["ours"] / best["naive"], 2),
               "mean_abs_diff_vs_naive": round(float(diff), 3)}
        results.append(row)
        print(f"size {size:4d}: naive {row['naive_images_per_s']:7.1f} img/s   "
              f"ours {row['ours_images_per_s']:7.1f} img/s   speedup {row['speedup']:.2f}x   "
              f"mean |ours - naive| {row['mean_abs_diff_vs_naive']:.2f}/255")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"n_images": len(blobs), "source": source, "per_core": pinning, "repeats": args.repeats,
              "python": platform.python_version(), "pillow": Image.__version__, "numpy": np.__version__,
              "results": results}
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
