"""Stage `evaluate`: holdout metrics of the scan generator and both colorizers, and the
evaluation grid (true scan | scan approximation | colorization | greyscale-trained
colorization | ground truth), and quality against the number of color hints."""

import argparse
from pathlib import Path

from pipeline.files import atomic_path, write_json
from stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prepared", required=True, help="the images stage's output folder")
    ap.add_argument("--scan-model", required=True, help="models/scan_generator.pt")
    ap.add_argument("--colorizer", required=True, help="colorizer trained on generated scans")
    ap.add_argument("--greyscale-colorizer", required=True, help="colorizer trained on greyscale(color)")
    ap.add_argument("--metrics", required=True, help="metrics JSON to write")
    ap.add_argument("--grid", required=True, help="evaluation grid PNG to write")
    ap.add_argument("--hints-plot", required=True,
                    help="JSON rows (hints, PSNR, ΔE, obedience) of the method's colorizer to write")
    args = ap.parse_args()
    params = stage_params()

    from pipeline.evaluation.evaluate import evaluate
    from pipeline.evaluation.grids import evaluation_grid

    metrics, shown = evaluate(Path(args.prepared), Path(args.scan_model),
                              {"scangen": Path(args.colorizer), "greyscale": Path(args.greyscale_colorizer)},
                              device=params.colorizer.device, batch=params.colorizer.eval_batch)
    with atomic_path(args.grid) as tmp:
        evaluation_grid(shown).save(tmp, format="PNG")
    rows = metrics.get("scangen", {}).pop("hint_rows", [])
    metrics.get("greyscale", {}).pop("hint_rows", None)  # in the metrics already; the plot shows the method
    write_json(args.hints_plot, rows)
    write_json(args.metrics, {"eval": metrics})


if __name__ == "__main__":
    main()
