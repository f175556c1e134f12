"""Evaluation: the quality measures, the thesis test on published models, and those models in
`onepunch colorize`."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import publish_tiny_scan_generator, smooth
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.colorist.arrays import colorize_arrays
from pipeline.config import ColorizerConfig
from pipeline.data.materials import CODE
from pipeline.evaluation.evaluate import evaluate
from pipeline.evaluation.grids import evaluation_grid
from pipeline.evaluation.metrics import (
    colorfulness,
    delta_e,
    delta_e_by_group,
    line_fidelity,
)
from pipeline.models.colorizer import load_colorizer, publish_colorizer
from pipeline.pixels import greyscale_u8
from pipeline.runtime import Runtime
from pipeline.training.colorizer_step import colorizer_step, make_state

CPU = Runtime(device=torch.device("cpu"))
TINY = ColorizerConfig(steps=40, batch_size=2, crop=0, hints_max=0, width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=4,
                       flip=False, rotate_deg=0.0, shift=0.0)


def test_metric_functions():
    grey = np.full((2, 8, 8, 3), 128, np.uint8)
    assert np.allclose(colorfulness(grey), 0)
    vivid = np.zeros((2, 8, 8, 3), np.uint8)
    vivid[:, :4, :, 0] = 255
    vivid[:, 4:, :, 2] = 255
    assert (colorfulness(vivid) > 50).all()
    assert np.allclose(delta_e(vivid, vivid), 0) and (delta_e(vivid, grey) > 10).all()
    scan = np.full((1, 8, 8, 1), 255, np.uint8)
    scan[0, 3] = 0  # one line row
    kept = np.full((1, 8, 8, 3), 200, np.uint8)
    kept[0, 3] = 0  # the line as dark as the scan's ink
    lighter = kept.copy()
    lighter[0, 3, :4] = 20  # half the line a little lighter than the ink
    lost = np.full((1, 8, 8, 3), 200, np.uint8)
    assert line_fidelity(scan, kept)[0] == 1.0 and line_fidelity(scan, lost)[0] == 0.0
    assert line_fidelity(scan, lighter)[0] == 0.5
    # ΔE per group: over the group's pixels only, pixels weighing alike; absent groups left out
    masks = {"left": np.zeros((2, 8, 8), bool), "none": np.zeros((2, 8, 8), bool)}
    masks["left"][0, :, :4] = True
    assert delta_e_by_group(vivid, vivid, masks) == {"left": 0.0}
    off = vivid.copy()
    off[0, :, :4] = grey[0, :, :4]
    assert delta_e_by_group(off, vivid, masks)["left"] > 10 and delta_e(off, vivid)[1] == 0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    publish_tiny_scan_generator(d / "scan.pt")
    colors = smooth(4, 3)
    for variant in ("scangen", "greyscale"):
        state = make_state(TINY, 1e-3, CPU, greyscale_u8(colors), colors, seed=1 if variant == "scangen" else 2)
        colorizer_step(state, TINY, CPU)
        publish_colorizer(state.models["G"], d / f"{variant}.pt", image_size=32, steps=1, variant=variant)
    return d


def test_published_colorizer_roundtrip(models):
    g = load_colorizer(models / "scangen.pt")
    scans = greyscale_u8(smooth(3, 3))
    a = colorize_arrays(g, scans, CPU)
    assert a.shape == (3, 32, 32, 3) and a.dtype == np.uint8
    assert torch.load(models / "scangen.pt", weights_only=True)["variant"] == "scangen"


def test_evaluate_produces_both_metric_sets_and_the_thesis_verdict(models, tmp_path):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    colors = smooth(5, 3, seed=4)
    np.save(prepared / "color-holdout-00000.npy", colors)
    np.save(prepared / "color-holdout-gt-00000.npy", greyscale_u8(colors))
    codes = np.full(colors.shape[:3], CODE["backdrop"], np.uint8)
    codes[:, :10] = CODE["hair"]
    codes[:, 10:20] = CODE["accent"]  # counted with cloth
    np.save(prepared / "color-holdout-materials-00000.npy", codes)
    metrics, shown = evaluate(prepared, models / "scan.pt",
                              {"scangen": models / "scangen.pt", "greyscale": models / "greyscale.pt"}, "cpu")
    for variant in ("scangen", "greyscale"):
        for which in ("true_scan", "generated_scan"):
            m = metrics[variant][which]
            assert set(m) == {"psnr", "ssim", "delta_e", "colorfulness", "line_fidelity"}
            assert all(np.isfinite(v) for v in m.values())
        v = metrics[variant]
        assert v["gap_delta_e"] == pytest.approx(v["true_scan"]["delta_e"] - v["generated_scan"]["delta_e"], abs=2e-4)
        assert set(v["materials"]) == {"hair", "cloth", "backdrop"}  # the groups the holdout has
        # the groups' pixel-weighted ΔE average back to the whole pictures' (no padding here)
        whole = (10 * v["materials"]["hair"] + 10 * v["materials"]["cloth"] + 12 * v["materials"]["backdrop"]) / 32
        assert whole == pytest.approx(v["true_scan"]["delta_e"], abs=1e-3)
    assert isinstance(metrics["thesis"]["generated_scans_win"], bool)
    assert metrics["scan"]["greyscale_ssim"] > 0.99  # the test's truth is the greyscale itself
    grid = evaluation_grid(shown)
    assert grid.size[1] > grid.size[0] / 8 * 4  # five rows of images


def test_colorize_cli_any_input(models, tmp_path):
    runner = CliRunner()
    inputs = {"rgba.png": Image.new("RGBA", (40, 30), (0, 0, 0, 0)), "pal.png": Image.new("P", (17, 9)),
              "grey.jpg": Image.new("L", (64, 100), 200), "tiny.png": Image.new("L", (1, 1)),
              "colored.png": Image.new("RGB", (50, 50), (220, 40, 40))}
    paths = []
    for name, img in inputs.items():
        img.save(tmp_path / name)
        paths.append(str(tmp_path / name))
    big = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(big)
    res = runner.invoke(app, ["colorize", *paths, str(big), "--model", str(models / "scangen.pt"),
                              "--scan-model", str(models / "scan.pt"), "-o", str(tmp_path / "out"),
                              "--max-pixels", "50000", "--device", "cpu"])
    assert res.exit_code == 1 and "big.png" in res.output and "too_large" in res.output
    for name, img in inputs.items():
        out = Image.open(tmp_path / "out" / f"{Path(name).stem}.color.png")
        assert out.mode == "RGB" and out.size == img.size
    missing = runner.invoke(app, ["colorize", paths[0], "--model", str(tmp_path / "none.pt")])
    assert missing.exit_code == 2 and "dvc pull" in missing.output


def test_evaluate_without_ground_truth_reports_the_cycle(models, tmp_path):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    np.save(prepared / "color-holdout-00000.npy", smooth(3, 3, seed=5))
    metrics, shown = evaluate(prepared, models / "scan.pt",
                              {"scangen": models / "scangen.pt", "greyscale": models / "greyscale.pt"}, "cpu")
    assert "scan" not in metrics and "thesis" not in metrics
    assert set(metrics["scangen"]) == {"generated_scan"}
    assert 0 <= metrics["scangen"]["generated_scan"]["line_fidelity"] <= 1
    assert evaluation_grid(shown).size[0] > 0
