"""`onepunch evaluate PAIRS`: the evaluation's measures on a folder of (scan, color) pairs,
here exported from a small synthetic mirror (its colored posts and their true scans)."""

import json

import numpy as np
import pytest
from helpers import publish_tiny_scan_generator, smooth
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.colorist.page import colorize_image
from pipeline.config import ColorizerConfig, SyntheticConfig
from pipeline.data.danbooru import image_relpath
from pipeline.data.synthetic.dataset import generate_dataset
from pipeline.evaluation.metrics import color_metrics
from pipeline.models.colorizer import load_colorizer, publish_colorizer
from pipeline.pixels import greyscale_u8
from pipeline.runtime import Runtime
from pipeline.training.colorizer_step import make_state

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """PAIRS/scan/ID.png (true scans) and PAIRS/color/ID.jpg (the colored posts), plus models."""
    import torch

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(SyntheticConfig(seed=3, n_color=4, n_scan=2, n_distractors=1, n_shards=1), root / "mirror",
                     workers=1, progress=False)
    pairs = root / "pairs"
    (pairs / "scan").mkdir(parents=True)
    (pairs / "color").mkdir()
    ids = sorted(int(p.stem) for p in (root / "mirror" / "groundtruth").iterdir())[:3]
    for i, pid in enumerate(ids):
        truth = Image.open(root / "mirror" / "groundtruth" / f"{pid}.png")
        color = Image.open(root / "mirror" / image_relpath(pid, "jpg", "512px"))
        if truth.size != color.size:
            color = color.resize(truth.size)
        truth = truth.resize((truth.width // 4, truth.height // 4))
        color = color.resize((color.width // 4 * (2 if i == 1 else 1), color.height // 4 * (2 if i == 1 else 1)))
        truth.save(pairs / "scan" / f"{pid}.png")
        color.save(pairs / "color" / f"{pid}.jpg")  # pair 1: twice the scan's size
    models = root / "models"
    models.mkdir()
    publish_tiny_scan_generator(models / "scan.pt")
    colors = smooth(2, 3)
    cfg = ColorizerConfig(width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=4, crop=0, hints_max=0)
    state = make_state(cfg, 1e-3, Runtime(device=torch.device("cpu")), greyscale_u8(colors), colors, seed=0)
    publish_colorizer(state.models["G"], models / "color.pt", image_size=32, steps=0, variant="scangen")
    return pairs, models, ids


def run(pairs, models, out, *extra):
    return runner.invoke(app, ["evaluate", str(pairs), "--model", str(models / "color.pt"), "--scan-model",
                               str(models / "scan.pt"), "--json", str(out), "--device", "cpu", *extra])


def test_evaluate_pairs_table_and_json(exported, tmp_path):
    pairs, models, ids = exported
    out = tmp_path / "eval.json"
    res = run(pairs, models, out)
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["pairs"] == 3 and result["skipped"] == []
    m = result["metrics"]
    for key in ("colorized_psnr", "colorized_ssim", "colorized_delta_e", "colorized_colorfulness",
                "colorized_line_fidelity", "truth_colorfulness", "scangen_l1", "scangen_psnr", "scangen_ssim",
                "greyscale_l1", "greyscale_psnr", "greyscale_ssim"):
        assert set(m[key]) == {"mean", "std"} and np.isfinite(m[key]["mean"]), key
    assert 0 < m["colorized_psnr"]["mean"] < 100 and 0 <= m["colorized_line_fidelity"]["mean"] <= 1
    assert "3 pairs (0 files skipped)" in res.output and "colorized_delta_e" in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 100

    # the figures are the measures of the evaluation, per pair: one pair alone reproduces them
    only = tmp_path / "one"
    for side, ext in (("scan", "png"), ("color", "jpg")):
        (only / side).mkdir(parents=True)
        (only / side / f"{ids[0]}.{ext}").write_bytes((pairs / side / f"{ids[0]}.{ext}").read_bytes())
    assert run(only, models, tmp_path / "one.json").exit_code == 0
    scan = Image.open(only / "scan" / f"{ids[0]}.png").convert("L")
    color = np.array(Image.open(only / "color" / f"{ids[0]}.jpg").convert("RGB"))[None]
    import torch

    pred = np.array(colorize_image(load_colorizer(models / "color.pt"), None, scan.convert("RGB"), None,
                                     torch.device("cpu"), "scan"))[None]
    expected = color_metrics(pred, color, np.asarray(scan)[None, ..., None])
    got = json.loads((tmp_path / "one.json").read_text())["metrics"]
    assert got["colorized_psnr"]["mean"] == pytest.approx(expected["psnr"], abs=1e-3)
    assert got["colorized_delta_e"]["mean"] == pytest.approx(expected["delta_e"], abs=1e-3)


def test_unmatched_and_unreadable_files_are_named(exported, tmp_path):
    pairs, models, ids = exported
    mixed = tmp_path / "mixed"
    for side in ("scan", "color"):
        (mixed / side).mkdir(parents=True)
    (mixed / "scan" / "a.png").write_bytes((pairs / "scan" / f"{ids[0]}.png").read_bytes())
    (mixed / "color" / "a.jpg").write_bytes((pairs / "color" / f"{ids[0]}.jpg").read_bytes())
    (mixed / "scan" / "lonely.png").write_bytes((pairs / "scan" / f"{ids[1]}.png").read_bytes())
    (mixed / "scan" / "broken.png").write_bytes(b"\x89PNG not really")
    (mixed / "color" / "broken.png").write_bytes((pairs / "color" / f"{ids[1]}.jpg").read_bytes())
    (mixed / "color" / "notes.txt").write_text("not an image suffix: ignored")
    res = run(mixed, models, tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["pairs"] == 1
    assert any("lonely.png: no color/lonely.*" in s for s in result["skipped"])
    assert any("broken.png" in s and "not_an_image" in s for s in result["skipped"])
    assert "lonely.png" in res.output


def test_the_side_by_side_layout_name_bw_and_name_color(exported, tmp_path):
    """PAIRS/NAME_bw.* + PAIRS/NAME_color.*: the same pair measures the same as in scan/ + color/."""
    pairs, models, ids = exported
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "page_bw.png").write_bytes((pairs / "scan" / f"{ids[0]}.png").read_bytes())
    (flat / "page_color.jpg").write_bytes((pairs / "color" / f"{ids[0]}.jpg").read_bytes())
    (flat / "alone_bw.png").write_bytes((pairs / "scan" / f"{ids[1]}.png").read_bytes())
    res = run(flat, models, tmp_path / "flat.json")
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "flat.json").read_text())
    assert got["pairs"] == 1 and any("alone_bw.png: no alone_color.*" in s for s in got["skipped"])
    nested = _mixed_with(pairs, ids, tmp_path)
    assert run(nested, models, tmp_path / "nested.json").exit_code == 0
    want = json.loads((tmp_path / "nested.json").read_text())
    assert got["metrics"] == want["metrics"]


@pytest.mark.parametrize("layout, message", [("no-color-folder", "no color/ folder"),
                                             ("nothing-matches", "no readable (scan, color) pair")])
def test_bad_pair_folders(exported, tmp_path, layout, message):
    _, models, _ = exported
    folder = tmp_path / "p"
    (folder / "scan").mkdir(parents=True)
    Image.new("L", (8, 8)).save(folder / "scan" / "x.png")
    if layout == "nothing-matches":
        (folder / "color").mkdir()
        Image.new("RGB", (8, 8)).save(folder / "color" / "y.png")
    res = run(folder, models, tmp_path / "e.json")
    assert res.exit_code == 2 and message in res.output and not (tmp_path / "e.json").exists()


# --- a pair too small, an unreadable file, an unwritable --json (reliability fixes) ---------


def _mixed_with(pairs, ids, tmp_path):
    """One good pair `a` in a fresh folder, to add a bad one to."""
    folder = tmp_path / "pairs"
    for side, ext in (("scan", "png"), ("color", "jpg")):
        (folder / side).mkdir(parents=True)
        (folder / side / f"a.{ext}").write_bytes((pairs / side / f"{ids[0]}.{ext}").read_bytes())
    return folder


def test_a_pair_too_small_for_the_ssim_window_is_named_and_skipped(exported, tmp_path):
    pairs, models, ids = exported
    folder = _mixed_with(pairs, ids, tmp_path)
    Image.new("L", (5, 5), 255).save(folder / "scan" / "tiny.png")
    Image.new("RGB", (5, 5), (200, 40, 40)).save(folder / "color" / "tiny.png")
    res = run(folder, models, tmp_path / "e.json")
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["pairs"] == 1
    tiny = folder / "scan" / "tiny.png"
    assert result["skipped"] == [f"{tiny}: 5x5 is smaller than the 11-px SSIM window; pair skipped"]
    assert "1 pairs (1 files skipped)" in res.output


def test_an_unreadable_file_is_named_and_skipped(exported, tmp_path, monkeypatch):
    """As root a file without read permission is still readable: the kernel's answer is
    simulated there (reading it raises PermissionError)."""
    import os

    pairs, models, ids = exported
    folder = _mixed_with(pairs, ids, tmp_path)
    locked = folder / "color" / "locked.jpg"
    locked.write_bytes((pairs / "color" / f"{ids[1]}.jpg").read_bytes())
    (folder / "scan" / "locked.png").write_bytes((pairs / "scan" / f"{ids[1]}.png").read_bytes())
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root
        from pathlib import Path

        real = Path.read_bytes

        def read_bytes(self):
            if self == locked:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    res = run(folder, models, tmp_path / "e.json")
    locked.chmod(0o644)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["pairs"] == 1 and result["skipped"] == [f"{locked}: unreadable: Permission denied"]
    assert f"{locked}: unreadable" in res.output and "1 pairs (1 files skipped)" in res.output


def test_an_unwritable_json_path_is_refused_before_the_work(exported, tmp_path, monkeypatch):
    from pipeline.evaluation import user_pairs

    pairs, models, _ = exported
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")

    def no_work(*args, **kwargs):
        raise AssertionError("evaluated although the JSON cannot be written")

    with monkeypatch.context() as m:
        m.setattr(user_pairs, "evaluate_pairs", no_work)
        res = run(pairs, models, notes / "e.json")
    assert res.exit_code == 2 and f"--json {notes / 'e.json'}: {notes} is not a folder" in res.output
    assert notes.read_text() == "a file"


def test_a_json_write_that_fails_after_the_work_keeps_the_table(exported, tmp_path, monkeypatch):
    import errno
    import os

    import pipeline.files

    def disk_full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    pairs, models, _ = exported
    monkeypatch.setattr(pipeline.files, "write_json", disk_full)
    res = run(pairs, models, tmp_path / "e.json")
    assert res.exit_code == 1 and not isinstance(res.exception, OSError), res.output
    assert "3 pairs (0 files skipped)" in res.output and "colorized_delta_e" in res.output  # the table
    assert f"--json {tmp_path / 'e.json'}: No space left on device" in res.output
