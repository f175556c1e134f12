"""Chapters through `onepunch colorize`: folders and .cbz archives in natural page order,
archive junk skipped, colored pages copied through, a bad page named and skipped, resume
after SIGKILL with no half-written page (the killed run's lock taken over); hints and layers
through the CLI. Faults (two runs, damaged resumes, unsafe names): test_chapter_faults.py."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.colorist.chapters import MANIFEST, list_pages
from pipeline.config import ColorizerConfig
from pipeline.folders import natural_key
from pipeline.models.colorizer import publish_colorizer
from pipeline.training.colorizer_step import build_colorizer
from tests.helpers import publish_tiny_scan_generator

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("models")
    publish_tiny_scan_generator(d / "scan.pt")
    torch.manual_seed(0)
    g, _ = build_colorizer(ColorizerConfig(width=4, mults=[1, 2], n_attention=1, groups=2, hints_max=8))
    publish_colorizer(g, d / "color.pt", image_size=32, steps=0, variant="scangen")
    return d


def png_bytes(n: int, size=(48, 64), color=False) -> bytes:
    """A page whose ink encodes its number n (n black columns), so order can be read back."""
    w, h = size
    a = np.full((h, w, 3), 255, np.uint8)
    a[:, : 2 * n : 2] = 0
    if color:
        a[h // 2:, :, 0] = 30
        a[h // 2:, :, 2] = 200
    buf = BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def ink_count(img: Image.Image) -> int:
    """The page number written by png_bytes: black columns on the first row."""
    row = np.asarray(img.convert("L"))[0]
    return int((row < 60).sum())


def colorize(models, *args):
    return runner.invoke(app, ["colorize", *map(str, args), "--model", str(models / "color.pt"),
                               "--scan-model", str(models / "scan.pt"), "--device", "cpu"])


def test_natural_order():
    names = ["page10.png", "page2.png", "Page1.png", "page2b.png", "page02a.png"]
    assert sorted(names, key=natural_key) == ["Page1.png", "page2.png", "page02a.png", "page2b.png", "page10.png"]


def make_cbz(path: Path, n: int, junk: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for i in (10, 2, 1, 3, 11)[:n] if n <= 5 else range(n, 0, -1):
            z.writestr(f"ch01/page{i}.png", png_bytes(i))
        if junk:
            z.writestr("__MACOSX/ch01/._page1.png", b"\x00\x05junk")
            z.writestr("ch01/.DS_Store", b"junk")
            z.writestr("ch01/ComicInfo.xml", "<ComicInfo/>")
            z.writestr("ch01/notes/", "")
    return path


def test_cbz_in_cbz_out_in_natural_order_junk_skipped(models, tmp_path):
    src = make_cbz(tmp_path / "ch01.cbz", 5)
    pages, skipped = list_pages(src)
    assert [p.name for p in pages] == [f"ch01/page{i}.png" for i in (1, 2, 3, 10, 11)]
    assert len(skipped) == 3
    res = colorize(models, src, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "5 colorized" in res.output and "3 non-page entries skipped" in res.output
    out = tmp_path / "out" / "ch01.color.cbz"
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert names == [f"{k:04d}-page{i}.png" for k, i in enumerate((1, 2, 3, 10, 11), 1)]
        numbers = [ink_count(Image.open(BytesIO(z.read(n)))) for n in names]
    assert numbers == [1, 2, 3, 10, 11]  # the pages themselves, in order
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ch01.color.cbz"]  # no work folder left


def test_folder_chapter_copies_colored_pages_and_names_a_bad_one(models, tmp_path):
    src = tmp_path / "ch02"
    (src / "sub").mkdir(parents=True)
    (src / "p1.png").write_bytes(png_bytes(1))
    (src / "p3.png").write_bytes(png_bytes(3, color=True))  # already colored
    (src / "sub" / "p2.png").write_bytes(png_bytes(2))  # nested: sorted by its path
    (src / "p4.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (src / "readme.txt").write_text("not a page")
    res = colorize(models, src)
    assert res.exit_code == 1
    assert "p4.png" in res.output and "1 failed" in res.output
    out = tmp_path / "ch02.color"
    files = sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    assert files == ["0001-p1.png", "0002-p3.png", "0004-p2.png"]
    assert (out / "0002-p3.png").read_bytes() == (src / "p3.png").read_bytes()  # copied through, untouched
    res = colorize(models, src, "--colored-pages", "colorize")  # asked otherwise: colorized too
    assert "3 colorized" in res.output
    res = colorize(models, src, "-o", src)  # written into the chapter itself: its output is not read as pages
    assert "2 colorized, 1 already colored, copied" in res.output
    assert sorted(p.name for p in (src / "ch02.color").iterdir() if p.name != MANIFEST) == files
    res = colorize(models, src, "-o", src)
    assert "3 finished earlier" in res.output


def test_batched_pages_come_out_as_page_by_page(models, tmp_path):
    src = tmp_path / "ch04"
    src.mkdir()
    for i in range(1, 6):  # four pages of one size, one of another: two batches and a single
        (src / f"p{i}.png").write_bytes(png_bytes(i, size=(48, 64) if i != 3 else (40, 56)))
    assert colorize(models, src, "-o", tmp_path / "one", "--batch", "1").exit_code == 0
    res = colorize(models, src, "-o", tmp_path / "three", "--batch", "3")
    assert res.exit_code == 0 and "5 colorized" in res.output
    one = sorted((tmp_path / "one" / "ch04.color").glob("*.png"))
    three = sorted((tmp_path / "three" / "ch04.color").glob("*.png"))
    assert [p.name for p in one] == [p.name for p in three] and len(one) == 5
    for a, b in zip(one, three):
        diff = np.abs(np.asarray(Image.open(a), np.int16) - np.asarray(Image.open(b), np.int16))
        assert diff.max() <= 1  # GroupNorm and attention are per image: batching changes nothing
    assert colorize(models, src, "--batch", "-1").exit_code == 2


@pytest.mark.slow
def test_a_chapter_killed_midway_resumes_without_redoing_pages(models, tmp_path):
    src = tmp_path / "ch03.cbz"
    with zipfile.ZipFile(src, "w") as z:
        for i in range(1, 41):
            z.writestr(f"p{i}.png", png_bytes(i % 20, size=(640, 900)))
    cmd = [sys.executable, "-m", "pipeline.cli", "colorize", str(src), "--model", str(models / "color.pt"),
           "--scan-model", str(models / "scan.pt"), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tmp_path / ".ch03.color.cbz.partial"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            try:
                if len(json.loads((work / MANIFEST).read_text())["written"]) >= 3:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = len(json.loads((work / MANIFEST).read_text())["written"])
    assert 3 <= done_before < 40, "the run must be killed mid-chapter"
    assert not (tmp_path / "ch03.color.cbz").exists()  # no half chapter where the result goes
    assert (tmp_path / ".ch03.color.cbz.lock").exists()  # the killed run's lock: taken over below
    for p in work.iterdir():
        if p.suffix == ".png":
            Image.open(p).load()  # every page on disk is whole
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert f"{done_before} finished earlier" in res.stdout or f"{done_before + 1} finished earlier" in res.stdout
    with zipfile.ZipFile(tmp_path / "ch03.color.cbz") as z:
        assert len(z.namelist()) == 40 and z.namelist() == sorted(z.namelist())
    assert not work.exists() and not (tmp_path / ".ch03.color.cbz.lock").exists()


def test_hints_and_layers_through_the_cli(models, tmp_path):
    from psd_tools import PSDImage

    page = tmp_path / "p.png"
    a = np.full((64, 96), 255, np.uint8)
    a[:, 47:50] = 0
    Image.fromarray(a).save(page)
    hints = tmp_path / "h.json"
    hints.write_text(json.dumps([{"x": 20, "y": 30, "color": "#c83232"}]))
    res = colorize(models, page, "--hints", hints, "--layers")
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "p.color.png")).astype(int)
    assert np.abs(out[:, :46] - [200, 50, 50]).max() <= 1  # untrained: the hint's fill exactly
    psd = PSDImage.open(tmp_path / "p.color.psd")
    assert np.abs(np.asarray(psd.composite(force=True).convert("RGB")).astype(int) - out).max() <= 1
    hints.write_text(json.dumps([{"x": 200, "y": 30, "color": "#c83232"}]))
    res = colorize(models, page, "--hints", hints, "-o", tmp_path / "bad")
    assert res.exit_code == 1 and "outside the 96x64 page" in res.output and "h.json" in res.output
    res = colorize(models, page, page.with_name("q.png"), "--hints", hints)
    assert res.exit_code == 2 and "exactly one page" in res.output
