"""Stage `source`: materialise the configured Danbooru2020 source (params: source.*)."""

import argparse

from pipeline.data.sources import materialize_source
from pipeline.files import write_json
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output folder (the stage's out)")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    args = ap.parse_args()
    params = stage_params()
    stats = materialize_source(params.source, args.out)
    write_json(args.metrics, {"source": {"kind": params.source.kind, **stats}})


if __name__ == "__main__":
    main()
