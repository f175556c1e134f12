"""Stage `images`: fetch, decode and resize the selected posts into packed shards."""

import argparse

import pyarrow.parquet as pq

from pipeline.data.danbooru import image_root
from pipeline.data.prepare import prepare_images
from pipeline.files import write_json
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", required=True, help="the source stage's output folder")
    ap.add_argument("--selected", required=True, help="the select stage's Parquet table")
    ap.add_argument("--out", required=True, help="output folder of packed shards")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    ap.add_argument("--work", default="data/cache/images-work",
                    help="scratch folder of finished shards, kept across kills (default: %(default)s)")
    ap.add_argument("--cache", default="data/cache/downloads",
                    help="download cache for HTTP/API sources (default: %(default)s)")
    args = ap.parse_args()
    params = stage_params()
    selected = pq.read_table(args.selected)
    files = None
    if params.source.kind == "folder":
        from pipeline.data.folder_source import folder_files

        files = folder_files(args.source)
    stats = prepare_images(selected, params.source, params.images, image_root(params.source, args.source),
                           args.out, args.work, args.cache, files=files)
    write_json(args.metrics, {"images": stats})


if __name__ == "__main__":
    main()
