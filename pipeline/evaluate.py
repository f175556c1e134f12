"""Evaluation on the synthetic holdout, against ground truth (DESIGN.md "Evaluation").

For each colorizer (trained on generated scans, or on greyscale conversions):
- colorize(true scan) vs. the true color image — the real use case;
- colorize(scangen(color)) vs. the color image — the pipeline's own loop;
measured by PSNR and SSIM (torchmetrics), CIEDE2000 ΔE (scikit-image), colorfulness
(Hasler & Süsstrunk 2003) next to the ground truth's, and line fidelity: the share of the
input scan's line pixels that are still dark in the output.

On real data (no true scans) only the second is possible: colorize(scangen(color)) against
the color image is the cycle error, with colorfulness and line fidelity beside it.

The thesis test: the method is worth its complexity only if the generated-scan colorizer
beats the greyscale-trained one on true scans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

LINE_DARK = 0.35  # a scan pixel below this (0..1) is line art
OUTPUT_DARK = 0.5  # ... and counts as kept when the output's luma is below this


def colorfulness(rgb_u8: np.ndarray) -> np.ndarray:
    """Hasler–Süsstrunk colorfulness per image of uint8 (N, H, W, 3)."""
    x = rgb_u8.astype(np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    std = np.sqrt(rg.reshape(len(x), -1).std(1) ** 2 + yb.reshape(len(x), -1).std(1) ** 2)
    mean = np.sqrt(rg.reshape(len(x), -1).mean(1) ** 2 + yb.reshape(len(x), -1).mean(1) ** 2)
    return std + 0.3 * mean


def delta_e(pred_u8: np.ndarray, target_u8: np.ndarray) -> np.ndarray:
    """Mean CIEDE2000 ΔE per image."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    return np.array([deltaE_ciede2000(rgb2lab(p), rgb2lab(t)).mean() for p, t in zip(pred_u8, target_u8)])


def line_fidelity(scan_u8: np.ndarray, out_u8: np.ndarray) -> np.ndarray:
    """Share of the scan's line pixels that stay dark in the colorization, per image."""
    lines = scan_u8[..., 0].astype(np.float32) / 255 < LINE_DARK
    from pipeline.gan import LUMA

    luma = (out_u8.astype(np.float32) @ np.array(LUMA, np.float32)) / 255
    kept = (luma < OUTPUT_DARK) & lines
    n = lines.reshape(len(lines), -1).sum(1)
    return np.where(n > 0, kept.reshape(len(kept), -1).sum(1) / np.maximum(n, 1), 1.0)


def color_metrics(pred_u8: np.ndarray, target_u8: np.ndarray, scan_u8: np.ndarray) -> dict[str, float]:
    from pipeline.quality import psnr_per_image, ssim_per_image

    p = torch.from_numpy(pred_u8).permute(0, 3, 1, 2).float() / 255
    t = torch.from_numpy(target_u8).permute(0, 3, 1, 2).float() / 255
    return {
        "psnr": round(float(psnr_per_image(p, t).clamp(max=100).mean()), 4),
        "ssim": round(float(ssim_per_image(p, t).mean()), 4),
        "delta_e": round(float(delta_e(pred_u8, target_u8).mean()), 4),
        "colorfulness": round(float(colorfulness(pred_u8).mean()), 3),
        "line_fidelity": round(float(line_fidelity(scan_u8, pred_u8).mean()), 4),
    }


def evaluate(prepared: Path, scan_model: Path, colorizers: dict[str, Path], device: str = "auto",
             batch: int = 64) -> tuple[dict, dict[str, np.ndarray]]:
    """Metrics for every colorizer, plus the arrays the evaluation grid shows."""
    from pipeline.colorization import colorize_arrays, load_colorizer
    from pipeline.scangen import generate_scans, load_scan_generator, scan_quality
    from pipeline.scangen_stage import holdout_with_truth
    from pipeline.training import setup_runtime

    color, truth = holdout_with_truth(prepared)
    rt = setup_runtime(device)
    scangen = load_scan_generator(scan_model, rt.device)
    approx = generate_scans(scangen, color, rt, batch)
    metrics: dict = {"holdout_images": len(color),
                     "ground_truth": {"colorfulness": round(float(colorfulness(color).mean()), 3)}}
    shown = {"scan_approximation": approx, "ground_truth": color}
    if truth is not None:
        metrics["scan"] = {k: v for k, v in scan_quality(approx, color, truth).items() if k != "images"}
        shown["true_scan"] = truth
    for name, path in colorizers.items():
        model = load_colorizer(path, rt.device)
        on_approx = colorize_arrays(model, approx, rt, batch)
        # real data has no true scans: the loop color -> scan -> color (cycle error) is what can be measured
        metrics[name] = {"generated_scan": color_metrics(on_approx, color, approx)}
        if truth is not None:
            on_true = colorize_arrays(model, truth, rt, batch)
            metrics[name]["true_scan"] = color_metrics(on_true, color, truth)
            shown[f"colorized_{name}"] = on_true
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


def evaluation_grid(shown: dict[str, np.ndarray], n: int = 8):
    """PIL grid, one column per holdout image; rows: true scan, scan approximation,
    colorization (generated-scan model), colorization (greyscale model), ground truth."""
    import torchvision
    from PIL import Image

    order = ["true_scan", "scan_approximation", "colorized_scangen", "colorized_greyscale", "ground_truth"]
    idx = np.linspace(0, len(shown["ground_truth"]) - 1, min(n, len(shown["ground_truth"]))).astype(int)
    rows = []
    for key in order:
        if key in shown:
            x = torch.from_numpy(np.ascontiguousarray(shown[key][idx])).permute(0, 3, 1, 2)
            rows.append(x.expand(-1, 3, -1, -1))
    grid = torchvision.utils.make_grid(torch.cat(rows), nrow=len(idx), padding=2, pad_value=128)
    img = Image.fromarray(grid.permute(1, 2, 0).numpy())
    return img.resize((img.width * 3, img.height * 3), Image.NEAREST)
