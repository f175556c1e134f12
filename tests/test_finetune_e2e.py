"""Colorize your own series, in DVC's vocabulary, end to end with the real `dvc` CLI: a
folder source of a synthetic series and a fine-tune from the released models as one
`dvc exp run -S ...`, then `onepunch evaluate` on held-out pages of the series."""

import json
import shutil

import pytest
from dvc_project import BIN, dvc, make_repo, ran, run

from pipeline.data.synthetic.pages import write_series

pytestmark = pytest.mark.slow  # `make test` runs them; `-m 'not slow'` skips them

FINE_TUNE = ["-S", "source.kind=folder", "-S", "source.root=data/own/series",
             "-S", "cyclegan.init_from=models/init/scan_generator.pt", "-S", "cyclegan.steps=4",
             "-S", "colorizer.init_from=models/init/colorizer.pt", "-S", "colorizer.steps=8"]


def test_folder_source_and_fine_tune_as_an_experiment(tmp_path):
    path = make_repo(tmp_path / "project")
    dvc("repro", cwd=path)
    for name in ("colorizer.pt", "scan_generator.pt"):
        shutil.copy(path / "models" / name, path / "models" / "init" / name)
    write_series(path / "data" / "own" / "series", tmp_path / "heldout", pages=6, lineart=3, heldout_pages=2,
                 size=(256, 362), progress=False)
    dvc("add", "data/own/series", "models/init/colorizer.pt", "models/init/scan_generator.pt", cwd=path)
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-qm", "a series and the released models to start from"], path)

    res = dvc("exp", "run", *FINE_TUNE, cwd=path)
    out = res.stdout + res.stderr
    assert {"source", "images", "train_cyclegan", "train_colorizer@scangen", "evaluate"} <= ran(out)
    source = json.loads((path / "metrics" / "source.json").read_text())["source"]
    assert source["kind"] == "folder" and source["color"] == 6 and source["lineart"] == 3
    assert source["by_folder"] == 9 and source["unreadable"] == 0
    cyclegan = json.loads((path / "metrics" / "cyclegan.json").read_text())["scan"]
    assert cyclegan["steps"] == 4 and cyclegan["init_from"] == "models/init/scan_generator.pt"
    assert len(cyclegan["init_sha256"]) == 16
    colorizer = json.loads((path / "metrics" / "colorizer-scangen.json").read_text())["colorizer"]
    assert colorizer["steps"] == 8 and len(colorizer["init_sha256"]) == 16
    select = json.loads((path / "metrics" / "select.json").read_text())["select"]
    assert select["color_holdout"] >= 1  # a small folder still gets a holdout for the grids
    # the scan generator trained on from the released one: moved, but only a little
    import torch

    a = torch.load(path / "models" / "scan_generator.pt", weights_only=True)["state_dict"]
    b = torch.load(path / "models" / "init" / "scan_generator.pt", weights_only=True)["state_dict"]
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved
    assert all((a[k] - b[k]).norm() < 0.5 * b[k].norm() + 1e-3 for k in moved)
    shown = json.dumps(json.loads(dvc("exp", "show", "--json", cwd=path).stdout))
    assert "models/init/colorizer.pt" in shown and "data/own/series" in shown

    # the fine-tuned colorizer on held-out pages of the series: the measures, as JSON
    report = tmp_path / "after.json"
    run([str(BIN / "onepunch"), "evaluate", str(tmp_path / "heldout"), "--model", "models/colorizer.pt",
         "--json", str(report)], path)
    metrics = json.loads(report.read_text())["metrics"]
    assert metrics["colorized_delta_e"]["mean"] > 0 and 0 <= metrics["colorized_color_accuracy"]["mean"] <= 1

    # nothing changed: nothing re-runs; DVC sees a changed file to start from
    assert ran(dvc("repro", cwd=path).stdout) == set()
    shutil.copy(path / "models" / "colorizer.pt", path / "models" / "init" / "colorizer.pt")
    status = dvc("status", cwd=path).stdout
    assert "train_colorizer@scangen" in status and "models/init" in status
