"""tools/seed_table.py: one run per seed from `dvc exp show --json`, mean ± std, verdicts."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from seed_table import markdown, runs_by_seed, seed_table  # noqa: E402


def entry(seed: int, de_method: float, de_grey: float) -> dict:
    ev = {"scangen": {"true_scan": {"delta_e": de_method, "psnr": 15.0, "colorfulness": 20.0}},
          "greyscale": {"true_scan": {"delta_e": de_grey, "psnr": 14.0, "colorfulness": 10.0}}}
    return {"rev": f"r{seed}", "data": {"params": {"params.yaml": {"data": {"seed": seed}}},
                                        "metrics": {"metrics/evaluate.json": {"data": {"eval": ev}}}}}


def test_mean_std_and_verdicts():
    show = [{"rev": "workspace", **entry(0, 10.0, 11.0), "experiments": None},
            {"rev": "abc", **entry(0, 99.0, 99.0),  # HEAD's seed 0 again: the workspace's run is kept
             "experiments": [{"revs": [entry(1, 10.5, 11.4)]}, {"revs": [entry(2, 10.2, 10.1)]},
                             # still running: its metrics are the baseline's, not its own
                             {"executor": {"state": "running"}, "revs": [entry(3, 10.0, 11.0)]}]}]
    runs = runs_by_seed(show)
    assert sorted(runs) == [0, 1, 2] and runs[0]["scangen"]["true_scan"]["delta_e"] == 10.0
    table = seed_table(runs)
    de = table["figures"]["colorizer ΔE, method"]
    assert de["per_seed"] == [10.0, 10.5, 10.2] and de["mean"] == pytest.approx(10.2333, abs=1e-3)
    (cmp_de, cmp_psnr) = table["comparisons"]
    assert cmp_de["margins"] == pytest.approx([1.0, 0.9, -0.1]) and not cmp_de["every_seed"]
    assert cmp_psnr["every_seed"] and cmp_psnr["std"] == 0.0 and cmp_psnr["margin_over_2std"]
    text = markdown(table)
    assert "| colorizer ΔE: method < greyscale-trained | +1.000, +0.900, -0.100 |" in text
