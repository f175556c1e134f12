"""Stage `select`: tag-filter the metadata into the scan and color sets, train/holdout."""

import argparse

from pipeline.data.select import select_posts
from pipeline.files import write_json, write_parquet
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metadata", required=True, help="the metadata stage's Parquet table")
    ap.add_argument("--out", required=True, help="Parquet file of selected posts to write")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    args = ap.parse_args()
    params = stage_params()
    selected, counts = select_posts(args.metadata, params.select)
    write_parquet(args.out, selected)
    write_json(args.metrics, {"select": dict(sorted(counts.items()))})


if __name__ == "__main__":
    main()
