"""Stage `make_pairs`: run the scan generator over every colored image -> paired shards."""

import argparse
from pathlib import Path

from pipeline.files import write_json
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="the published scan generator (.pt)")
    ap.add_argument("--prepared", required=True, help="the images stage's output folder")
    ap.add_argument("--out", required=True, help="output folder of generated-scan shards")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    args = ap.parse_args()
    params = stage_params()

    from pipeline.data.pairs import make_pairs

    stats = make_pairs(Path(args.model), Path(args.prepared), Path(args.out),
                       batch=params.cyclegan.eval_batch, device=params.cyclegan.device)
    write_json(args.metrics, {"pairs": stats})


if __name__ == "__main__":
    main()
