"""Benchmark: the colorizer's data loader against the training step, and `onepunch
colorize` latency.

  - loader: (scan, color) batches drawn by PairSampler, converted to float, augmented
    (the same work the training step starts with), images/s, against the images/s one
    full training step consumes — measured in this run, on the params.yaml config at 64 px;
  - colorize latency on a 512x512 image: one call (model loading excluded), and the
    per-image time over a batch of files through `colorize_files` (model loaded once).

    python benchmarks/bench_colorize.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--files", type=int, default=8, help="images in the batch latency test")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/colorize.json")
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from pipeline.colorist.batch_files import colorize_files
    from pipeline.colorist.page import colorize_image
    from pipeline.config import load_params
    from pipeline.models.colorizer import load_colorizer
    from pipeline.pixels import greyscale_u8, to_model_input
    from pipeline.runtime import setup_runtime
    from pipeline.training.colorizer_step import colorizer_step, make_state

    params = load_params(ROOT / "params.yaml")
    rt = setup_runtime("auto", autotune=False)  # as `onepunch colorize` runs
    cfg = replace(params.colorizer, batch_size=args.batch)
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (2000, 64, 64, 3), dtype=np.uint8)
    scans = greyscale_u8(colors)
    state = make_state(cfg, 2e-4, rt, scans, colors, seed=0)

    sampler, aug = state.stateful["pairs"], state.stateful["augment"]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3.0:
        s, c = sampler.next()
        aug(torch.cat([to_model_input(s, rt.device), to_model_input(c, rt.device)], 1))
        n += len(s)
    loader = n / (time.perf_counter() - t0)
    for _ in range(3):
        colorizer_step(state, cfg, rt)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 5.0:
        colorizer_step(state, cfg, rt)
        steps += 1
    consumed = steps * args.batch / (time.perf_counter() - t0)
    print(f"loader {loader:8.0f} img/s   training step consumes {consumed:6.1f} img/s   "
          f"ratio {loader / consumed:.0f}x", flush=True)

    model_path = ROOT / "models/colorizer.pt"
    if not model_path.exists():
        raise SystemExit(f"{model_path}: run `dvc repro` (or `dvc pull`) first")
    colorizer = load_colorizer(model_path, rt.device)
    page = Image.fromarray(rng.integers(0, 256, (512, 512), dtype=np.uint8)).convert("RGB")
    work = int(torch.load(model_path, weights_only=True)["image_size"])
    colorize_image(colorizer, None, page, work, rt.device, "scan")
    t0 = time.perf_counter()
    for _ in range(10):
        colorize_image(colorizer, None, page, work, rt.device, "scan")
    single = (time.perf_counter() - t0) / 10
    colorize_image(colorizer, None, page, 512, rt.device, "scan")  # warm-up at this size
    t0 = time.perf_counter()
    for _ in range(3):
        colorize_image(colorizer, None, page, 512, rt.device, "scan")
    full = (time.perf_counter() - t0) / 3
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.files):
            p = Path(tmp) / f"page{i}.png"
            page.save(p)
            paths.append(p)
        t0 = time.perf_counter()
        colorize_files(paths, model_path, None, Path(tmp) / "out", device="auto", treat_as="scan", progress=False)
        per_file = (time.perf_counter() - t0) / args.files
    print(f"colorize 512x512 (work size {work}): {single * 1000:.1f} ms; at work size 512: {full * 1000:.0f} ms; "
          f"per image over {args.files} files incl. decode+save+model load: {per_file * 1000:.0f} ms")
    result = {"device": str(rt.device), "loader_images_per_s": round(loader, 1),
              "train_consumes_images_per_s": round(consumed, 1), "loader_ratio": round(loader / consumed, 1),
              "colorize_512_ms": round(single * 1000, 2), "colorize_512_at_512_ms": round(full * 1000, 1),
              "colorize_per_file_ms": round(per_file * 1000, 1), "work_size": work}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
