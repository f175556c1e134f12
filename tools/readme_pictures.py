"""Render the README's pictures from the pipeline's outputs (run after `dvc repro`).

  docs/data_sample.png     what the default pipeline prepares (holdout colors, their true
                           scans, greyscale(color), the oracle ceiling; the scan domain)
  docs/scan_samples.png    the scan generator on holdout images, beside truth and greyscale
  docs/page_*.png          a 1024x1448 manga page no model trained on (`onepunch
                           synthetic-page --seed 101`), colorized at full resolution by
                           `onepunch colorize` with both colorizers, and its truth; plus
                           1:1 details of the same
  docs/page_metrics.json   PSNR / ΔE2000 / colorfulness / line fidelity of that page

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
    from pipeline.models.pixels import greyscale_u8

    prepared = ROOT / "data/prepared"
    color, truth = holdout_with_truth(prepared)
    oracle = holdout_oracles(prepared)["oracle"]
    scans = load_split(prepared, "scan", "train", mmap=True)
    idx = np.linspace(0, len(color) - 1, n).astype(int)
    rows = [color[idx], truth[idx], greyscale_u8(color[idx]), oracle[idx], np.asarray(scans[np.arange(n) * 7])]
    image_grid(rows, scale=1).save(out)


def scan_samples(out: Path, n: int = 6) -> None:
    from pipeline.data.shards import holdout_with_truth
    from pipeline.evaluation.grids import image_grid
    from pipeline.inference import generate_scans
    from pipeline.models.pixels import greyscale_u8
    from pipeline.models.weak_generator import load_scan_generator
    from pipeline.training.runtime import setup_runtime

    color, truth = holdout_with_truth(ROOT / "data/prepared")
    idx = np.linspace(0, len(color) - 1, n).astype(int)
    rt = setup_runtime("cpu")
    generated = generate_scans(load_scan_generator(ROOT / "models/scan_generator.pt", rt.device), color[idx], rt)
    image_grid([color[idx], generated, truth[idx], greyscale_u8(color[idx])], scale=1).save(out)


def page_pictures(docs: Path) -> dict:
    from pipeline.data.synthetic.pages import render_page
    from pipeline.evaluation.grids import image_grid
    from pipeline.evaluation.measures import color_metrics
    from pipeline.page_files import colorize_files

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
    metrics = {name: color_metrics(np.asarray(img)[None], t, s) for name, img in results.items()}
    metrics["truth"] = {"colorfulness": color_metrics(t, t, s)["colorfulness"]}
    metrics["page"] = {"seed": PAGE_SEED, "size": list(scan.size)}
    return metrics


def main() -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    data_sample(docs / "data_sample.png")
    scan_samples(docs / "scan_samples.png")
    metrics = page_pictures(docs)
    (docs / "page_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
