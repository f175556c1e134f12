"""tools/seed_table.py: one run per seed from `dvc exp show --json`, mean ± std, verdicts."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from seed_table import markdown, runs_by_seed, seed_table


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


def test_where_keeps_the_runs_of_one_arm():
    """Two arms of an experiment over seeds in one `dvc exp show`: --where picks one."""
    def arm(seed, de, composite):
        e = entry(seed, de, 11.0)
        if composite is not None:
            e["data"]["params"]["params.yaml"]["data"]["colorizer"] = {"composite_l1": composite}
        return e

    show = [{"rev": "workspace", **arm(0, 10.0, False), "experiments": None},
            {"rev": "abc", **arm(0, 10.0, False),
             "experiments": [{"revs": [arm(0, 9.0, True)]}, {"revs": [arm(1, 9.1, True)]},
                             {"revs": [arm(1, 10.1, False)]}, {"revs": [arm(2, 10.3, None)]}]}]
    on = runs_by_seed(show, {"colorizer.composite_l1": "true"})
    off = runs_by_seed(show, {"colorizer.composite_l1": "false"})
    assert {s: r["scangen"]["true_scan"]["delta_e"] for s, r in on.items()} == {0: 9.0, 1: 9.1}
    assert {s: r["scangen"]["true_scan"]["delta_e"] for s, r in off.items()} == {0: 10.0, 1: 10.1}  # seed 2 lacks it
    assert len(runs_by_seed(show)) == 3


def test_gap_and_material_rows_when_the_runs_have_them():
    runs = {}
    for seed, gap, hair in ((0, 0.2, 18.0), (1, -0.1, 17.0), (2, 0.5, 16.0)):
        ev = entry(seed, 10.0, 11.0)["data"]["metrics"]["metrics/evaluate.json"]["data"]["eval"]
        ev["scangen"]["gap_delta_e"] = gap
        ev["scangen"]["materials"] = {"hair": hair, "skin": 5.0}
        ev["oracle"] = {"delta_e": 10.2, "materials": {"hair": 19.0}}
        runs[seed] = ev
    figures = seed_table(runs)["figures"]
    assert figures["domain gap ΔE, method"]["per_seed"] == [0.2, -0.1, 0.5]
    assert figures["ΔE hair, method"]["mean"] == pytest.approx(17.0) and figures["ΔE hair, oracle"]["std"] == 0.0
    assert "ΔE cloth, method" not in figures and "domain gap ΔE, greyscale-trained" not in figures  # not measured
    runs[2]["scangen"].pop("gap_delta_e")  # a seed run before the gap was measured: no row, not a wrong mean
    assert "domain gap ΔE, method" not in seed_table(runs)["figures"]
