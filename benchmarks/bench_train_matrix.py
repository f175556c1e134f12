"""Benchmark: the training step over the matrix a GPU user decides with, in one run.

For every network (CycleGAN, colorizer), architecture (the default params.yaml and the
full-scale configs/danbooru2020-gpu.yaml), step size (px), batch and mode, one full GAN
step (generator and discriminator updates) is timed. Modes:

- `eager`: the stages' path: channels_last activations (bf16 autocast on CUDA), each batch
  read one step ahead on a thread into pinned memory on CUDA, inside the step on the CPU;
- `eager_nchw`: the same with NCHW activations: the norm-layout question (PyTorch's CUDA
  GroupNorm has no channels_last kernel, so channels_last pays a layout change around
  every norm; NCHW pays cuDNN's slower NCHW convolutions instead);
- `eager_prefetch` / `eager_no_prefetch`: batches read one step ahead on a thread / inside
  the step, on any device (what prefetching saves or costs);
- `compiled`: every network through torch.compile as `compile:` compiles it (the norms
  fused with their neighbours, in whatever layout).

Figures per row: images/s, FLOPs of forward + backward per step (torch.utils.flop_counter, eager),
and the fraction of a square matmul measured in this same run (bf16 on CUDA: MFU; fp32 on
CPU). Then the time to train the full-scale configuration end to end, extrapolated from
steps measured at its own settings (crop or image size, batch, its `compile:` mode): the
CycleGAN's steps plus both colorizers' (the method's and the greyscale baseline).

    python benchmarks/bench_train_matrix.py                      # on a GPU: the whole matrix
    python benchmarks/bench_train_matrix.py --sizes 64 --batches 4 --configs default   # a CPU taste

A configuration that runs out of memory is recorded as such and the matrix goes on.
Writes benchmarks/results/train-matrix.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CONFIGS = {"default": ROOT / "params.yaml", "full": ROOT / "configs/danbooru2020-gpu.yaml"}


MODES = ("eager", "eager_nchw", "eager_prefetch", "eager_no_prefetch", "compiled")


def build(model: str, params, size: int, batch: int, rt, mode: str, flops: float | None):
    """(a closure doing one step, FLOPs per step, seconds to the first step done); may raise OOM."""
    from bench_train import count_step_flops, step_runner

    from pipeline.runtime import Runtime

    if mode == "eager_nchw":
        rt = Runtime(device=rt.device, amp_dtype=rt.amp_dtype, channels_last=False)
    prefetch = {"eager_prefetch": True, "eager_no_prefetch": False}.get(mode)
    run = step_runner(model, params, size, batch, rt, mode == "compiled", prefetch=prefetch)
    t0 = time.perf_counter()
    if flops is None:
        flops = count_step_flops(run)  # eager: counting runs one step
    else:
        run()  # compiles, when compiled
    return run, flops, time.perf_counter() - t0


def measure(model: str, params, size: int, batch: int, rt, mode: str, steps: int, flops: float | None):
    """(seconds per step, FLOPs per step, seconds to the first step done) or raises OOM."""
    from bench_train import time_steps

    run, flops, first = build(model, params, size, batch, rt, mode, flops)
    return time_steps(run, steps, rt.device), flops, first


def end_to_end(params, rt, compiled: bool, steps: int) -> dict:
    """The full-scale configuration trained end to end, extrapolated from measured steps at
    its own step size and batch: CycleGAN steps + 2 × colorizer steps (method and baseline)."""
    out = {}
    total = 0.0
    for model, cfg, runs in (("cyclegan", params.cyclegan, 1), ("colorizer", params.colorizer, 2)):
        size = cfg.crop or params.images.size
        sec, _, _ = measure(model, params, size, cfg.batch_size, rt, "compiled" if compiled else "eager", steps,
                            flops=0.0)
        hours = sec * cfg.steps * runs / 3600
        out[model] = {"size": size, "batch": cfg.batch_size, "steps": cfg.steps, "runs": runs,
                      "seconds_per_step": round(sec, 4), "hours": round(hours, 2)}
        total += hours
    out["hours_total"] = round(total, 2)
    return out


def configuration(model: str, config: str, params, size: int, batch: int, rt, args, peak: float) -> list[dict]:
    """One matrix cell's rows, a row per mode: each mode timed `args.repeats` rounds, the
    modes' order alternating round by round (median reported), or once each in turn."""
    import statistics

    import torch
    from bench_train import time_steps

    flops, built, times, rows = None, {}, {m: [] for m in args.modes}, {}
    for mode in args.modes:
        rows[mode] = {"model": model, "config": config, "size": size, "batch": batch, "mode": mode}
    for r in range(args.repeats):
        for mode in args.modes if r % 2 == 0 else args.modes[::-1]:
            if "error" in rows[mode]:
                continue
            try:
                if mode not in built:
                    run, flops_m, first = build(model, params, size, batch, rt, mode, flops)
                    flops = flops if flops is not None else flops_m
                    built[mode] = run
                    rows[mode]["first_step_s"] = round(first, 1)
                times[mode].append(time_steps(built[mode], args.steps, rt.device))
            except torch.OutOfMemoryError:
                rows[mode]["error"] = "out of memory"
                built.pop(mode, None)
                torch.cuda.empty_cache()
            if args.repeats == 1:
                built.pop(mode, None)  # one model on the device at a time
    out = []
    for mode in args.modes:
        row = rows[mode]
        if "error" in row:
            print(f"{model:<10}{config:<8}{size:>5}{batch:>6}{mode:>18}  out of memory", flush=True)
            out.append(row)
            continue
        sec = statistics.median(times[mode])
        tflops = flops / sec / 1e12
        row |= {"seconds_per_step": round(sec, 5), "images_per_s": round(batch / sec, 1),
                "gflop_per_step": round(flops / 1e9, 1), "tflops": round(tflops, 3),
                "fraction_of_matmul": round(tflops * 1000 / peak, 4)}
        if args.repeats > 1:
            row["seconds_per_step_rounds"] = [round(t, 5) for t in times[mode]]
        out.append(row)
        spread = (f"  ({min(times[mode]) * 1000:.0f}-{max(times[mode]) * 1000:.0f})" if args.repeats > 1 else "")
        print(f"{model:<10}{config:<8}{size:>5}{batch:>6}{mode:>18}{sec * 1000:>10.1f}"
              f"{batch / sec:>9.1f}{flops / 1e9:>12.1f}{tflops * 1000:>10.1f}{tflops * 1000 / peak:>11.1%}"
              f"{row['first_step_s']:>9.1f}{spread}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["cyclegan", "colorizer"], choices=["cyclegan", "colorizer"])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                    help="default: params.yaml; full: configs/danbooru2020-gpu.yaml")
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 256], help="step size in px (no crop)")
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 64])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                    help="eager: the stages' path; eager_nchw: NCHW activations; eager_prefetch / eager_no_prefetch: "
                         "batches read ahead on a thread / in the step; compiled: torch.compile")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration (after 3 warm-up)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="time each configuration's modes this many rounds, alternating their order, and report "
                         "the median (all modes' models held at once; for same-run ratios on a noisy machine)")
    ap.add_argument("--no-end-to-end", action="store_true", help="skip the full-scale end-to-end extrapolation")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/train-matrix.json")
    args = ap.parse_args()
    for n in args.sizes + args.batches + [args.steps, args.repeats]:
        if n < 1:
            ap.error(f"sizes, batches, steps and repeats must be >= 1 (got {n})")

    import torch
    from bench_train import compile_mode_for, matmul_gflops

    from pipeline.config import load_params
    from pipeline.runtime import setup_runtime

    rt = setup_runtime(args.device)
    dtype = torch.bfloat16 if rt.amp_dtype is not None else torch.float32
    peak = matmul_gflops(rt.device, dtype)
    name = torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu"
    print(f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}: matmul {dtype} "
          f"{peak / 1000:.1f} TFLOP/s; compiled = torch.compile mode {compile_mode_for(rt.device)}", flush=True)
    results = {"device": str(rt.device), "device_name": name, "torch": torch.__version__,
               "threads": torch.get_num_threads(), "matmul_dtype": str(dtype), "matmul_tflops": round(peak / 1000, 2),
               "compile_mode": compile_mode_for(rt.device), "rows": []}
    print(f"{'model':<10}{'config':<8}{'px':>5}{'batch':>6}{'mode':>18}{'ms/step':>10}{'img/s':>9}"
          f"{'GFLOP/step':>12}{'GFLOP/s':>10}{'of matmul':>11}{'first s':>9}", flush=True)
    for config in args.configs:
        params = load_params(CONFIGS[config])
        for model in args.models:
            for size in args.sizes:
                for batch in args.batches:
                    rows = configuration(model, config, params, size, batch, rt, args, peak)
                    results["rows"].extend(rows)
    if not args.no_end_to_end:
        full = load_params(CONFIGS["full"])
        compiled = full.colorizer.compile != "none" and "compiled" in args.modes
        e2e = end_to_end(full, rt, compiled, args.steps)
        results["full_scale_end_to_end"] = {"compiled": compiled, **e2e}
        print(f"full-scale end to end ({'compiled' if compiled else 'eager'}): CycleGAN "
              f"{e2e['cyclegan']['hours']:.2f} h + colorizers {e2e['colorizer']['hours']:.2f} h = "
              f"{e2e['hours_total']:.2f} h on this device", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
