"""The `onepunch` CLI: fast help, clear errors, `scan` on any image a user has."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import CycleGANConfig
from pipeline.models.scan_generator import publish_scan_generator
from pipeline.training.cyclegan_step import build_cyclegan

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_help_is_fast_and_does_not_import_torch():
    code = "import sys, time; t=time.time(); from pipeline.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "colorization" in res.stdout
    assert time.perf_counter() - t0 < 5


def test_check_params_reports_the_bad_key(tmp_path):
    assert runner.invoke(app, ["check-params", str(ROOT / "params.yaml")]).exit_code == 0
    bad = tmp_path / "p.yaml"
    bad.write_text("images:\n  fit: stretch\n")
    res = runner.invoke(app, ["check-params", str(bad)])
    assert res.exit_code == 2 and "images.fit" in res.output


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    cfg = CycleGANConfig(generator_width=4, n_down=1, n_res=1, groups=2)
    g_scan = build_cyclegan(cfg)[0]
    path = tmp_path_factory.mktemp("m") / "scan_generator.pt"
    publish_scan_generator(g_scan, path, image_size=32, steps=0)
    return path


def test_scan_any_mode_and_size(tmp_path, model_file):
    inputs = {
        "rgba.png": Image.new("RGBA", (40, 30), (255, 0, 0, 0)),
        "palette.png": Image.new("P", (17, 9)),
        "grey.jpg": Image.new("L", (64, 100), 128),
        "tiny.png": Image.new("RGB", (1, 1), "blue"),
        "wide.png": Image.new("RGB", (1600, 40), "green"),  # a 40:1 strip
    }
    paths = []
    for name, img in inputs.items():
        p = tmp_path / name
        img.save(p)
        paths.append(str(p))
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"PK\x03\x04 this is a zip")
    out_dir = tmp_path / "out"
    res = runner.invoke(app, ["scan", *paths, str(bad), "--model", str(model_file), "-o", str(out_dir),
                              "--device", "cpu"])
    assert res.exit_code == 1  # one file failed
    assert "notes.png" in res.output and "not_an_image" in res.output
    for name, img in inputs.items():
        out = Image.open(out_dir / f"{Path(name).stem}.scan.png")
        assert out.mode == "L" and out.size == img.size


def test_scan_missing_model_is_clear(tmp_path):
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    res = runner.invoke(app, ["scan", str(img), "--model", str(tmp_path / "none.pt")])
    assert res.exit_code == 2 and "dvc pull" in res.output
