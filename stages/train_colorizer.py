"""Stage `train_colorizer@{scangen,greyscale}`: train the attention U-Net colorizer on
(scangen(color), color) pairs — the method — or on (greyscale(color), color) pairs — the
thesis test's baseline — and publish it.

Several GPUs or CPU processes: `torchrun --nproc_per_node=N -m stages.train_colorizer ...`.
"""

import argparse
from pathlib import Path

from pipeline.files import write_json
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, choices=["scangen", "greyscale"], help="which scans to train on")
    ap.add_argument("--prepared", required=True, help="the images stage's output folder")
    ap.add_argument("--pairs", default=None, help="the make_pairs stage's output folder (scangen variant)")
    ap.add_argument("--model", required=True, help="where to publish the colorizer (.pt)")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    ap.add_argument("--live", required=True, help="DVCLive folder (loss curves, sample grids)")
    ap.add_argument("--checkpoints", default=None,
                    help="resume checkpoints (default: data/cache/checkpoints/train_colorizer-VARIANT)")
    args = ap.parse_args()
    params = stage_params()

    from pipeline.training.train_colorizer import train_colorizer

    ckpt = Path(args.checkpoints or f"data/cache/checkpoints/train_colorizer-{args.variant}")
    metrics = train_colorizer(params, args.variant, Path(args.prepared), Path(args.pairs) if args.pairs else None,
                              Path(args.model), Path(args.live), ckpt)
    if metrics is not None:
        write_json(args.metrics, {"colorizer": metrics})


if __name__ == "__main__":
    main()
