"""What `make repro` ends with: the results a user came for, beside their baselines, in a
table that fits a 100-column terminal (`dvc metrics show` keeps the full record).

Reads the `evaluate` stage's metrics (`metrics/evaluate.json`): scan extraction against the
true scans, next to greyscale(color); both colorizers on true scans and on generated scans;
the benchmark's ceiling and floor (the oracle that paints each region its material's mean
color, and the same without color); the scan domain gap; ΔE per material; the thesis verdict. Without true scans (real data) the scan rows and the true-scan rows are
absent and the table says so.
"""

from __future__ import annotations

import json
from pathlib import Path

WIDTH = 100
_COLOR_COLUMNS = (("psnr", "PSNR dB ↑", ".2f"), ("delta_e", "ΔE2000 ↓", ".2f"), ("ssim", "SSIM ↑", ".3f"),
                  ("colorfulness", "colorful", ".1f"), ("line_fidelity", "lines ↑", ".3f"))


def load_evaluation(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation metrics yet; run `dvc repro` (or `dvc pull`) first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a metrics JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("eval"), dict):
        raise ValueError(f"{path}: no 'eval' section; is this the evaluate stage's metrics file?")
    return data["eval"]


def _material_rows(ev: dict) -> list[str]:
    """ΔE2000 on true scans per group of materials, for the colorizers and the oracle."""
    rows = [(label, ev[key]["materials"]) for key, label in
            (("scangen", "generated scans"), ("greyscale", "greyscale(color)"), ("oracle", "oracle (ceiling)"))
            if isinstance(ev.get(key, {}).get("materials"), dict)]
    if not rows:
        return []
    from pipeline.data.materials import GROUPS

    groups = [g for g in GROUPS if any(g in r for _, r in rows)]
    out = ["", f"{'ΔE2000 ↓ by material, true scans':<37}" + "".join(f"{g:>9}" for g in groups)]
    for label, r in rows:
        out.append(f"  {label:<35}" + "".join(f"{r[g]:>9.2f}" if g in r else f"{'':>9}" for g in groups))
    return out


def summary_table(ev: dict) -> str:
    """The evaluation as a few short tables (every line at most WIDTH characters)."""
    out = [f"Synthetic holdout, {ev.get('holdout_images', '?')} images "
           f"(full record: dvc metrics show)", ""]
    scan = ev.get("scan")
    if scan:
        out.append(f"{'scan extraction vs. the true scans':<40}{'L1 ↓':>10}{'PSNR dB ↑':>12}{'SSIM ↑':>10}")
        for name, label in (("scangen", "scan generator"), ("greyscale", "greyscale(color), the baseline")):
            out.append(f"  {label:<38}{scan[f'{name}_l1']:>10.3f}{scan[f'{name}_psnr']:>12.2f}"
                       f"{scan[f'{name}_ssim']:>10.3f}")
        out.append("")
    truth = ev.get("ground_truth", {}).get("colorfulness")
    header = f"{'colorizer trained on':<24}{'input':<16}" + "".join(f"{h:>12}" for _, h, _ in _COLOR_COLUMNS)
    out.append(header)
    for model, label in (("scangen", "generated scans"), ("greyscale", "greyscale(color)")):
        for inp, inp_label in (("true_scan", "true scan"), ("generated_scan", "generated scan")):
            row = ev.get(model, {}).get(inp)
            if row:
                out.append(f"{label:<24}{inp_label:<16}"
                           + "".join(f"{row[k]:>12{fmt}}" for k, _, fmt in _COLOR_COLUMNS))
    for key, label in (("oracle", "oracle: material means (ceiling)"), ("grey_fill", "the same, no color (floor)")):
        row = ev.get(key)
        if row:
            out.append(f"{label:<40}" + "".join(f"{row[k]:>12{fmt}}" for k, _, fmt in _COLOR_COLUMNS))
    if truth is not None:
        out.append(f"{'ground truth':<40}" + " " * 36 + f"{truth:>12.1f}")
    gaps = [(label, ev[m]["gap_delta_e"]) for m, label in (("scangen", "method"), ("greyscale", "greyscale-trained"))
            if "gap_delta_e" in ev.get(m, {})]
    if gaps:
        out += ["", "scan domain gap, ΔE on true scans − on generated scans (lower: fewer generated-only cues)",
                "  " + ", ".join(f"{label} {gap:+.2f}" for label, gap in gaps)]
    out += _material_rows(ev)
    hints = ev.get("scangen", {}).get("hints")
    if hints:
        out += ["", f"{'color hints (generated-scan colorizer)':<40}{'PSNR dB ↑':>12}{'ΔE2000 ↓':>12}"
                    f"{'colorful':>12}{'obeyed ΔE ↓':>14}"]
        for key in sorted((k for k in hints if k.startswith("n")), key=lambda k: int(k[1:])):
            row = hints[key]
            obey = f"{row['obedience_delta_e']:>14.2f}" if "obedience_delta_e" in row else f"{'':>14}"
            out.append(f"  {key[1:] + ' hints':<38}{row['psnr']:>12.2f}{row['delta_e']:>12.2f}"
                       f"{row['colorfulness']:>12.1f}{obey}")
        b = hints.get("bleed", {})
        if "ring_delta_e" in b:
            obeyed = f", ends ΔE {b['obedience_delta_e']:.2f} from it" if "obedience_delta_e" in b else ""
            out.append(f"  a contrary hint: its region moves ΔE {b['inside_delta_e']:.1f}{obeyed}; "
                       f"the next region {b['ring_delta_e']:.2f}")
    thesis = ev.get("thesis")
    out.append("")
    if thesis:
        verdict = "wins" if thesis["generated_scans_win"] else "does not win"
        gain = thesis["delta_e_gain"]
        out.append(f"Thesis test (true scans): the generated-scan model {verdict}: "
                   f"PSNR {thesis['psnr_gain_db']:+.2f} dB, ΔE {'lower' if gain >= 0 else 'higher'} "
                   f"by {abs(gain):.2f}.")
        out.append("One run on one machine: compare seeds (`dvc exp run -S seed=N`) before trusting a margin.")
    else:
        out.append("No true scans in this data (real pages): the rows above are colorize(scangen(color)).")
    assert all(len(line) <= WIDTH for line in out), "summary wider than a 100-column terminal"
    return "\n".join(out)
