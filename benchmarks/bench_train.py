"""Benchmark: one GAN training step (both generator and discriminator updates) of the
CycleGAN scan generator (--model cyclegan) or the attention U-Net colorizer (--model colorizer).

Measures, in one run on this machine:
  - matmul GFLOP/s: a square fp32 `torch.mm` (the machine's practical peak for dense math);
  - the project's training step at --size px, batch --batch, with the params.yaml
    architecture: images/s and achieved GFLOP/s (FLOPs of forward + backward counted by
    torch.utils.flop_counter on one step), as a fraction of the matmul figure;
  - the optimised path (channels_last, plus bf16 autocast on CUDA) against the plain path
    (eager, NCHW-contiguous, strict fp32: no TF32 on CUDA) of the same step;
  - with --compile, also the optimised path with every network through torch.compile.
On a GPU the same figures are taken in bf16 and reported as MFU against the bf16 matmul.

    python benchmarks/bench_train.py                  # 128 px, batch 8, CPU or GPU
    python benchmarks/bench_train.py --size 64 --steps 20
    python benchmarks/bench_train.py --params configs/danbooru2020-gpu.yaml --batch 16   # full-scale widths
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def matmul_gflops(device, dtype, n: int | None = None, seconds: float = 2.0) -> float:
    import torch

    n = n or (8192 if device.type == "cuda" else 2048)  # big enough to reach the unit's peak

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def compile_mode_for(device) -> str:
    """The torch.compile mode the benchmark times: the GPU configs' on CUDA, inductor's
    default on CPU (max-autotune's GEMM search does not apply to oneDNN convolutions)."""
    return "max-autotune-no-cudagraphs" if device.type == "cuda" else "default"


def step_runner(model: str, params, size: int, batch: int, rt, compile_models: bool = False,
                prefetch: bool | None = None):
    """A closure doing one training step (G and D updates) on random uint8 data; with
    `compile_models`, every network compiled as training compiles it (the stage's
    `compile` param: `pipeline.training.distributed.for_training`). `prefetch` None reads
    batches as the stages do (`samplers.read_ahead`: one step ahead on a thread on CUDA,
    inside the step on the CPU); True or False forces either way on any device."""
    import numpy as np

    mode = compile_mode_for(rt.device) if compile_models else "none"
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (max(64, batch), size, size, 3), dtype=np.uint8)
    scan = rng.integers(0, 256, (max(64, batch), size, size, 1), dtype=np.uint8)
    if model == "cyclegan":
        from pipeline.training import cyclegan_step as scangen

        cfg = replace(params.cyclegan, batch_size=batch, crop=0, compile=mode)  # the step at `size` px
        state = scangen.make_state(cfg, 2e-4, rt, color, scan, seed=0)
        step = scangen.cyclegan_step
    else:
        from pipeline.training import colorizer_step as colorization

        cfg = replace(params.colorizer, batch_size=batch, crop=0, progressive_sizes=[], compile=mode)
        state = colorization.make_state(cfg, 2e-4, rt, scan, color, seed=0)
        step = colorization.colorizer_step
    if prefetch is not None:
        from pipeline.training.samplers import BatchSampler, PairSampler, Prefetcher

        bare = {k: v.sampler if isinstance(v, Prefetcher) else v for k, v in state.stateful.items()}
        state.stateful = {k: Prefetcher(v, pin=rt.device.type == "cuda")
                          if prefetch and isinstance(v, (BatchSampler, PairSampler)) else v for k, v in bare.items()}
    return lambda: step(state, cfg, rt)


@contextlib.contextmanager
def strict_fp32(on: bool):
    """The plain path on CUDA: no TF32 in matmuls and convolutions."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if on:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def time_steps(run, steps: int, device) -> float:
    for _ in range(3):  # warm-up: allocator, oneDNN primitive caches
        run()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        run()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def count_step_flops(run) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cyclegan", choices=["cyclegan", "colorizer"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                    help="architecture from this params file (default: params.yaml)")
    ap.add_argument("--compile", action="store_true", help="also time the optimised path under torch.compile")
    ap.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/train-MODEL.json")
    args = ap.parse_args()

    import torch

    from pipeline.config import load_params
    from pipeline.runtime import Runtime, setup_runtime

    params = load_params(args.params)
    args.json = args.json or ROOT / f"benchmarks/results/train-{args.model}.json"
    rt = setup_runtime(args.device)
    plain_rt = Runtime(device=rt.device, channels_last=False)  # eager NCHW fp32, no autocast
    dtype = torch.bfloat16 if rt.amp_dtype is not None else torch.float32
    peak = matmul_gflops(rt.device, dtype)
    print(f"device {rt.device} ({torch.get_num_threads()} threads), matmul {dtype}: {peak:.1f} GFLOP/s", flush=True)

    device_name = torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu"
    results = {"model": args.model, "params": args.params.name, "device": str(rt.device),
               "device_name": device_name, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "size": args.size, "batch": args.batch, "matmul_gflops": round(peak, 1), "matmul_dtype": str(dtype)}
    variants = [("optimised", rt, False), ("plain", plain_rt, False)]
    if args.compile:
        variants.append(("compiled", rt, True))
    for name, runtime, compiled in variants:
        run = step_runner(args.model, params, args.size, args.batch, runtime, compiled)
        with strict_fp32(name == "plain" and rt.device.type == "cuda"):
            t0 = time.perf_counter()
            flops = count_step_flops(run) if not compiled else results["optimised"]["gflop_per_step"] * 1e9
            run()  # compiles, when compiled
            warm = time.perf_counter() - t0
            sec = time_steps(run, args.steps, rt.device)
        gflops = flops / sec / 1e9
        results[name] = {"seconds_per_step": round(sec, 4), "images_per_s": round(args.batch / sec, 2),
                         "gflop_per_step": round(flops / 1e9, 2), "gflops": round(gflops, 1),
                         "fraction_of_matmul": round(gflops / peak, 3), "first_step_s": round(warm, 1)}
        print(f"{name:>9}: {sec * 1000:8.1f} ms/step  {args.batch / sec:7.1f} img/s  "
              f"{flops / 1e9:6.1f} GFLOP/step  {gflops:7.1f} GFLOP/s  = {gflops / peak:.0%} of matmul", flush=True)
    speedup = results["plain"]["seconds_per_step"] / results["optimised"]["seconds_per_step"]
    results["speedup_vs_plain"] = round(speedup, 2)
    print(f"optimised vs plain: {speedup:.2f}x")
    if args.compile:
        c = results["plain"]["seconds_per_step"] / results["compiled"]["seconds_per_step"]
        results["compiled_speedup_vs_plain"] = round(c, 2)
        print(f"compiled vs plain: {c:.2f}x (first step incl. compilation {results['compiled']['first_step_s']} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    main()
