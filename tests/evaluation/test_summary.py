"""`onepunch summary`: the results beside their baselines, fitting a 100-column terminal."""

import json
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.evaluation.summary import summary_table

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
ROW = {"psnr": 13.7434, "delta_e": 19.0822, "ssim": 0.6194, "colorfulness": 8.596, "line_fidelity": 1.0}


def evaluation(with_truth: bool) -> dict:
    ev = {"holdout_images": 65, "ground_truth": {"colorfulness": 59.749},
          "scangen": {"generated_scan": dict(ROW, psnr=17.832)}, "greyscale": {"generated_scan": dict(ROW)}}
    if with_truth:
        ev["scan"] = {"scangen_l1": 0.0919, "scangen_psnr": 16.0609, "scangen_ssim": 0.6969,
                      "greyscale_l1": 0.2129, "greyscale_psnr": 11.4664, "greyscale_ssim": 0.6761}
        ev["scangen"]["true_scan"] = dict(ROW)
        ev["greyscale"]["true_scan"] = dict(ROW, psnr=10.9427, delta_e=21.027)
        ev["thesis"] = {"psnr_gain_db": 2.8007, "delta_e_gain": 1.9448, "generated_scans_win": True}
        ev["oracle"] = dict(ROW, delta_e=10.8367)
        ev["grey_fill"] = dict(ROW, delta_e=11.8061, colorfulness=0.0)
    return ev


def test_table_holds_the_results_and_baselines_in_100_columns():
    text = summary_table(evaluation(True))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "16.06" in text and "11.47" in text  # scan generator vs. greyscale PSNR
    assert "13.74" in text and "10.94" in text and "59.7" in text
    assert "oracle: material means (ceiling)" in text and "10.84" in text and "11.81" in text
    assert "model wins: PSNR +2.80 dB, ΔE lower by 1.94" in text


def test_a_losing_thesis_and_the_hint_rows_fit_too():
    ev = evaluation(True)
    ev["thesis"] = {"psnr_gain_db": -12.7734, "delta_e_gain": -10.0245, "generated_scans_win": False}
    ev["scangen"]["hints"] = {
        "n0": {"psnr": 15.5, "delta_e": 10.7, "colorfulness": 14.9},
        "n10": {"psnr": 16.3, "delta_e": 9.1, "colorfulness": 26.5, "obedience_delta_e": 0.96},
        "n2": {"psnr": 15.9, "delta_e": 10.2, "colorfulness": 21.7, "obedience_delta_e": 4.09},
        "bleed": {"ring_delta_e": 4.137, "inside_delta_e": 36.44, "obedience_delta_e": 1.697},
    }
    text = summary_table(ev)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "does not win: PSNR -12.77 dB, ΔE higher by 10.02" in text
    lines = text.splitlines()
    rows = [line for line in lines if line.strip().split(" ")[0].isdigit() and "hints" in line]
    assert [r.split()[0] for r in rows] == ["0", "2", "10"]  # in count order
    assert "0.96" in rows[2] and "moves ΔE 36.4, ends ΔE 1.70 from it; the next region 4.14" in text


def test_the_domain_gap_and_the_material_rows():
    ev = evaluation(True)
    assert "domain gap" not in summary_table(ev) and "by material" not in summary_table(ev)  # older metrics
    ev["scangen"]["gap_delta_e"], ev["greyscale"]["gap_delta_e"] = 0.2137, -0.0712
    ev["scangen"]["materials"] = {"hair": 17.514, "skin": 6.2, "backdrop": 4.1}
    ev["oracle"]["materials"] = {"hair": 19.02, "skin": 3.33, "objects": 12.5, "backdrop": 5.0}
    text = summary_table(ev)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "method +0.21, greyscale-trained -0.07" in text
    lines = text.splitlines()
    header = next(line for line in lines if "by material" in line)
    assert header.split()[-4:] == ["hair", "skin", "objects", "backdrop"]  # the groups present, in order
    method = next(line for line in lines if line.strip().startswith("generated scans") and "17.51" in line)
    oracle = next(line for line in lines if line.strip().startswith("oracle (ceiling)"))
    assert method.split()[-3:] == ["17.51", "6.20", "4.10"]  # no objects figure: a blank column

    def right_edge(line, text):
        return line.index(text) + len(text)

    # right-aligned: a figure ends where its group's name does
    assert right_edge(method, "17.51") == right_edge(header, "hair")
    assert right_edge(oracle, "12.50") == right_edge(header, "objects")
    assert right_edge(method, "4.10") == right_edge(oracle, "5.00") == right_edge(header, "backdrop")


def test_real_data_without_true_scans():
    text = summary_table(evaluation(False))
    assert "scan extraction" not in text and "No true scans" in text and "17.83" in text


def test_cli_on_the_committed_metrics_and_on_bad_files(tmp_path):
    res = runner.invoke(app, ["summary", str(ROOT / "metrics" / "evaluate.json")])
    assert res.exit_code == 0 and "Thesis test" in res.output
    res = runner.invoke(app, ["summary", str(tmp_path / "none.json")])
    assert res.exit_code == 2 and "run `dvc repro`" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scan": {}}))
    res = runner.invoke(app, ["summary", str(bad)])
    assert res.exit_code == 2 and "no 'eval' section" in res.output
