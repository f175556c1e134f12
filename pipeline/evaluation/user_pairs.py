"""`onepunch evaluate PAIRS`: the evaluation's measures on a user's own (scan, color) pairs.

Real pages have no synthetic ground truth; whoever holds real pairs (a chapter's line-art
scan and its official colored edition) checks the published models with this. Layout:

    PAIRS/scan/NAME.*    the line-art scans
    PAIRS/color/NAME.*   the colored pages, matched to the scans by NAME

or, as line-art/coloring datasets often ship them, side by side in one folder:

    PAIRS/NAME_bw.*      the line art
    PAIRS/NAME_color.*   its coloring

Any size or mode; a color page of another size than its scan is resized to the scan's.
Measured per pair, then averaged (mean and std over pairs):
- colorize(scan) against the color page: PSNR, SSIM, ΔE2000, color accuracy (the share of
  the truth's colored pixels painted within ΔE 10), colorfulness (next to the truth's),
  line fidelity — the real use case;
- scangen(color) against the scan: L1, PSNR, SSIM, next to greyscale(color).
A file without its partner, one that cannot be read or decoded, and a pair smaller than the
SSIM window (`pipeline.evaluation.metrics.SSIM_WINDOW`) are named, skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.folders import IMAGE_SUFFIXES


@dataclass
class PairSet:
    pairs: list[tuple[str, Path, Path]]  # (name, scan, color)
    unmatched: list[str] = field(default_factory=list)  # messages naming the lonely files


def find_pairs(folder: Path) -> PairSet:
    """Match PAIRS/scan/NAME.* with PAIRS/color/NAME.* by NAME; without those folders,
    PAIRS/NAME_bw.* with PAIRS/NAME_color.*."""
    folder = Path(folder)
    if not (folder / "scan").is_dir() and not (folder / "color").is_dir() and folder.is_dir():
        flat = _images(folder)
        scans = {stem[:-3]: p for stem, p in flat.items() if stem.endswith("_bw") and len(stem) > 3}
        colors = {stem[:-6]: p for stem, p in flat.items() if stem.endswith("_color") and len(stem) > 6}
        if scans or colors:
            return _matched(scans, colors, "{}_color.*", "{}_bw.*")
    sides = {}
    for side in ("scan", "color"):
        d = folder / side
        if not d.is_dir():
            raise FileNotFoundError(f"{folder}: no {side}/ folder; expected {folder}/scan/NAME.png and "
                                    f"{folder}/color/NAME.png (matching names), or {folder}/NAME_bw.png and "
                                    f"{folder}/NAME_color.png")
        sides[side] = _images(d)
    return _matched(sides["scan"], sides["color"], "color/{}.*", "scan/{}.*")


def _images(d: Path) -> dict[str, Path]:
    """stem -> image file in folder `d` (one per stem)."""
    files: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            if p.stem in files:
                raise ValueError(f"{d}: two files named {p.stem!r} ({files[p.stem].name}, {p.name}); "
                                 "keep one per name")
            files[p.stem] = p
    return files


def _matched(scans: dict[str, Path], colors: dict[str, Path], color_name: str, scan_name: str) -> PairSet:
    pairs = [(name, scans[name], colors[name]) for name in sorted(scans.keys() & colors.keys())]
    unmatched = [f"{scans[n]}: no {color_name.format(n)} to compare with" for n in sorted(scans.keys() - colors.keys())]
    unmatched += [f"{colors[n]}: no {scan_name.format(n)} to compare with"
                  for n in sorted(colors.keys() - scans.keys())]
    return PairSet(pairs, unmatched)


def evaluate_pairs(folder: Path, colorizer_path: Path, scan_model_path: Path | None, device: str = "auto",
                   work_size: int | None = None, max_pixels: int = 200_000_000,
                   progress: bool = True) -> dict:
    """Metrics over the pairs in `folder` (see the module docstring), with the skipped files."""
    from PIL import Image
    from tqdm import tqdm

    from pipeline.colorist.arrays import stroke_masks
    from pipeline.colorist.page import colorize_image, load_networks, scan_image
    from pipeline.evaluation.metrics import (
        SSIM_WINDOW,
        color_accuracy,
        color_metrics,
        colorfulness,
        scan_quality,
    )
    from pipeline.imaging import DecodeError, decode_image

    found = find_pairs(folder)
    nets = load_networks(colorizer_path, scan_model_path, device, scan_generator_required=True)
    colorizer, scangen = nets.colorizer, nets.scan_generator
    rows: dict[str, list[float]] = {}
    skipped = list(found.unmatched)
    for name, scan_path, color_path in tqdm(found.pairs, desc="pairs", unit="pair", disable=not progress):
        try:
            scan_img = decode_image(scan_path, max_pixels=max_pixels, name=str(scan_path)).convert("L")
            color_img = decode_image(color_path, max_pixels=max_pixels, name=str(color_path))
        except DecodeError as exc:
            skipped.append(f"{exc.name}: {exc.reason}: {exc.detail}")
            continue
        except OSError as exc:  # no read permission, an I/O error: that pair only
            skipped.append(f"{exc.filename or scan_path}: unreadable: {exc.strerror or exc}")
            continue
        if min(scan_img.size) < SSIM_WINDOW:
            skipped.append(f"{scan_path}: {scan_img.width}x{scan_img.height} is smaller than the {SSIM_WINDOW}-px "
                           "SSIM window; pair skipped")
            continue
        if color_img.size != scan_img.size:
            color_img = color_img.resize(scan_img.size, Image.Resampling.LANCZOS)
        scan = np.array(scan_img, np.uint8)[None, ..., None]
        color = np.array(color_img, np.uint8)[None]
        pred = np.array(colorize_image(colorizer, None, scan_img.convert("RGB"), work_size, nets.device, "scan"))[None]
        values = {f"colorized_{k}": v for k, v in color_metrics(pred, color, scan, stroke_masks(scan)).items()}
        values["colorized_color_accuracy"] = float(color_accuracy(pred, color)[0])
        values["truth_colorfulness"] = float(colorfulness(color)[0])
        if scangen is not None:
            approx = np.array(scan_image(scangen, color_img, work_size, nets.device))[None, ..., None]
            values.update({k: v for k, v in scan_quality(approx, color, scan).items() if k != "images"})
        for k, v in values.items():
            if np.isfinite(v):  # color accuracy of a truth without color: no measure
                rows.setdefault(k, []).append(float(v))
    summary = {k: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)} for k, v in rows.items()}
    return {"pairs": len(next(iter(rows.values()), [])), "skipped": skipped, "metrics": summary,
            "colorizer": str(colorizer_path),
            "scan_generator": None if scan_model_path is None else str(scan_model_path)}


def format_table(result: dict) -> str:
    """The metrics as an aligned text table (fits 100 columns)."""
    lines = [f"{result['pairs']} pairs ({len(result['skipped'])} files skipped)",
             f"{'measure':<28}{'mean':>12}{'std':>12}"]
    for key, v in result["metrics"].items():
        lines.append(f"{key:<28}{v['mean']:>12.4f}{v['std']:>12.4f}")
    return "\n".join(lines)
