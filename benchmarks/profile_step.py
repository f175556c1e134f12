"""Profile one GAN training step: where the time goes, by operator, on CPU or GPU.

Runs a few warm-up steps, then `--steps` steps under torch.profiler, and prints
  - wall time per step, device (kernel) busy time per step and kernel launches per step
    (on CUDA: busy/wall far under 1 means the step is bound by launches and host work);
  - the top operators by self device time and by self host time.

    python benchmarks/profile_step.py --model cyclegan
    python benchmarks/profile_step.py --model colorizer --params configs/danbooru2020-gpu.yaml --batch 16
    python benchmarks/profile_step.py --plain          # eager NCHW fp32 instead of the optimised path
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cyclegan", choices=["cyclegan", "colorizer"])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--plain", action="store_true", help="profile the plain path (NCHW fp32, no autocast)")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()

    from bench_train import _sync, step_runner
    from torch.profiler import ProfilerActivity, profile

    from pipeline.config import load_params
    from pipeline.runtime import Runtime, setup_runtime

    rt = setup_runtime(args.device)
    if args.plain:
        rt = Runtime(device=rt.device, channels_last=False)
    run = step_runner(args.model, load_params(args.params), args.size, args.batch, rt)
    for _ in range(3):
        run()
    _sync(rt.device)
    cuda = rt.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(args.steps):
            run()
        _sync(rt.device)
        wall = (time.perf_counter() - t0) / args.steps
    events = prof.key_averages()
    print(f"{args.model} {args.params.name} {args.size}px batch {args.batch} on {rt.device} "
          f"({'plain' if args.plain else 'optimised'}): {wall * 1000:.1f} ms/step (under the profiler)")
    if cuda:
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
        busy = sum(e.device_time for e in kernels) / 1000 / args.steps
        print(f"kernels: {len(kernels) / args.steps:.0f} per step, device busy {busy:.1f} ms/step "
              f"= {busy / (wall * 1000):.0%} of wall")
        print(events.table(sort_by="self_device_time_total", row_limit=args.top))
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
