"""Benchmark: `onepunch colorize` on manga pages at full resolution.

  - a batch of 1024x1448 line-art pages (drawn by the synthetic generator) through
    `colorize_files`, the model loaded once: seconds per page, decode + network + ink
    composite + PNG write included;
  - the network alone on one page, at the precision `onepunch colorize` picks (bf16 on a
    CPU with AMX / AVX512-BF16) and at fp32: seconds, its FLOPs (torch.utils.flop_counter)
    and the fp32 GFLOP/s it reaches, as a fraction of what a large fp32 matmul reaches in
    this same run (the machine's practical peak);
  - on CUDA: pages/s at that size in bf16 autocast.

    python benchmarks/bench_page.py [--pages 6] [--model models/colorizer.pt]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT = 1024, 1448


def matmul_gflops(device, seconds: float = 3.0, n: int = 2048) -> float:
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=6, help="pages in the batch")
    ap.add_argument("--model", type=Path, default=ROOT / "models/colorizer.pt")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/page.json")
    args = ap.parse_args()

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pipeline.colorist.batch_files import colorize_files
    from pipeline.colorist.tiling import run_tiled
    from pipeline.data.synthetic.palettes import make_cast
    from pipeline.data.synthetic.scene_images import render_scan
    from pipeline.data.synthetic.scenes import make_scene
    from pipeline.models.colorizer import load_colorizer, takes_hints
    from pipeline.runtime import inference_autocast as autocast
    from pipeline.runtime import resolve_precision, setup_runtime

    if not args.model.is_file():
        raise SystemExit(f"{args.model}: run `dvc repro` (or `dvc pull`) first")
    rt = setup_runtime(args.device, autotune=False)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.pages):  # a page drawn at 1/2 scale and rendered at full size
            scene = make_scene(np.random.default_rng(i), WIDTH // 2, HEIGHT // 2, make_cast(0, 4))
            p = Path(tmp) / f"page{i:02d}.png"
            render_scan(scene, (WIDTH, HEIGHT)).save(p)
            paths.append(p)
        colorize_files(paths[:1], args.model, None, Path(tmp) / "warm", device=args.device, treat_as="scan",
                       progress=False)
        t0 = time.perf_counter()
        results = colorize_files(paths, args.model, None, Path(tmp) / "out", device=args.device, treat_as="scan",
                                 progress=False)
        per_page = (time.perf_counter() - t0) / args.pages
        assert all(r.error is None for r in results), [r.error for r in results]

    model = load_colorizer(args.model, rt.device).to(memory_format=torch.channels_last)
    x = page_input(model, 1, rt.device)
    hinted = hint_overhead(model, scene_page(render_scan, make_scene, make_cast), rt.device,
                           resolve_precision("auto", rt.device)) if takes_hints(model) else None
    precision = resolve_precision("auto", rt.device)  # what colorize_files ran at

    def network_seconds(prec: str, reps: int = 3) -> float:
        with torch.no_grad(), autocast(prec, rt.device):
            run_tiled(model, x, 3)
            t0 = time.perf_counter()
            for _ in range(reps):
                run_tiled(model, x, 3)
            if rt.device.type == "cuda":
                torch.cuda.synchronize()
        return (time.perf_counter() - t0) / reps

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    flops = counter.get_total_flops()
    network_fp32 = network_seconds("fp32")
    network = network_seconds(precision) if precision != "fp32" else network_fp32
    achieved = flops / network_fp32 / 1e9
    peak = matmul_gflops(rt.device)
    result = {"device": str(rt.device), "threads": threads, "page": f"{WIDTH}x{HEIGHT}", "pages": args.pages,
              "precision": precision, "seconds_per_page": round(per_page, 3),
              "network_seconds": round(network, 3), "network_seconds_fp32": round(network_fp32, 3),
              "network_gflop": round(flops / 1e9, 2), "network_gflops_per_s": round(achieved, 1),
              "matmul_gflops_per_s": round(peak, 1), "fraction_of_matmul": round(achieved / peak, 3)}
    if hinted is not None:
        result |= hinted
    if rt.device.type == "cuda":
        xb = page_input(model, 8, rt.device)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(xb)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(5):
                model(xb)
            torch.cuda.synchronize()
        result["cuda_bf16_pages_per_s"] = round(5 * 8 / (time.perf_counter() - t0), 1)
    print(f"{WIDTH}x{HEIGHT} pages on {rt.device} ({threads} threads): {per_page:.2f} s/page over {args.pages} "
          f"pages at {precision} (decode + network + ink + PNG); network {network:.2f} s at {precision}, "
          f"{network_fp32:.2f} s at fp32: {flops / 1e9:.1f} GFLOP, {achieved:.1f} GFLOP/s at fp32 = "
          f"{achieved / peak:.0%} of this run's fp32 matmul ({peak:.1f} GFLOP/s)"
          + (f"; CUDA bf16: {result['cuda_bf16_pages_per_s']} pages/s" if "cuda_bf16_pages_per_s" in result else ""))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


def scene_page(render_scan, make_scene, make_cast):
    scene = make_scene(np.random.default_rng(0), WIDTH // 2, HEIGHT // 2, make_cast(0, 4))
    return render_scan(scene, (WIDTH, HEIGHT)).convert("RGB")


def hint_overhead(model, page, device, precision: str, reps: int = 3) -> dict:
    """Median seconds of one page through `colorize_layers` without hints and with 12 random
    dots, alternating, in one process (the network dominates both; the difference is the
    hints' reading, spreading and encoding)."""
    import statistics

    from pipeline.colorist.page import colorize_layers

    rng = np.random.default_rng(0)
    ids = np.full((HEIGHT, WIDTH), -1, np.int32)
    for k in range(12):
        y, x = int(rng.integers(2, HEIGHT - 2)), int(rng.integers(2, WIDTH - 2))
        ids[y - 2:y + 3, x - 2:x + 3] = k
    hints = (ids, rng.integers(0, 256, (12, 3)).astype(np.uint8))
    times: dict[str, list[float]] = {"plain": [], "hinted": []}
    colorize_layers(model, None, page, None, device, "scan", precision)  # warm-up
    for _ in range(reps):
        for name, h in (("plain", None), ("hinted", hints)):
            t0 = time.perf_counter()
            colorize_layers(model, None, page, None, device, "scan", precision, h)
            times[name].append(time.perf_counter() - t0)
    plain, hinted = statistics.median(times["plain"]), statistics.median(times["hinted"])
    return {"page_seconds_no_hints": round(plain, 3), "page_seconds_12_hints": round(hinted, 3)}


def page_input(model, n: int, device):
    """A random scan batch (n, 1, H, W) in [-1, 1], with empty hint channels when the model
    takes hints (what `onepunch colorize` feeds it without --hints)."""
    import torch

    from pipeline.models.colorizer import takes_hints

    x = torch.rand(n, 1, HEIGHT, WIDTH, device=device) * 2 - 1
    if takes_hints(model):
        none = torch.cat([torch.zeros(n, 3, HEIGHT, WIDTH, device=device),
                          -torch.ones(n, 1, HEIGHT, WIDTH, device=device)], 1)
        x = torch.cat([x, none], 1)
    return x.contiguous(memory_format=torch.channels_last)


if __name__ == "__main__":
    main()
