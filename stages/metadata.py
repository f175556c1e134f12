"""Stage `metadata`: Danbooru2020 metadata shards -> one typed Parquet table."""

import argparse

from pipeline.data.danbooru import metadata_dir
from pipeline.data.metadata.read import discover_metadata_files
from pipeline.data.metadata.table import build_metadata_table
from pipeline.files import write_json
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", required=True, help="the source stage's output folder")
    ap.add_argument("--out", required=True, help="Parquet file to write")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    args = ap.parse_args()
    params = stage_params()
    files = discover_metadata_files(metadata_dir(params.source, args.source), params.source.metadata_files)
    stats = build_metadata_table(files, args.out, block_mb=params.metadata.block_mb,
                                 buckets=params.metadata.dedupe_buckets)
    write_json(args.metrics, {"metadata": stats.as_metrics()})


if __name__ == "__main__":
    main()
