"""Stage `train_cyclegan`: train the CycleGAN on the prepared shards, publish the
color->scan generator, and measure it against the true scans of the synthetic holdout.

Single process: `python -m stages.train_cyclegan ...`; several GPUs or CPU processes:
`torchrun --nproc_per_node=N -m stages.train_cyclegan ...` (same arguments).
"""

import argparse
from pathlib import Path

from pipeline.files import write_json
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepared", required=True, help="the images stage's output folder")
    ap.add_argument("--model", required=True, help="where to publish the scan generator (.pt)")
    ap.add_argument("--metrics", required=True, help="scan-quality metrics JSON to write")
    ap.add_argument("--live", required=True, help="DVCLive folder (loss curves, sample grids)")
    ap.add_argument("--checkpoints", default="data/cache/checkpoints/train_cyclegan",
                    help="resume checkpoints, kept across kills (default: %(default)s)")
    args = ap.parse_args()
    params = stage_params()

    from pipeline.training.train_cyclegan import train_scan_generator

    metrics = train_scan_generator(params, Path(args.prepared), Path(args.model), Path(args.live),
                                   Path(args.checkpoints))
    if metrics is not None:
        write_json(args.metrics, {"scan": metrics})


if __name__ == "__main__":
    main()
