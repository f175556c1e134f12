"""tools/series_report.py: before/after figures over seeds, and two fine-tune settings compared seed by seed."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from series_report import compare_settings, figures


def evaluation(tmp_path: Path, name: str, delta_e: float) -> Path:
    measures = {m: {"mean": v, "std": 0.0} for m, v in (
        ("colorized_delta_e", delta_e), ("colorized_color_accuracy", 0.05), ("colorized_psnr", 11.0),
        ("colorized_colorfulness", 9.0), ("colorized_line_fidelity", 1.0), ("truth_colorfulness", 65.0))}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"pairs": 8, "metrics": measures}))
    return path


def test_ratio_and_seed_by_seed_margin(tmp_path):
    before = evaluation(tmp_path, "before", 16.0)
    only = figures(before, [evaluation(tmp_path, f"c{s}", v) for s, v in enumerate((15.2, 15.0, 15.1))])
    assert only["ratio_delta_e"]["per_seed"] == [0.95, 0.938, 0.944]
    assert only["after"]["colorized_delta_e"]["mean"] == pytest.approx(15.1)
    better = figures(before, [evaluation(tmp_path, f"b{s}", v) for s, v in enumerate((14.7, 14.6, 14.8))])
    cmp = compare_settings(only, better)
    assert cmp["margins"] == [0.5, 0.4, 0.3]
    assert cmp["every_seed"] and cmp["margin_over_2std"]
    mixed = figures(before, [evaluation(tmp_path, f"m{s}", v) for s, v in enumerate((14.7, 15.3, 15.0))])
    cmp = compare_settings(only, mixed)
    assert not cmp["every_seed"] and not cmp["margin_over_2std"]
    worse = figures(before, [evaluation(tmp_path, f"w{s}", v) for s, v in enumerate((15.6, 15.5, 15.7))])
    cmp = compare_settings(only, worse)  # worse in every seed: no claim for the second setting
    assert cmp["margins"] == [-0.4, -0.5, -0.6] and not cmp["every_seed"] and not cmp["margin_over_2std"]


def test_different_seed_counts_are_refused(tmp_path):
    before = evaluation(tmp_path, "before", 16.0)
    a = figures(before, [evaluation(tmp_path, "a0", 15.0), evaluation(tmp_path, "a1", 15.1)])
    b = figures(before, [evaluation(tmp_path, "b0", 14.0)])
    with pytest.raises(SystemExit, match="same seeds"):
        compare_settings(a, b)
