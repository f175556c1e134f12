"""Benchmark: a colorist's dots on real art (`pipeline.evaluation.dots`), through the same
path as `onepunch colorize --hints`.

For every pair in a folder (`NAME_bw.png` line art, `NAME_color.png` its coloring, same
size) and every dot count N, it places the protocol's N dots, colorizes the line art with
them, and reports ΔE2000, gross errors, tinted paper, obedience and seconds per megapixel
(the whole colorization, and the hint propagation alone). `--synthetic` runs the same
protocol on the synthetic holdout (its true scans and colors, from `data/prepared`).

    python benchmarks/bench_real_hints.py ../shared/realpages/pairs [--dots 0 5 10 20]
        [--auto network|none] [--out benchmarks/results/real_hints]

Writes `<out>/hints.json` and, per pair and count, `<out>/NAME_nN.png` (line art with the
dots | colorization | coloring) to look at. Real art stays out of the repository: the
output folder is git-ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_PIXELS = 100_000_000
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def real_pairs(folder: Path):
    for bw in sorted(folder.glob("*_bw.png")):
        color = bw.with_name(bw.name.replace("_bw.png", "_color.png"))
        if color.is_file():
            yield bw.name[: -len("_bw.png")], bw, color


def synthetic_pairs(prepared: Path, n: int):
    from pipeline.data.shards import holdout_with_truth

    color, truth = holdout_with_truth(prepared)
    if truth is None:
        raise SystemExit(f"{prepared}: no true scans (run `dvc repro images` on the synthetic source)")
    for i in np.linspace(0, len(color) - 1, min(n, len(color))).astype(int):
        # the picture without the white padding of the 512px subset (no line closes it off: a
        # dot in a sky would "flood" padding no colorist would ever see)
        rows = np.flatnonzero((color[i] != 255).any(axis=(1, 2)))
        cols = np.flatnonzero((color[i] != 255).any(axis=(0, 2)))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        yield f"holdout{i:03d}", np.ascontiguousarray(truth[i, ..., 0][box]), np.ascontiguousarray(color[i][box])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", type=Path, nargs="?", help="folder of NAME_bw.png / NAME_color.png pairs")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="instead: N images of the synthetic holdout (data/prepared)")
    ap.add_argument("--dots", type=int, nargs="+", default=[0, 5, 10, 20])
    ap.add_argument("--model", type=Path, default=ROOT / "models/colorizer.pt")
    ap.add_argument("--auto", default="network", help="undotted areas: network (automatic colors) or none")
    ap.add_argument("--tone", default="descreen", help="screentone: descreen or keep")
    ap.add_argument("--method", default="regions", choices=["regions", "closed", "geodesic", "graphcut"],
                    help="hint propagation: regions (pipeline.colorist.regions, the product) or one it was "
                         "measured against (benchmarks/propagation_methods.py)")
    ap.add_argument("--raw-colors", action="store_true",
                    help="the network's colors as they come, not stopped at the outlines "
                         "(pipeline.colorist.regions.inside_edges), to compare")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/real_hints")
    args = ap.parse_args()
    if (args.pairs is None) == (not args.synthetic):
        ap.error("give a folder of pairs, or --synthetic N")

    from PIL import Image

    import pipeline.colorist.regions as product
    from pipeline.colorist.hint_files import hints_from_points
    from pipeline.colorist.ink import compose
    from pipeline.colorist.page import colorize_layers, load_networks
    from pipeline.evaluation.dots import (
        as_points,
        colorist_dots,
        hint_measures,
        like_color_areas,
    )
    from pipeline.imaging import decode_image

    propagate = product.regions
    current: dict = {}
    if args.raw_colors:
        product.inside_edges = lambda colors, labels, reach=product.HALO_REACH: colors
    if args.method != "regions":
        from propagation_methods import METHODS

        method = METHODS[args.method]

        def propagate(scan, sep=None):
            labels = method(scan, current["ids"])
            return labels, int(labels.max())

        product.regions = propagate  # what colorize_layers spreads hints over
    nets = load_networks(args.model if args.auto == "network" else None, None, args.device)
    if args.synthetic:
        items = list(synthetic_pairs(ROOT / "data/prepared", args.synthetic))
    else:
        items = [(name, np.asarray(decode_image(bw, max_pixels=MAX_PIXELS, name=str(bw)).convert("L")),
                  np.asarray(decode_image(col, max_pixels=MAX_PIXELS, name=str(col)).convert("RGB"))) for name, bw, col in real_pairs(args.pairs)]
    if not items:
        raise SystemExit(f"{args.pairs}: no NAME_bw.png / NAME_color.png pairs")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, line_art, coloring in items:
        page = Image.fromarray(line_art).convert("RGB")
        areas, _ = like_color_areas(line_art, coloring)
        megapixels = line_art.size / 1e6
        for n in args.dots:
            dots = colorist_dots(line_art, coloring, n)
            hints = hints_from_points(as_points(dots), page.size, "dots") if dots else None
            current["ids"] = hints[0] if hints else np.full(line_art.shape, -1)
            t0 = time.perf_counter()
            propagate(line_art)
            propagation = time.perf_counter() - t0
            t0 = time.perf_counter()
            colors, ink = colorize_layers(nets.colorizer, None, page, None, nets.device, "scan", "fp32", hints,
                                          args.auto)
            result = np.asarray(compose(colors, ink, "multiply", args.tone))
            seconds = time.perf_counter() - t0
            m = hint_measures(result, coloring, line_art, dots, areas)
            rows.append({"pair": name, "dots": len(dots), "asked": n, **{k: round(v, 4) for k, v in m.items()},
                         "seconds_per_mp": round(seconds / megapixels, 3),
                         "propagation_s_per_mp": round(propagation / megapixels, 3)})
            print(f"{name:24s} {n:3d} dots  ΔE {m['delta_e']:6.2f}  gross {100 * m['gross_errors']:5.1f}%  "
                  f"tinted {100 * m['tinted_paper']:5.1f}%  "
                  f"obey {m.get('obedience_delta_e', float('nan')):6.2f}  {seconds / megapixels:5.2f} s/MP",
                  flush=True)
            shown = np.repeat(line_art[..., None], 3, -1).copy()
            for d in dots:
                shown[max(0, d.y - 6):d.y + 7, max(0, d.x - 6):d.x + 7] = 0
                shown[max(0, d.y - 4):d.y + 5, max(0, d.x - 4):d.x + 5] = d.color
            Image.fromarray(np.concatenate([shown, result, coloring], 1)).save(args.out / f"{name}_n{n}.png")
    summary = {}
    for n in args.dots:
        these = [r for r in rows if r["asked"] == n]
        summary[f"n{n}"] = {k: round(float(np.mean([r[k] for r in these if k in r])), 4)
                            for k in ("delta_e", "gross_errors", "tinted_paper", "obedience_delta_e", "seconds_per_mp",
                                      "propagation_s_per_mp")
                            if any(k in r for r in these)}
    if 0 in args.dots and 10 in args.dots:  # pair by pair, then averaged
        ratios = [r10["delta_e"] / r0["delta_e"] for r0 in rows if r0["asked"] == 0
                  for r10 in rows if r10["asked"] == 10 and r10["pair"] == r0["pair"]]
        summary["delta_e_10_over_0"] = round(float(np.mean(ratios)), 4)
    print(json.dumps(summary, indent=1))
    (args.out / "hints.json").write_text(json.dumps({"rows": rows, "summary": summary, "auto": args.auto,
                                                     "tone": args.tone, "method": args.method,
                                                     "model": str(args.model)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
