"""Render the README's pictures from the pipeline's outputs (run after `dvc repro`).

  docs/data_sample.png     what the default pipeline prepares (holdout colors, their true
                           scans, greyscale(color), the oracle ceiling; the scan domain)
  docs/scan_samples.png    the scan generator on holdout images, beside truth and greyscale
  docs/page_*.png          a 1024x1448 manga page no model trained on (`onepunch
                           synthetic-page --seed 101`), colorized at full resolution by
                           `onepunch colorize` with both colorizers, and its truth; plus
                           1:1 details of the same
  docs/page_metrics.json   PSNR / ΔE2000 / colorfulness / line fidelity of that page
  docs/page_hints.json     a handful of color hints for that page (a dot in each of its 12
                           largest regions that are not white paper, in the truth's color, as
                           a colorist who knows the series would place them), the input of
                           `onepunch colorize --hints`
  docs/page_hinted.png     the page colorized with them, beside the hints and the page
                           without them
  docs/hints_plot.png      ΔE2000 and PSNR against the number of hints (eval/hints.json)

    python tools/readme_pictures.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGE_SEED = 101


def data_sample(out: Path, n: int = 6) -> None:
    from pipeline.data.shards import holdout_oracles, holdout_with_truth, load_split
    from pipeline.evaluation.grids import image_grid
    from pipeline.pixels import greyscale_u8

    prepared = ROOT / "data/prepared"
    color, truth = holdout_with_truth(prepared)
    oracle = holdout_oracles(prepared)["oracle"]
    scans = load_split(prepared, "scan", "train", mmap=True)
    idx = np.linspace(0, len(color) - 1, n).astype(int)
    rows = [color[idx], truth[idx], greyscale_u8(color[idx]), oracle[idx], np.asarray(scans[np.arange(n) * 7])]
    image_grid(rows, scale=1).save(out)


def scan_samples(out: Path, n: int = 6) -> None:
    from pipeline.batched import generate_scans
    from pipeline.data.shards import holdout_with_truth
    from pipeline.evaluation.grids import image_grid
    from pipeline.models.scan_generator import load_scan_generator
    from pipeline.pixels import greyscale_u8
    from pipeline.runtime import setup_runtime

    color, truth = holdout_with_truth(ROOT / "data/prepared")
    idx = np.linspace(0, len(color) - 1, n).astype(int)
    rt = setup_runtime("cpu")
    generated = generate_scans(load_scan_generator(ROOT / "models/scan_generator.pt", rt.device), color[idx], rt)
    image_grid([color[idx], generated, truth[idx], greyscale_u8(color[idx])], scale=1).save(out)


def page_pictures(docs: Path) -> dict:
    from pipeline.colorist.batch_files import colorize_files
    from pipeline.data.synthetic.pages import render_page
    from pipeline.evaluation.grids import image_grid
    from pipeline.colorist.arrays import stroke_masks
    from pipeline.evaluation.metrics import color_metrics

    scan, truth = render_page(PAGE_SEED)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "page.png"
        scan.save(src)
        for name, model in (("scangen", "colorizer.pt"), ("greyscale", "colorizer_greyscale.pt")):
            (res,) = colorize_files([src], ROOT / "models" / model, None, Path(tmp) / name, device="cpu",
                                    treat_as="scan", progress=False)
            if res.error:
                raise SystemExit(f"{model}: {res.error}")
            results[name] = Image.open(res.output).convert("RGB")
    scan.save(docs / "page_scan.png")
    truth.save(docs / "page_truth.png")
    results["scangen"].save(docs / "page_colorized.png")
    results["greyscale"].save(docs / "page_colorized_greyscale_model.png")
    box = (520, 330, 1000, 660)  # 1:1 detail: faces and their ink
    detail = np.stack([np.asarray(im.convert("RGB").crop(box)) for im in (scan, results["scangen"], truth)])
    image_grid([detail], scale=1).save(docs / "page_detail.png")
    s = np.asarray(scan)[None, ..., None]
    t = np.asarray(truth)[None]
    strokes = stroke_masks(s)
    metrics = {name: color_metrics(np.asarray(img)[None], t, s, strokes) for name, img in results.items()}
    metrics["truth"] = {"colorfulness": color_metrics(t, t, s)["colorfulness"]}
    metrics["page"] = {"seed": PAGE_SEED, "size": list(scan.size)}
    metrics["hinted"] = hinted_page(docs, scan, truth, results["scangen"])
    return metrics


PAGE_HINTS = 12


def hinted_page(docs: Path, scan: Image.Image, truth: Image.Image, automatic: Image.Image) -> dict:
    """One dot in each of the page's PAGE_HINTS largest regions that are not white paper, at
    the truth's color where the region is deepest, and the page colorized with them."""
    from scipy import ndimage
    from skimage.color import rgb2lab

    from pipeline.colorist.batch_files import colorize_files
    from pipeline.colorist.regions import regions
    from pipeline.evaluation.grids import hint_dots, image_grid
    from pipeline.colorist.arrays import stroke_masks
    from pipeline.evaluation.metrics import color_metrics

    s, t = np.asarray(scan.convert("L")), np.asarray(truth.convert("RGB"))
    labels, n = regions(s)
    sizes = np.bincount(labels.ravel())[1:]
    boxes = ndimage.find_objects(labels)
    points = []
    for region in (np.argsort(-sizes) + 1).tolist():  # largest first, skipping white paper
        box = boxes[region - 1]
        inside = labels[box] == region
        lab = rgb2lab(t[box][inside].reshape(-1, 1, 3)).reshape(-1, 3).mean(0)
        if lab[0] > 92 and np.hypot(lab[1], lab[2]) < 8:
            continue
        depth = ndimage.distance_transform_edt(inside)  # a colorist dots well inside a region
        y, x = np.unravel_index(int(depth.argmax()), depth.shape)
        y, x = y + box[0].start, x + box[1].start
        r, g, b = t[y, x].tolist()
        points.append({"x": int(x), "y": int(y), "color": f"#{r:02x}{g:02x}{b:02x}"})
        if len(points) == PAGE_HINTS:
            break
    hint_file = docs / "page_hints.json"
    hint_file.write_text(json.dumps(points, indent=1) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "page.png"
        scan.save(src)
        (res,) = colorize_files([src], ROOT / "models/colorizer.pt", None, Path(tmp), device="cpu",
                                treat_as="scan", progress=False, hints=hint_file)
        if res.error:
            raise SystemExit(f"hinted page: {res.error}")
        hinted = Image.open(res.output).convert("RGB")
    from pipeline.colorist.hint_files import read_hints

    ids, cols = read_hints(hint_file, scan.size)
    dots = hint_dots(s[None, ..., None], [_grow(ids, 4)], [cols])[0]
    image_grid([np.stack([np.asarray(automatic), dots, np.asarray(hinted), t])], scale=1).save(
        docs / "page_hinted.png")
    scan = s[None, ..., None]
    return {"hints": len(points), **color_metrics(np.asarray(hinted)[None], t[None], scan, stroke_masks(scan))}


def _grow(ids: np.ndarray, r: int) -> np.ndarray:
    """Hint dots drawn larger, to be seen on a 1024-px page in the README."""
    from scipy import ndimage

    return ndimage.grey_dilation(ids + 1, size=(2 * r + 1, 2 * r + 1)) - 1


def hints_plot(out: Path) -> None:
    """ΔE2000 and PSNR against the number of hints, from the evaluate stage's eval/hints.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads((ROOT / "eval/hints.json").read_text())
    n = [r["hints"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=110)
    a.plot(n, [r["delta_e"] for r in rows], "o-", color="#c0392b")
    a.set(xscale="symlog", xlabel="hints per 256-px image", ylabel="ΔE2000 (lower is better)")
    b.plot(n, [r["psnr"] for r in rows], "o-", color="#2c7fb8")
    b.set(xscale="symlog", xlabel="hints per 256-px image", ylabel="PSNR dB (higher is better)")
    for ax in (a, b):
        ax.set_xticks(n, [str(v) for v in n])
        ax.grid(alpha=0.3)
    fig.suptitle("Generated-scan colorizer on the synthetic holdout, hints sampled from the truth", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    data_sample(docs / "data_sample.png")
    scan_samples(docs / "scan_samples.png")
    metrics = page_pictures(docs)
    hints_plot(docs / "hints_plot.png")
    (docs / "page_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
