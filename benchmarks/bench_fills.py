"""Benchmark: a dot on a solid black fill, on real pages (no truth needed).

For every page in a folder, the N largest black fills (`pipeline.colorist.ink.separate`)
each get one dot of a strong color at their most interior pixel; the page is colorized
with them through the same path as `onepunch colorize --hints` and every fill is measured:

- `on_hue`: the share of the fill's pixels whose color is within ΔE2000 15 of the dot's
  color at that pixel's own lightness (the dot's hue and chroma, not its lightness: a dark
  shade of it counts, black does not);
- `lightness`: their mean CIELAB L*;
- `spill`: the pixels of the dot's region that are not that fill (nor ink), as a share of
  the fill's pixels: what the dot colors beyond the fill (toned hair drawn against a night
  sky with no outline, say). `--auto none` paints exactly the region.

    python benchmarks/bench_fills.py ../shared/realpages/pages [--fills 3] [--auto none|network]

Writes `<out>/fills.json` and crops around each fill (`<out>/PAGE_fillK.png`: before |
after) to look at; the output folder is git-ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOT_COLORS = ((200, 40, 40), (40, 80, 200), (40, 160, 60), (150, 60, 170), (230, 150, 30))
ON_HUE_DELTA_E = 15.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pages", type=Path, help="folder of black-and-white pages (PNG/JPEG)")
    ap.add_argument("--fills", type=int, default=3, help="fills dotted per page")
    ap.add_argument("--auto", default="none", help="network or none (see onepunch colorize --auto)")
    ap.add_argument("--model", type=Path, default=ROOT / "models/colorizer.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/fills")
    args = ap.parse_args()

    from PIL import Image
    from scipy import ndimage

    from pipeline.colorist.hint_files import hints_from_points
    from pipeline.colorist.ink import compose, separate
    from pipeline.colorist.page import colorize_layers, load_networks
    from pipeline.colorist.regions import regions
    from pipeline.evaluation.metrics import delta_e_map, lab
    from pipeline.folders import IMAGE_SUFFIXES
    from pipeline.imaging import decode_image

    nets = load_networks(args.model if args.auto == "network" else None, None, "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(p for p in args.pages.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        page = decode_image(path, max_pixels=100_000_000, name=str(path)).convert("L")
        scan = np.asarray(page)
        sep = separate(scan)
        labels, n = regions(scan, sep)
        fill_labels = labels * sep.fill
        sizes = np.bincount(fill_labels.ravel(), minlength=n + 1)
        sizes[0] = 0
        chosen = [int(k) for k in np.argsort(-sizes)[: args.fills] if sizes[k] >= 200]
        if not chosen:
            print(f"{path.name}: no black fill of 200 px or more")
            continue
        points, boxes = [], ndimage.find_objects(labels)
        for j, k in enumerate(chosen):
            inside = labels[boxes[k - 1]] == k
            depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
            y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
            points.append({"x": int(x + boxes[k - 1][1].start), "y": int(y + boxes[k - 1][0].start),
                           "color": "#{:02x}{:02x}{:02x}".format(*DOT_COLORS[j % len(DOT_COLORS)])})
        hints = hints_from_points(points, page.size, "fill dots")
        colors, ink = colorize_layers(nets.colorizer, None, page.convert("RGB"), None, nets.device, "scan", "fp32",
                                      hints, args.auto)
        out = np.asarray(compose(colors, ink, "multiply"))
        out_lab = lab(out)
        for j, k in enumerate(chosen):
            where = (labels == k) & sep.fill
            asked = lab(np.array(DOT_COLORS[j % len(DOT_COLORS)], np.uint8)[None, None])[0, 0]
            got = out_lab[where]
            reference = np.column_stack([got[:, 0], np.broadcast_to(asked[1:], (len(got), 2))])
            on_hue = float((delta_e_map(got, reference) <= ON_HUE_DELTA_E).mean())
            spill = float(((labels == k) & ~sep.fill & ~sep.line).sum() / where.sum())
            rows.append({"page": path.stem, "fill": j, "pixels": int(where.sum()), "on_hue": round(on_hue, 4),
                         "lightness": round(float(got[:, 0].mean()), 2), "spill": round(spill, 4)})
            print(f"{path.stem:50s} fill {j} {int(where.sum()):7d} px  on hue {100 * on_hue:5.1f}%  "
                  f"L* {got[:, 0].mean():5.1f}  spill {100 * spill:6.1f}%", flush=True)
            box = boxes[k - 1]
            crop = (slice(max(0, box[0].start - 20), box[0].stop + 20), slice(max(0, box[1].start - 20), box[1].stop + 20))
            before = np.repeat(scan[crop][..., None], 3, -1)
            Image.fromarray(np.concatenate([before, out[crop]], 1)).save(args.out / f"{path.stem}_fill{j}.png")
    summary = {"fills": len(rows), "on_hue_mean": round(float(np.mean([r["on_hue"] for r in rows])), 4) if rows else None,
               "lightness_mean": round(float(np.mean([r["lightness"] for r in rows])), 2) if rows else None,
               "spill_median": round(float(np.median([r["spill"] for r in rows])), 4) if rows else None,
               "fills_spilling_over_10pct": sum(r["spill"] > 0.1 for r in rows)}
    print(json.dumps(summary))
    (args.out / "fills.json").write_text(json.dumps({"rows": rows, "summary": summary, "auto": args.auto}, indent=1) + "\n")


if __name__ == "__main__":
    main()
