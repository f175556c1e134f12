"""The fine-tuning measurement of the README's "Your own series": before/after figures and
pictures from `onepunch evaluate` runs on held-out pages of a synthetic series.

Inputs (what the README's walk produces; one `after` per seed, each a DVC experiment):

    --before before.json              `onepunch evaluate HELDOUT --model models/init/colorizer.pt`
    --after after0.json after1.json   the same with each seed's fine-tuned models/colorizer.pt
    --heldout HELDOUT --released R.pt --tuned T.pt   for the picture (one held-out page)
    --after-scan-tuned s0.json s1.json ...  optional: the same seeds with the scan generator
                                      fine-tuned too (`cyclegan.steps` > 0), compared seed by seed

Writes docs/series.json (per-seed figures, mean ± std over seeds, the after/before ratio
of each seed) and docs/series_before_after.png (scan | released | fine-tuned | truth, the
page reduced to half) plus docs/series_detail.png (a 1:1 crop of the same), and prints a
table.

    python tools/series_report.py --before b.json --after a0.json a1.json a2.json \\
        --heldout HELDOUT --released models/init/colorizer.pt --tuned models/colorizer.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MEASURES = ("colorized_delta_e", "colorized_color_accuracy", "colorized_psnr", "colorized_colorfulness",
            "colorized_line_fidelity")


def figures(before: Path, afters: list[Path]) -> dict:
    b = json.loads(before.read_text())["metrics"]
    runs = [json.loads(p.read_text())["metrics"] for p in afters]
    out = {"pages": json.loads(before.read_text())["pairs"], "truth_colorfulness": b["truth_colorfulness"]["mean"],
           "before": {m: b[m]["mean"] for m in MEASURES}, "after_per_seed": [], "after": {}, "ratio_delta_e": {}}
    for r in runs:
        out["after_per_seed"].append({m: r[m]["mean"] for m in MEASURES})
    for m in MEASURES:
        vals = np.array([s[m] for s in out["after_per_seed"]])
        out["after"][m] = {"mean": round(float(vals.mean()), 4), "std": round(float(vals.std(ddof=1)), 4)
                           if len(vals) > 1 else 0.0}
    ratios = np.array([s["colorized_delta_e"] / out["before"]["colorized_delta_e"] for s in out["after_per_seed"]])
    out["ratio_delta_e"] = {"per_seed": [round(float(r), 3) for r in ratios], "mean": round(float(ratios.mean()), 3),
                            "max": round(float(ratios.max()), 3)}
    return out


def compare_settings(base: dict, other: dict) -> dict:
    """Seed-by-seed ΔE margin of a second setting over the first (positive: the second is
    better), judged as the seed table judges a claim (`seed_table.verdict`)."""
    from seed_table import verdict

    a = [r["colorized_delta_e"] for r in base["after_per_seed"]]
    b = [r["colorized_delta_e"] for r in other["after_per_seed"]]
    if len(a) != len(b):
        raise SystemExit(f"--after has {len(a)} seeds, --after-scan-tuned {len(b)}: give the same seeds, in order")
    out = verdict([round(x - y, 3) for x, y in zip(a, b)])
    return {**out, "mean_margin": round(out["mean_margin"], 3), "std": round(out["std"], 3)}


def pictures(heldout: Path, released: Path, tuned: Path, docs: Path, page: str = "page_001") -> None:
    import torch
    from PIL import Image

    from pipeline.colorist.page import colorize_image
    from pipeline.models.colorizer import load_colorizer

    scan = Image.open(next((heldout / "scan").glob(f"{page}.*"))).convert("RGB")
    truth = Image.open(next((heldout / "color").glob(f"{page}.*"))).convert("RGB")
    shown = [scan]
    for path in (released, tuned):
        model = load_colorizer(path, "cpu").to(memory_format=torch.channels_last)
        shown.append(colorize_image(model, None, scan, None, torch.device("cpu"), "scan"))
    shown.append(truth)
    w, h = scan.size
    gap = 8
    sheet = Image.new("RGB", (4 * w + 3 * gap, h), "white")
    for k, img in enumerate(shown):
        sheet.paste(img, (k * (w + gap), 0))
    sheet.resize((sheet.width // 2, sheet.height // 2), Image.Resampling.LANCZOS).save(docs / "series_before_after.png")
    box = (w // 8, h // 4, w // 8 + 420, h // 4 + 420)
    detail = Image.new("RGB", (4 * 420 + 3 * gap, 420), "white")
    for k, img in enumerate(shown):
        detail.paste(img.crop(box), (k * (420 + gap), 0))
    detail.save(docs / "series_detail.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, nargs="+", required=True)
    ap.add_argument("--after-scan-tuned", type=Path, nargs="+",
                    help="the same seeds, the scan generator fine-tuned as well")
    ap.add_argument("--heldout", type=Path)
    ap.add_argument("--released", type=Path)
    ap.add_argument("--tuned", type=Path)
    ap.add_argument("--extra", type=Path, help="JSON merged into the output (times, settings)")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    out = figures(args.before, args.after)
    if args.after_scan_tuned:
        other = figures(args.before, args.after_scan_tuned)
        out["scan_tuned"] = {k: other[k] for k in ("after_per_seed", "after", "ratio_delta_e")}
        out["scan_tuned"]["vs_colorizer_only"] = compare_settings(out, other)
    if args.extra:
        out.update(json.loads(args.extra.read_text()))
    (args.docs / "series.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'measure':<28}{'before':>10}{'after (mean ± std over seeds)':>34}")
    for m in MEASURES:
        a = out["after"][m]
        print(f"{m:<28}{out['before'][m]:>10.3f}{a['mean']:>24.3f} ± {a['std']:.3f}")
    print(f"ΔE after / before per seed: {out['ratio_delta_e']['per_seed']}")
    if "scan_tuned" in out:
        st = out["scan_tuned"]
        de = st["after"]["colorized_delta_e"]
        print(f"scan generator fine-tuned too: ΔE {de['mean']:.3f} ± {de['std']:.3f}, "
              f"after / before per seed {st['ratio_delta_e']['per_seed']}")
        print(f"  ΔE gain over the colorizer-only fine-tune per seed: {st['vs_colorizer_only']}")
    if args.heldout and args.released and args.tuned:
        pictures(args.heldout, args.released, args.tuned, args.docs)


if __name__ == "__main__":
    main()
