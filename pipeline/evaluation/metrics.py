"""Quality measures for the evaluation (README, "evaluate").

PSNR and SSIM come from torchmetrics (Gaussian-window SSIM of Wang et al. 2004); L1 is the
mean absolute difference; CIEDE2000 ΔE from scikit-image; colorfulness after Hasler &
Süsstrunk (2003); line fidelity: the share of the input scan's line pixels still dark in
the output. Per-image functions return one value per image so callers can average or
report spread.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.pixels import LUMA, luma


def l1_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred.float() - target.float()).abs().flatten(1).mean(1)


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(pred.float(), target.float(), data_range=1.0, reduction="none",
                                   dim=(1, 2, 3))


SSIM_WINDOW = 11  # px: the Gaussian window (sigma 1.5) of Wang et al. 2004; images need sides this long


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(pred.float(), target.float(), data_range=1.0,
                                               kernel_size=SSIM_WINDOW, reduction="none")


def compare(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L1, PSNR (dB) and SSIM of `pred` against `target`."""
    return {"l1": l1_per_image(pred, target), "psnr": psnr_per_image(pred, target),
            "ssim": ssim_per_image(pred, target)}


LINE_DARK = 0.35  # a scan pixel below this (0..1) is line art


def colorfulness(rgb_u8: np.ndarray) -> np.ndarray:
    """Hasler–Süsstrunk colorfulness per image of uint8 (N, H, W, 3)."""
    x = rgb_u8.astype(np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    std = np.sqrt(rg.reshape(len(x), -1).std(1) ** 2 + yb.reshape(len(x), -1).std(1) ** 2)
    mean = np.sqrt(rg.reshape(len(x), -1).mean(1) ** 2 + yb.reshape(len(x), -1).mean(1) ** 2)
    return std + 0.3 * mean


def lab(rgb_u8: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of uint8 RGB (..., 3), as float64 (..., 3)."""
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb_u8, np.uint8))


def delta_e_map(a_lab: np.ndarray, b_lab: np.ndarray) -> np.ndarray:
    """CIEDE2000 ΔE between two CIELAB arrays (..., 3), element by element."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(a_lab, b_lab)


def delta_e(pred_u8: np.ndarray, target_u8: np.ndarray) -> np.ndarray:
    """Mean CIEDE2000 ΔE per image."""
    return np.array([delta_e_map(lab(p), lab(t)).mean() for p, t in zip(pred_u8, target_u8)])


ACCURATE_DELTA_E = 10.0  # ΔE2000 within which a color reads as the right one at a glance
CHROMATIC = 10.0  # CIELAB chroma above which a truth pixel counts as colored (not paper, ink or grey)


def delta_e_by_group(pred_u8: np.ndarray, target_u8: np.ndarray, masks: dict[str, np.ndarray],
                     maps: list[np.ndarray] | None = None) -> dict[str, float]:
    """Mean ΔE2000 over all pixels of each mask (bool (N, H, W), one per group): pixels,
    not pictures, weigh alike (a sky fills many, an iris few); a group no picture has is
    left out. `maps`: the per-image ΔE maps, when the caller has them already."""
    maps = maps if maps is not None else [delta_e_map(lab(p), lab(t)) for p, t in zip(pred_u8, target_u8)]
    sums = {group: 0.0 for group in masks}
    counts = {group: 0 for group in masks}
    for i, de in enumerate(maps):
        for group, mask in masks.items():
            sums[group] += float(de[mask[i]].sum())
            counts[group] += int(mask[i].sum())
    return {group: round(sums[group] / counts[group], 4) for group in masks if counts[group]}


def color_accuracy(pred_u8: np.ndarray, target_u8: np.ndarray) -> np.ndarray:
    """Per image: the share of the truth's colored pixels (chroma above CHROMATIC) that the
    colorization paints within ACCURATE_DELTA_E of the truth: hair, eyes, clothes, skies
    the right color, whatever the paper and the ink do (NaN for a truth without color)."""
    out = []
    for p, t in zip(pred_u8, target_u8):
        lab_t = lab(t)
        colored = np.hypot(lab_t[..., 1], lab_t[..., 2]) > CHROMATIC
        if not colored.any():
            out.append(np.nan)
            continue
        out.append(float((delta_e_map(lab(p[colored]), lab_t[colored]) <= ACCURATE_DELTA_E).mean()))
    return np.array(out)


def line_fidelity(scan_u8: np.ndarray, out_u8: np.ndarray, strokes: np.ndarray | None = None) -> np.ndarray:
    """Share of the scan's line pixels that are at least as dark (luma) in the colorization
    as in the scan, per image: 1.0 when the page's own ink comes through. `strokes` (N, H, W)
    bool: the pixels that are strokes (`pipeline.colorist.arrays.stroke_masks`: not black
    fills, which take a color, nor screentone, which becomes shading); None: every dark pixel."""
    scan = scan_u8[..., 0].astype(np.float32)
    lines = scan / 255 < LINE_DARK
    if strokes is not None:
        lines &= strokes
    out_luma = out_u8.astype(np.float32) @ np.array(LUMA, np.float32)
    kept = (out_luma <= scan + 0.5) & lines  # half a grey level: the rounding of the luma weights
    n = lines.reshape(len(lines), -1).sum(1)
    return np.where(n > 0, kept.reshape(len(kept), -1).sum(1) / np.maximum(n, 1), 1.0)


def color_metrics(pred_u8: np.ndarray, target_u8: np.ndarray, scan_u8: np.ndarray,
                  strokes: np.ndarray | None = None, masks: dict[str, np.ndarray] | None = None) -> dict:
    """Mean PSNR, SSIM, ΔE2000, colorfulness and line fidelity of colorizations `pred_u8`
    against `target_u8` (uint8 NHWC RGB), the lines judged on the input scans' `strokes`;
    with `masks` (group -> bool (N, H, W)), also "materials": ΔE per group, from the same
    ΔE maps."""
    p = torch.from_numpy(pred_u8).permute(0, 3, 1, 2).float() / 255
    t = torch.from_numpy(target_u8).permute(0, 3, 1, 2).float() / 255
    maps = [delta_e_map(lab(a), lab(b)) for a, b in zip(pred_u8, target_u8)]
    out = {
        "psnr": round(float(psnr_per_image(p, t).clamp(max=100).mean()), 4),
        "ssim": round(float(ssim_per_image(p, t).mean()), 4),
        "delta_e": round(float(np.mean([m.mean() for m in maps])), 4),
        "colorfulness": round(float(colorfulness(pred_u8).mean()), 3),
        "line_fidelity": round(float(line_fidelity(scan_u8, pred_u8, strokes).mean()), 4),
    }
    if masks is not None:
        out["materials"] = delta_e_by_group(pred_u8, target_u8, masks, maps)
    return out


def scan_quality(pred: np.ndarray, color: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """L1 / PSNR / SSIM of generated scans `pred` = scangen(color) and of greyscale(color)
    against the true scans (all uint8 NHWC; the caller generates `pred` once)."""
    pred_t = torch.from_numpy(np.asarray(pred)).permute(0, 3, 1, 2).float() / 255
    gt = torch.from_numpy(np.asarray(truth)).permute(0, 3, 1, 2).float() / 255
    grey = luma(torch.from_numpy(np.asarray(color)).permute(0, 3, 1, 2).float()).round() / 255
    out = {}
    for name, x in (("scangen", pred_t), ("greyscale", grey)):
        for metric, values in compare(x, gt).items():
            out[f"{name}_{metric}"] = round(float(values.clamp(max=100).mean()), 4)
    out["images"] = len(color)
    return out
