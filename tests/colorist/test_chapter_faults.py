"""Faults around `onepunch colorize` chapters and batches: two runs on one chapter (a lock,
taken over when its holder is SIGKILLed), a resume from a damaged `.partial` (exactly one
entry per page), pages that are not regular files or too large, page names too long or
unsafe as archive members, two runs writing one output name into one folder, an unreadable
input among others.

Most run `colorize_chapter` with an identity "colorizer", so no model is needed; the other
process of a two-run case is a small real process holding the lock or the claim."""

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.colorist import chapters
from pipeline.colorist.chapters import MANIFEST, colorize_chapter, lock_path

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def png(n: int, size=(12, 8)) -> bytes:
    """A tiny page whose ink encodes n (n black columns), so pages can be told apart."""
    a = np.full((size[1], size[0], 3), 255, np.uint8)
    a[:, :n] = 0
    buf = BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def ink(data: bytes) -> int:
    return int((np.asarray(Image.open(BytesIO(data)).convert("L"))[0] < 60).sum())


def cbz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def run(chapter: Path, output: Path):
    """A chapter through an identity colorizer (pages come out as they went in)."""
    return colorize_chapter(chapter, output, lambda img: img, lambda img: False, {"model": "identity"},
                            progress=False)


def entries(out: Path) -> list[str]:
    with zipfile.ZipFile(out) as z:
        return z.namelist()


HOLD = """
import sys, time
from pathlib import Path
from pipeline.files import claim_names, hold_lock
if sys.argv[1] == "lock":
    held = hold_lock(sys.argv[2])
else:
    held = claim_names(Path(sys.argv[2]), dict(zip(sys.argv[3::2], sys.argv[4::2])))
with held:
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder():
    """Start a process that holds a chapter lock or claims output names, until killed."""
    procs = []

    def start(*args) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


@pytest.mark.slow
def test_a_second_run_on_a_chapter_is_refused_and_a_killed_holders_lock_taken_over(tmp_path, holder):
    src = cbz(tmp_path / "ch.cbz", {f"p{i}.png": png(i) for i in range(1, 5)})
    out = tmp_path / "out" / "ch.color.cbz"
    out.parent.mkdir()
    first = holder("lock", lock_path(out))  # a run on this chapter, still going
    res = run(src, out)
    assert res.output is None and str(out) in res.error and f"PID {first.pid}" in res.error
    assert sorted(p.name for p in out.parent.iterdir()) == [".ch.color.cbz.lock"]  # nothing of ours written
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert lock_path(out).exists()  # a dead run's lock file stays behind ...
    res = run(src, out)  # ... and is taken over: the kernel dropped the lock with its holder
    assert res.error is None and len(res.done) == 4
    assert [ink(zipfile.ZipFile(out).read(n)) for n in entries(out)] == [1, 2, 3, 4]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ch.color.cbz"]  # no lock, no .partial left


def _killed_before_packing(tmp_path: Path, monkeypatch, pages: int) -> tuple[Path, Path, Path]:
    """A chapter whose every page is in `.partial`, as a run killed just before packing leaves it."""
    src = cbz(tmp_path / "ch.cbz", {f"p{i}.png": png(i) for i in range(1, pages + 1)})
    out = tmp_path / "ch.color.cbz"

    def killed(*_):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(chapters, "_pack", killed)
        with pytest.raises(KeyboardInterrupt):
            run(src, out)
    work = tmp_path / ".ch.color.cbz.partial"
    assert len(list(work.glob("*.png"))) == pages and not out.exists()
    return src, out, work


def _delete_one(work, pages):
    sorted(work.glob("*.png"))[3].unlink()
    return pages - 1


def _keep_one(work, pages):  # what a second run that failed beside a first one left
    for p in sorted(work.glob("*.png"))[1:]:
        p.unlink()
    return 1


def _cut_one_short(work, pages):
    p = sorted(work.glob("*.png"))[2]
    p.write_bytes(p.read_bytes()[:40])
    return pages - 1


def _list_twice(work, pages):
    text = (work / MANIFEST).read_text()
    import json

    manifest = json.loads(text)
    manifest["written"] += manifest["written"][:5] + ["../../escape.png", "not-a-page.png"]
    (work / MANIFEST).write_text(json.dumps(manifest))
    (work / "not-a-page.png").write_bytes(png(9))  # listed, but no page of this chapter
    return pages


@pytest.mark.parametrize("damage", [_delete_one, _keep_one, _cut_one_short, _list_twice])
def test_a_resume_trusts_only_pages_listed_and_whole(tmp_path, monkeypatch, damage):
    pages = 12
    src, out, work = _killed_before_packing(tmp_path, monkeypatch, pages)
    trusted = damage(work, pages)
    res = run(src, out)
    assert res.error is None and len(res.resumed) == trusted and len(res.done) == pages - trusted
    names = entries(out)
    assert names == [f"{k:04d}-p{k}.png" for k in range(1, pages + 1)]  # one entry per page, in order
    assert [ink(zipfile.ZipFile(out).read(n)) for n in names] == list(range(1, pages + 1))
    assert not work.exists()


def test_pages_that_are_not_regular_files_or_too_large_are_named_and_skipped(tmp_path, monkeypatch):
    src = tmp_path / "ch"
    src.mkdir()
    (src / "p1.png").write_bytes(png(1))
    (src / "p2.png").symlink_to("/dev/zero")  # read_bytes() would read until memory runs out
    os.mkfifo(src / "p3.png")  # open() would wait for a writer forever
    (src / "p4.png").write_bytes(png(4, size=(300, 300)) + b"\0" * 3000)  # over the cap below
    (src / "p5.png").write_bytes(png(5))
    monkeypatch.setattr(chapters, "MAX_ENTRY_BYTES", 2000)
    res = run(src, tmp_path / "ch.color")
    assert res.done == ["p1.png", "p5.png"]
    assert sorted(res.failed) == ["p2.png", "p3.png", "p4.png"]
    assert "not a regular file" in res.failed["p2.png"] and "not a regular file" in res.failed["p3.png"]
    assert "more than a page may be (2000)" in res.failed["p4.png"]
    assert "p2.png" in res.error and "3 failed" in res.note
    archive = cbz(tmp_path / "big.cbz", {"p1.png": png(1), "p2.png": png(2, size=(300, 300)) + b"\0" * 3000})
    res = run(archive, tmp_path / "big.color.cbz")
    assert res.done == ["p1.png"] and "more than a page may be" in res.failed["p2.png"]


def test_long_page_names_keep_their_pages(tmp_path):
    long_a, long_b = "a" * 300, "ページ" * 100  # 300 bytes; 900 bytes of UTF-8
    members = {f"ch/{long_a}1.png": png(1), f"ch/{long_a}2.png": png(2), f"{long_b}.png": png(3)}
    res = run(cbz(tmp_path / "ch.cbz", members), tmp_path / "ch.color.cbz")
    assert res.error is None and len(res.done) == 3
    names = entries(tmp_path / "ch.color.cbz")
    assert len(set(names)) == 3 and all(len(n.encode()) <= chapters.MAX_NAME_BYTES for n in names)
    assert names[0].startswith("0001-aaaa") and names[2].startswith("0003-ページページ")  # still readable
    assert [ink(zipfile.ZipFile(tmp_path / "ch.color.cbz").read(n)) for n in names] == [1, 2, 3]


def test_output_member_names_are_safe_for_any_extractor(tmp_path):
    evil = ["x..\\..\\..\\evil.png", "C:\\Windows\\evil.png", "a:b*?<>|\x01.png", "/abs/evil.png"]
    res = run(cbz(tmp_path / "ch.cbz", {name: png(i) for i, name in enumerate(evil, 1)}), tmp_path / "ch.color.cbz")
    assert res.error is None and len(res.done) == 4
    names = entries(tmp_path / "ch.color.cbz")
    assert len(names) == 4
    for name in names:
        assert PurePosixPath(name).parts == (name,) and name not in (".", "..")
        assert not any(c in name for c in '\\/:*?"<>|\x01'), name
        assert name[:4].isdigit()  # never a drive letter or a hidden name
    assert "0004-x.._.._.._evil.png" in names


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.helpers import publish_tiny_colorizer, publish_tiny_scan_generator

    d = tmp_path_factory.mktemp("models")
    publish_tiny_scan_generator(d / "scan.pt")
    publish_tiny_colorizer(d / "color.pt")
    return d


def model_args(models) -> list[str]:
    return ["--model", str(models / "color.pt"), "--scan-model", str(models / "scan.pt"), "--device", "cpu"]


@pytest.mark.slow
def test_an_output_name_another_run_is_writing_is_not_taken(models, tmp_path, holder):
    out = tmp_path / "out"
    out.mkdir()
    other = holder("claim", out, "x.color.png", tmp_path / "a" / "x.png")  # `colorize a/x.png -o out`, running
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_bytes(png(3, size=(40, 32)))
    (tmp_path / "b" / "y.png").write_bytes(png(4, size=(40, 32)))
    res = runner.invoke(app, ["colorize", str(tmp_path / "b" / "x.png"), str(tmp_path / "b" / "y.png"),
                              "-o", str(out), *model_args(models)])
    assert res.exit_code == 0, res.output
    assert f"renamed: x.color.png is being written by another run (PID {other.pid})" in res.output
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["x-2.color.png", "y.color.png"]  # the other run's x.color.png is left to it
    other.send_signal(signal.SIGKILL)
    other.wait(timeout=30)
    res = runner.invoke(app, ["colorize", str(tmp_path / "b" / "x.png"), "-o", str(out), *model_args(models)])
    assert res.exit_code == 0 and "renamed" not in res.output  # a dead run's claim is void, and removed
    assert sorted(p.name for p in out.iterdir()) == ["x-2.color.png", "x.color.png", "y.color.png"]


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions hold: none as a user; as root, setpriv
    dropping the capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None or subprocess.run([*prefix, "true"], check=False).returncode != 0:
        pytest.skip("running as root without setpriv: a chmod-000 file would be readable")
    return prefix


@pytest.mark.slow
def test_an_unreadable_input_is_named_and_skipped_and_the_rest_done(models, tmp_path):
    """Real permissions (root runs it with its bypassing capabilities dropped, `setpriv`)."""
    prefix = _without_root_powers()
    for i in range(3):
        (tmp_path / f"p{i}.png").write_bytes(png(i + 1, size=(40, 32)))
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "p3.png").write_bytes(png(4, size=(40, 32)))
    (tmp_path / "p1.png").chmod(0)
    (tmp_path / "locked").chmod(0)  # a page in a folder that may not be searched
    try:
        inputs = [tmp_path / "p0.png", tmp_path / "p1.png", tmp_path / "locked" / "p3.png", tmp_path / "p2.png"]
        res = subprocess.run([*prefix, sys.executable, "-m", "pipeline.cli", "colorize", *map(str, inputs),
                              "-o", str(tmp_path / "out"), *model_args(models)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "2 written, 2 failed" in res.stdout
    assert f"{tmp_path / 'p1.png'}: [Errno 13] Permission denied" in res.stderr
    assert f"{tmp_path / 'locked' / 'p3.png'}: [Errno 13] Permission denied" in res.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.color.png", "p2.color.png"]


def test_a_sub_folder_that_cannot_be_read_fails_by_name(tmp_path, monkeypatch):
    """A chapter folder with a sub-folder that may not be listed: `rglob` drops it and its
    pages without a word; it must come out as a failed entry, the rest done. (The kernel's
    refusal is simulated: tests may run as root, who may list any folder.)"""
    chapter = tmp_path / "ch"
    (chapter / "b").mkdir(parents=True)
    (chapter / "a.png").write_bytes(png(1))
    (chapter / "b" / "c.png").write_bytes(png(2))
    (chapter / "d.png").write_bytes(png(3))
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == chapter / "b":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    res = run(chapter, tmp_path / "out")
    assert res.failed == {"b/": "a folder that cannot be read: its pages are missing (Permission denied)"}
    assert sorted(res.done) == ["a.png", "d.png"] and res.error
    monkeypatch.setattr(os, "scandir", lambda path=".": (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", str(path))))
    res = run(chapter, tmp_path / "out2")
    assert res.output is None and res.error == f"{chapter}: the chapter folder cannot be read (Permission denied)"


def test_two_chapters_of_one_name_in_one_run_keep_both(models, tmp_path):
    """`colorize a/ch.cbz b/ch.cbz -o out`: the second is ch-2.color.cbz, said so; both whole."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = cbz(tmp_path / "a" / "ch.cbz", {"p1.png": png(1, (40, 32)), "p2.png": png(2, (40, 32))})
    second = cbz(tmp_path / "b" / "ch.cbz", {"q1.png": png(3, (40, 32))})
    out = tmp_path / "out"
    res = runner.invoke(app, ["colorize", str(first), str(second), str(first), "-o", str(out), *model_args(models)])
    assert res.exit_code == 0, res.output
    assert f"renamed: ch.color.cbz is taken by {first}" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["ch-2.color.cbz", "ch.color.cbz"]
    assert [n.split("-", 1)[1] for n in entries(out / "ch.color.cbz")] == ["p1.png", "p2.png"]
    assert [n.split("-", 1)[1] for n in entries(out / "ch-2.color.cbz")] == ["q1.png"]
