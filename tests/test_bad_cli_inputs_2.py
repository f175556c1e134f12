"""More bad inputs to `onepunch prepare-image` / `synthetic-page` / `scan` and `--layers`:
each case asserts the exact outcome, as in test_bad_cli_inputs.py.

Kinds covered:
1. `prepare-image mine.jpg -o mine.jpg` (and the same file by another spelling or a link)
2. `synthetic-page P --truth P` (the truth would replace the scan)
3. `-o` under a file (`notes.txt/out.png`) for prepare-image, synthetic-page and scan
4. `-o` into a folder this process may not write into (or make a folder in)
5. a write that fails after the work (disk full): named, no traceback
6. a page too tall for a PSD (more than 30,000 px a side)

Tests may run as root, for whom a read-only folder is writable: there the kernel's answer
is simulated (`os.access` says no, making a folder or a file under it raises
PermissionError, as on a read-only mount); otherwise the folder is really made read-only.
"""

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import publish_tiny_scan_generator
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def page(path: Path, size=(40, 56)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def no_traceback(res) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output


@pytest.fixture
def read_only(monkeypatch):
    """Make `folder` read-only for this process: really, or (as root) by simulating it."""

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):  # root: permissions do not stop it
            inside = str(folder.resolve())

            def under(path) -> bool:
                p = os.path.abspath(os.fspath(path))
                return p == inside or p.startswith(inside + os.sep)

            real_access, real_mkdir, real_open = os.access, os.mkdir, os.open

            def access(path, mode, *args, **kwargs):
                if under(path) and mode & os.W_OK:
                    return False
                return real_access(path, mode, *args, **kwargs)

            def mkdir(path, *args, **kwargs):
                if under(os.path.dirname(os.path.abspath(os.fspath(path)))):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
                return real_mkdir(path, *args, **kwargs)

            def open_(path, flags, *args, **kwargs):
                if flags & os.O_CREAT and under(os.path.dirname(os.path.abspath(os.fspath(path)))):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
                return real_open(path, flags, *args, **kwargs)

            monkeypatch.setattr(os, "access", access)
            monkeypatch.setattr(os, "mkdir", mkdir)
            monkeypatch.setattr(os, "open", open_)
        return folder

    yield make


@pytest.mark.parametrize("spelling", ["same", "dot", "link"])
def test_prepare_image_never_writes_over_its_input(tmp_path, spelling):
    src = page(tmp_path / "mine.jpg")
    before = src.read_bytes()
    out = {"same": src, "dot": tmp_path / "." / "mine.jpg", "link": tmp_path / "link.jpg"}[spelling]
    if spelling == "link":
        out.symlink_to(src)
    res = runner.invoke(app, ["prepare-image", str(src), "-o", str(out), "--size", "16"])
    no_traceback(res)
    assert res.exit_code == 2 and f"--out {out}: is the input {src}" in res.output
    assert src.read_bytes() == before


def test_synthetic_page_never_writes_the_truth_over_the_scan(tmp_path):
    out = tmp_path / "p.png"
    for truth in (out, tmp_path / "." / "p.png"):
        res = runner.invoke(app, ["synthetic-page", str(out), "--truth", str(truth), "--width", "256",
                                  "--height", "256"])
        no_traceback(res)
        assert res.exit_code == 2 and f"--truth {truth}: is OUT {out} too" in res.output
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_an_output_under_a_file_is_refused_by_name(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    src = page(tmp_path / "p.png")
    res = runner.invoke(app, ["prepare-image", str(src), "-o", str(notes / "new" / "p.png"), "--size", "16"])
    no_traceback(res)
    assert res.exit_code == 2 and f"--out {notes / 'new' / 'p.png'}: {notes} is not a folder" in res.output
    res = runner.invoke(app, ["synthetic-page", str(notes / "p.png"), "--width", "256", "--height", "256"])
    no_traceback(res)
    assert res.exit_code == 2 and f"OUT {notes / 'p.png'}: {notes} is not a folder" in res.output
    res = runner.invoke(app, ["synthetic-page", str(tmp_path / "ok.png"), "--truth", str(notes / "t.png"),
                              "--width", "256", "--height", "256"])
    assert res.exit_code == 2 and f"--truth {notes / 't.png'}: {notes} is not a folder" in res.output
    publish_tiny_scan_generator(tmp_path / "m" / "scan.pt")
    res = runner.invoke(app, ["scan", str(src), "--model", str(tmp_path / "m" / "scan.pt"), "-o",
                              str(notes / "out"), "--device", "cpu"])
    no_traceback(res)
    assert res.exit_code == 2 and f"--out-dir {notes / 'out'}: {notes} is not a folder" in res.output
    assert notes.read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "notes.txt", "p.png"]


def test_an_output_where_no_folder_can_be_made_is_refused_by_name(tmp_path, read_only):
    locked = read_only(tmp_path / "locked")
    src = page(tmp_path / "p.png")
    for out in (locked / "p.png", locked / "new" / "deeper" / "p.png"):
        res = runner.invoke(app, ["prepare-image", str(src), "-o", str(out), "--size", "16"])
        no_traceback(res)
        assert res.exit_code == 2 and f"--out {out}: cannot write into {locked} (permission denied)" in res.output
    res = runner.invoke(app, ["synthetic-page", str(locked / "new" / "p.png"), "--width", "256", "--height", "256"])
    no_traceback(res)
    assert res.exit_code == 2 and f"cannot write into {locked}" in res.output
    res = runner.invoke(app, ["scan", str(src), "--model", str(tmp_path / "missing.pt"), "-o", str(locked / "out"),
                              "--device", "cpu"])
    no_traceback(res)
    assert res.exit_code == 2 and f"--out-dir {locked / 'out'}: cannot write into {locked}" in res.output
    assert list(locked.iterdir()) == []


def test_a_write_that_fails_after_the_work_is_named(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    def disk_full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    src = page(tmp_path / "p.png")
    monkeypatch.setattr(PILImage.Image, "save", disk_full)
    res = runner.invoke(app, ["prepare-image", str(src), "-o", str(tmp_path / "out.png"), "--size", "16"])
    no_traceback(res)
    assert res.exit_code == 1 and f"--out {tmp_path / 'out.png'}: No space left on device" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]  # no temporary file left


def test_a_page_too_tall_for_a_psd_is_refused_before_any_work(tmp_path, monkeypatch):
    """PSD holds 30,000 px a side (PSB beyond, which psd-tools does not write); the limit
    is lowered here so the page stays small."""
    pytest.importorskip("psd_tools")
    from pipeline.colorist import ink, psd

    monkeypatch.setattr(psd, "PSD_MAX_SIDE", 50, raising=False)

    def no_layers(*args, **kwargs):
        raise AssertionError("layers computed for a page that cannot be a PSD")

    monkeypatch.setattr(ink, "page_layers", no_layers)
    colors, line_art = Image.new("RGB", (20, 60), (200, 120, 40)), Image.new("L", (20, 60), 255)
    with pytest.raises(ValueError, match=r"p\.psd not written: the page is 20x60 and PSD is limited to 50 px a "
                                         r"side \(PSB is not supported\)"):
        psd.write_psd(tmp_path / "p.psd", colors, line_art)
    assert list(tmp_path.iterdir()) == []
    assert psd.psd_too_large((20, 50)) is None and "limited to 50 px" in psd.psd_too_large((51, 20))
