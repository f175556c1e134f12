"""Evaluation on the synthetic holdout, against ground truth (README, "evaluate").

For each colorizer (trained on generated scans, or on greyscale conversions):
- colorize(true scan) vs. the true color image — the real use case;
- colorize(scangen(color)) vs. the color image — the pipeline's own loop;
measured by PSNR and SSIM (torchmetrics), CIEDE2000 ΔE (scikit-image), colorfulness
(Hasler & Süsstrunk 2003) next to the ground truth's, and line fidelity: the share of the
input scan's line pixels that are still dark in the output.

On real data (no true scans) only the second is possible: colorize(scangen(color)) against
the color image is the cycle error, with colorfulness and line fidelity beside it.

The scan domain gap of each colorizer is ΔE on true scans minus ΔE on generated ones
(`gap_delta_e`): what it learned from cues that only generated scans carry. Where the
holdout knows each pixel's material (`pipeline.data.materials`), ΔE on true scans is also
reported per group of materials (hair, skin, cloth, eyes, objects, ground, backdrop), for
the colorizers and the oracle: where a colorizer recognises what it paints.

A colorizer trained with hints is measured with none (the rows above: the automatic
OnePunchGAN colorizer) and against the number of hints (`pipeline.evaluation.hint_sweep`).

The thesis test: the method is worth its complexity only if the generated-scan colorizer
beats the greyscale-trained one on true scans.

Colorizations are measured as `onepunch colorize` hands them out (`pipeline.colorist.ink`:
the input's strokes multiplied over the network's colors, black fills in a dark shade of
their color, screentone descreened; and, as `color_layer`, the network's colors alone). Beside them, what the benchmark allows (synthetic source only):
the oracle, each region flat in its material's mean color at its ink level with the true
scan multiplied over, and the same oracle with no color (`grey_fill`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.evaluation.metrics import color_metrics, colorfulness

HINT_SHOWN = 10  # the hint count whose colorizations the evaluation grid shows


def evaluate(prepared: Path, scan_model: Path, colorizers: dict[str, Path], device: str = "auto",
             batch: int = 64, hint_sweep_for: tuple[str, ...] = ("scangen",)) -> tuple[dict, dict[str, np.ndarray]]:
    """Metrics for every colorizer, plus the arrays the evaluation grid shows; the hint sweep
    for the colorizers named in hint_sweep_for that take hints (the method's, by default:
    the sweep runs the network nine times over the holdout)."""
    from pipeline.batched import generate_scans
    from pipeline.colorist.arrays import colorize_arrays, compose_arrays, stroke_masks
    from pipeline.data.materials import group_masks
    from pipeline.data.shards import (
        holdout_materials,
        holdout_oracles,
        holdout_with_truth,
    )
    from pipeline.evaluation.grids import hint_dots
    from pipeline.evaluation.hint_sweep import bleed, hint_sweep
    from pipeline.evaluation.metrics import scan_quality
    from pipeline.models.colorizer import load_colorizer, takes_hints
    from pipeline.models.scan_generator import load_scan_generator
    from pipeline.runtime import setup_runtime

    color, truth = holdout_with_truth(prepared)
    rt = setup_runtime(device)
    scangen = load_scan_generator(scan_model, rt.device)
    approx = generate_scans(scangen, color, rt, batch)
    approx_strokes = stroke_masks(approx)
    truth_strokes = None if truth is None else stroke_masks(truth)
    metrics: dict = {"holdout_images": len(color),
                     "ground_truth": {"colorfulness": round(float(colorfulness(color).mean()), 3)}}
    shown = {"scan_approximation": approx, "ground_truth": color}
    masks = None  # per-material masks of the holdout (synthetic source only)
    if truth is not None:
        metrics["scan"] = {k: v for k, v in scan_quality(approx, color, truth).items() if k != "images"}
        shown["true_scan"] = truth
        codes = holdout_materials(prepared)
        masks = None if codes is None else group_masks(codes)
        for layer, images in holdout_oracles(prepared).items():
            key = "oracle" if layer == "oracle" else "grey_fill"
            metrics[key] = color_metrics(images, color, truth, truth_strokes, masks)
    for name, path in colorizers.items():
        model = load_colorizer(path, rt.device)
        on_approx = colorize_arrays(model, approx, rt, batch)
        # real data has no true scans: the loop color -> scan -> color (cycle error) is what can be measured
        metrics[name] = {"generated_scan": color_metrics(on_approx, color, approx, approx_strokes)}
        if truth is not None:
            layer = colorize_arrays(model, truth, rt, batch, ink="none")
            on_true = compose_arrays(layer, truth)
            on_true_metrics = color_metrics(on_true, color, truth, truth_strokes, masks)
            if masks is not None:  # per material, on true scans
                metrics[name]["materials"] = on_true_metrics.pop("materials")
            metrics[name]["true_scan"] = on_true_metrics
            metrics[name]["color_layer"] = color_metrics(layer, color, truth, truth_strokes)  # before the ink goes over
            # the scan domain gap: what the colorizer loses on true scans against generated ones
            metrics[name]["gap_delta_e"] = round(metrics[name]["true_scan"]["delta_e"]
                                                 - metrics[name]["generated_scan"]["delta_e"], 4)
            shown[f"colorized_{name}"] = on_true
            if takes_hints(model) and name in hint_sweep_for:
                rows, by_count = hint_sweep(model, truth, color, rt, batch)
                metrics[name]["hints"] = {f"n{r['hints']}": {k: v for k, v in r.items() if k != "hints"}
                                          for r in rows}
                metrics[name]["hints"]["bleed"] = bleed(model, truth, color, rt, batch)
                metrics[name]["hint_rows"] = rows  # the DVC plot's data (popped by the stage)
                shown[f"hinted_{name}"] = by_count[HINT_SHOWN]
                ids, cols = zip(*by_count[f"hints_{HINT_SHOWN}"])
                shown["hints_given"] = hint_dots(truth, list(ids), list(cols))
        else:
            shown[f"colorized_{name}"] = on_approx
    if truth is None:
        return metrics, shown
    if {"scangen", "greyscale"} <= set(colorizers):
        a, b = metrics["scangen"]["true_scan"], metrics["greyscale"]["true_scan"]
        metrics["thesis"] = {"psnr_gain_db": round(a["psnr"] - b["psnr"], 4),
                             "delta_e_gain": round(b["delta_e"] - a["delta_e"], 4),
                             "generated_scans_win": bool(a["psnr"] > b["psnr"] and a["delta_e"] < b["delta_e"])}
    return metrics, shown
