"""Benchmark: the ink separation (`pipeline.colorist.ink.separate`) on real pages.

For every page in a folder: seconds of `separate` with the shipped ridge scales and with
σ = (1.0, 1.5) as written (scikit-image then filters σ = 1 with its 100-σ kernel: see
RIDGE_SIGMAS), alternating the two `--repeats` times (medians), and whether the two give
the same line, fill, tone, ridge and shading, pixel for pixel. The ratio is measured in one
run, on one machine.

    python benchmarks/bench_separate.py ../shared/realpages/pages [--repeats 3]

Prints a line per page and the totals; writes `<out>/separate.json` (git-ignored folder).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAIN_SIGMAS = (1.0, 1.5)


def timed(scan: np.ndarray, sigmas: tuple[float, float]):
    import pipeline.colorist.ink as ink

    shipped = ink.RIDGE_SIGMAS
    ink.RIDGE_SIGMAS = sigmas
    try:
        start = time.perf_counter()
        sep = ink.separate(scan)
        return time.perf_counter() - start, sep
    finally:
        ink.RIDGE_SIGMAS = shipped


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("line", "fill", "tone", "ridge", "shading"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pages", type=Path, help="folder of black-and-white pages (PNG/JPEG)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each setting per page (alternating)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/separate")
    args = ap.parse_args()
    if not args.pages.is_dir():
        sys.exit(f"bench_separate: {args.pages} is not a folder of pages")

    from pipeline.colorist.ink import RIDGE_SIGMAS
    from pipeline.folders import IMAGE_SUFFIXES
    from pipeline.imaging import decode_image

    paths = sorted(p for p in args.pages.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        sys.exit(f"bench_separate: no PNG/JPEG pages in {args.pages}")
    timed(np.full((64, 64), 255, np.uint8), RIDGE_SIGMAS)  # imports outside the timings
    rows = []
    for path in paths:
        scan = np.asarray(decode_image(path, max_pixels=100_000_000, name=str(path)).convert("L"))
        shipped_s, plain_s, identical = [], [], True
        for _ in range(args.repeats):
            t_plain, plain = timed(scan, PLAIN_SIGMAS)
            t_shipped, shipped = timed(scan, RIDGE_SIGMAS)
            plain_s.append(t_plain)
            shipped_s.append(t_shipped)
            identical &= same(plain, shipped)
        row = {"page": path.name, "megapixels": round(scan.size / 1e6, 2),
               "tone_share": round(float(shipped.tone.mean()), 3),
               "plain_s": round(statistics.median(plain_s), 3), "shipped_s": round(statistics.median(shipped_s), 3),
               "identical": bool(identical)}
        rows.append(row)
        print(f"{path.name:55s} {row['megapixels']:5.2f} MP  tone {100 * row['tone_share']:4.1f}%  "
              f"{row['plain_s']:6.2f} s -> {row['shipped_s']:6.2f} s  {'same' if identical else 'DIFFERENT'}",
              flush=True)
    total_plain = sum(r["plain_s"] for r in rows)
    total_shipped = sum(r["shipped_s"] for r in rows)
    summary = {"pages": len(rows), "plain_s": round(total_plain, 2), "shipped_s": round(total_shipped, 2),
               "speedup": round(total_plain / total_shipped, 2), "all_identical": all(r["identical"] for r in rows),
               "ridge_sigmas": list(RIDGE_SIGMAS), "repeats": args.repeats,
               "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}"}
    print(json.dumps(summary))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "separate.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
