"""Bad inputs to `onepunch scan` / `colorize` / `metadata` / `select` / `prepare-image`,
and bad model files: each case asserts the exact outcome — the exit code, a message naming
the input or option, nothing half-written under a final name, the rest of a batch done.

Kinds covered (the README's Reliability section counts them):
 1. an input that is another input's output (page.png page.color.png)
 2. two inputs with one name from two folders (-o out a/x.png b/x.png)
 3. one stem, two extensions (base.png base.jpg)
 4. the same file given twice
 5. a killed earlier run's temporary file in the output folder
 6. -o / --out-dir naming an existing file
 7. a model file missing a weight
 8. a model file with a weight of the wrong shape
 9. a model file whose image_size is 0
10. a model file whose image_size is a string
11. a model file without its architecture
12. a truncated model file
13. --scan-model naming a missing file
14. the default scan generator missing, with a colored page in the batch
15. `metadata -o EXISTING_FOLDER`
16. `select -o EXISTING_FOLDER`
17. `prepare-image -o` into a folder that does not exist yet (created)
18. `prepare-image --size 0`
19. `prepare-image -o out.xyz` (unknown extension)
20. a webtoon strip of 58:1
21. a strip beyond 1000:1
22. two `onepunch colorize` processes into one folder (slow)
23. `onepunch metadata` on a truncated .gz shard (named, good lines kept, exit 1)
24. `colorize --ink screen` (unknown composite mode)
25. `--hints` with a colorizer trained without hints
26. `--hints` with two pages
27. `--hints` naming a missing file
28. a hint PNG of another size than the page (named, exit 1, nothing written)
29. `--colored-pages keep` (unknown mode)
30. a `.cbz` that is not a zip archive (named, exit 1)
31. `--layers` with a chapter
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import publish_tiny_scan_generator, smooth
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.colorist.ink import compose_page, separate
from pipeline.config import ColorizerConfig
from pipeline.models.colorizer import publish_colorizer
from pipeline.pixels import greyscale_u8
from pipeline.runtime import Runtime
from pipeline.training.colorizer_step import make_state

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CPU = Runtime(device=torch.device("cpu"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    publish_tiny_scan_generator(d / "scan.pt")
    cfg = ColorizerConfig(width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=4, crop=0, hints_max=0)
    colors = smooth(2, 3)
    state = make_state(cfg, 1e-3, CPU, greyscale_u8(colors), colors, seed=0)
    publish_colorizer(state.models["G"], d / "color.pt", image_size=32, steps=0, variant="scangen")
    return d


def colorize(models, *args):
    return runner.invoke(app, ["colorize", *map(str, args), "--model", str(models / "color.pt"),
                               "--scan-model", str(models / "scan.pt"), "--device", "cpu"])


def page(path: Path, size=(40, 56), color=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr) if color else Image.fromarray(arr[..., 0]).convert("RGB")
    img.save(path)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_an_input_is_never_overwritten_by_an_output(models, tmp_path):
    src = page(tmp_path / "page.png")
    user_file = page(tmp_path / "page.color.png")
    before = user_file.read_bytes()
    res = colorize(models, src, user_file)
    assert res.exit_code == 1
    assert user_file.read_bytes() == before  # the user's file is intact
    assert f"{src}: its output {user_file} is also an input" in res.output
    assert Image.open(tmp_path / "page.color.color.png").size == (40, 56)  # the other input is done
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("names", [("a/x.png", "b/x.png"), ("base.png", "base.jpg")])
def test_colliding_names_get_unique_outputs(models, tmp_path, names):
    srcs = [page(tmp_path / "in" / n) for n in names]
    out = tmp_path / "out"
    res = colorize(models, *srcs, "-o", out)
    assert res.exit_code == 0, res.output
    stem = Path(names[0]).stem
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"{stem}-2.color.png", f"{stem}.color.png"]
    assert "2 written, 0 failed" in res.output and "renamed" in res.output
    for name in written:
        Image.open(out / name).load()


def test_scan_collisions_too(models, tmp_path):
    srcs = [page(tmp_path / d / "x.png", color=True) for d in ("a", "b")]
    res = runner.invoke(app, ["scan", *map(str, srcs), "--model", str(models / "scan.pt"), "-o",
                              str(tmp_path / "out"), "--device", "cpu"])
    assert res.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x-2.scan.png", "x.scan.png"]


def test_the_same_file_twice_is_done_once(models, tmp_path):
    src = page(tmp_path / "p.png")
    res = colorize(models, src, tmp_path / "." / "p.png")
    assert res.exit_code == 1 and "given twice" in res.output and "1 written, 1 failed" in res.output


def test_a_killed_runs_temporary_file_is_removed(models, tmp_path):
    src = page(tmp_path / "p.png")
    stale = tmp_path / ".p.color.png.999999999.ab12cd.tmp"  # a writer with a dead PID
    stale.write_bytes(b"\x89PNG half")
    assert colorize(models, src).exit_code == 0
    assert not stale.exists() and leftovers(tmp_path) == []
    Image.open(tmp_path / "p.color.png").load()


def test_out_dir_naming_a_file_is_refused(models, tmp_path):
    src = page(tmp_path / "p.png")
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    res = colorize(models, src, "-o", blocker)
    assert res.exit_code == 2 and f"--out-dir {blocker}: is a file" in res.output
    assert blocker.read_text() == "a file"


def test_out_dir_under_a_file_is_refused_before_any_work(models, tmp_path):
    src = page(tmp_path / "p.png")
    (tmp_path / "notes.txt").write_text("a file")
    res = colorize(models, src, "-o", tmp_path / "notes.txt" / "out")
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2 and f"--out-dir {tmp_path / 'notes.txt' / 'out'}:" in res.output
    assert "notes.txt" in res.output and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "p.png"]


def test_a_page_too_large_for_a_psd_keeps_its_png_and_says_why(models, tmp_path, monkeypatch):
    """--layers on a page over PSD's 30,000 px (lowered here to 50): the PNG is written and
    reported as written, with the reason the PSD is not; the run succeeds."""
    pytest.importorskip("psd_tools")
    from pipeline.colorist import psd

    monkeypatch.setattr(psd, "PSD_MAX_SIDE", 50)
    src = page(tmp_path / "strip.png", size=(24, 64))
    res = colorize(models, src, "--layers")
    assert res.exit_code == 0, res.output
    assert f"{src} -> {tmp_path / 'strip.color.png'}" in res.output
    assert "strip.color.psd not written: the page is 24x64 and PSD is limited to 50 px a side" in res.output
    assert (tmp_path / "strip.color.png").is_file() and not (tmp_path / "strip.color.psd").exists()


def _damaged(models, tmp_path, change) -> Path:
    blob = torch.load(models / "color.pt", weights_only=True)
    change(blob)
    path = tmp_path / "bad.pt"
    torch.save(blob, path)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda b: b["state_dict"].pop(next(iter(b["state_dict"]))), "weights do not fit the architecture it declares: missing"),
    (lambda b: b["state_dict"].update({k: torch.zeros(3) for k in list(b["state_dict"])[:1]}),
     "weights do not fit the architecture it declares"),
    (lambda b: b.update(image_size=0), "image_size = 0: must be an integer in [8, 8192]"),
    (lambda b: b.update(image_size="64"), "image_size = '64': must be an integer"),
    (lambda b: b.pop("config"), "file without config"),
])
def test_bad_model_files_are_named(models, tmp_path, change, message):
    bad = _damaged(models, tmp_path, change)
    src = page(tmp_path / "p.png")
    res = runner.invoke(app, ["colorize", str(src), "--model", str(bad), "--device", "cpu"])
    assert res.exit_code == 2 and str(bad) in res.output and message in res.output
    assert not (tmp_path / "p.color.png").exists()


def test_truncated_model_file(models, tmp_path):
    bad = tmp_path / "cut.pt"
    bad.write_bytes((models / "color.pt").read_bytes()[:1000])
    res = runner.invoke(app, ["colorize", str(page(tmp_path / "p.png")), "--model", str(bad)])
    assert res.exit_code == 2 and f"{bad}: not a readable model file" in res.output


def test_a_named_scan_model_that_is_missing_is_an_error(models, tmp_path):
    missing = tmp_path / "nope.pt"
    res = runner.invoke(app, ["colorize", str(page(tmp_path / "p.png")), "--model", str(models / "color.pt"),
                              "--scan-model", str(missing)])
    assert res.exit_code == 2 and f"--scan-model {missing}: no such file" in res.output


def test_without_the_default_scan_model_only_colored_pages_fail(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no models/scan_generator.pt here
    scan, colored = page(tmp_path / "scan.png"), page(tmp_path / "colored.png", color=True)
    res = runner.invoke(app, ["colorize", str(scan), str(colored), "--model", str(models / "color.pt"),
                              "--device", "cpu"])
    assert res.exit_code == 1 and "1 written, 1 failed" in res.output
    assert f"{colored}: a colored page needs the scan generator" in res.output
    assert (tmp_path / "scan.color.png").is_file() and not (tmp_path / "colored.color.png").exists()


def test_metadata_and_select_refuse_a_folder_as_output(tmp_path):
    shard = tmp_path / "shard.jsonl"
    shard.write_text('{"id": "1", "tags": []}\n')
    folder = tmp_path / "out"
    folder.mkdir()
    res = runner.invoke(app, ["metadata", str(shard), "-o", str(folder)])
    assert res.exit_code == 2 and f"--out {folder}: is a folder" in res.output
    table = tmp_path / "t.parquet"
    assert runner.invoke(app, ["metadata", str(shard), "-o", str(table)]).exit_code == 0
    res = runner.invoke(app, ["select", str(table), "-o", str(folder), "--params", str(ROOT / "params.yaml")])
    assert res.exit_code == 2 and f"--out {folder}: is a folder" in res.output
    assert list(folder.iterdir()) == [] and leftovers(tmp_path) == []


def test_synthetic_series_refuses_a_file_in_the_way_and_bad_counts(tmp_path):
    blocker = tmp_path / "series"
    blocker.write_text("a file")
    res = runner.invoke(app, ["synthetic-series", str(blocker)])
    assert res.exit_code == 2 and f"OUT {blocker}: a file is in the way" in res.output
    for option, value in (("--pages", "0"), ("--cast-size", "0"), ("--heldout-pages", "0")):
        res = runner.invoke(app, ["synthetic-series", str(tmp_path / "new"), option, value])
        assert res.exit_code == 2 and f"{option} {value}: must be between 1 and 10000" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]  # nothing written


def test_prepare_image_options(tmp_path):
    src = page(tmp_path / "p.png")
    out = tmp_path / "new" / "deeper" / "p.png"
    res = runner.invoke(app, ["prepare-image", str(src), "-o", str(out), "--size", "16"])
    assert res.exit_code == 0 and Image.open(out).size == (16, 16)  # missing folders are made
    res = runner.invoke(app, ["prepare-image", str(src), "-o", str(tmp_path / "a.png"), "--size", "0"])
    assert res.exit_code == 2 and "--size 0: must be between 8 and 8192" in res.output
    res = runner.invoke(app, ["prepare-image", str(src), "-o", str(tmp_path / "a.xyz")])
    assert res.exit_code == 2 and "unknown image extension '.xyz'" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "p.png"]


def test_webtoon_strips_are_colorized_and_absurd_ones_refused(models, tmp_path):
    bands = np.where((np.arange(4000) // 100) % 2 == 0, 255, 0).astype(np.uint8)  # 100-px panels
    strip = tmp_path / "strip.png"  # 58:1, like a 690x40000 webtoon page
    Image.fromarray(np.repeat(bands[:, None], 69, axis=1)).convert("RGB").save(strip)
    absurd = page(tmp_path / "line.png", size=(2, 2500))  # 1250:1
    res = colorize(models, strip, absurd)
    assert res.exit_code == 1 and "1 written, 1 failed" in res.output
    assert "bad_size: 2x2500: aspect ratio beyond 1000:1" in res.output
    out = Image.open(tmp_path / "strip.color.png")
    assert out.size == (69, 4000) and out.mode == "RGB"
    # tiled at the strip's width: the colorization keeps the scan's structure all along,
    # where one 64-px pass would squeeze the strip to ~1 px wide and blur it away
    grey = np.asarray(out.convert("L"), np.float32)
    scan = np.asarray(Image.open(strip).convert("L"), np.float32)
    assert np.corrcoef(grey.mean(1), scan.mean(1))[0, 1] > 0.8


def test_unknown_ink_mode_is_refused_and_the_default_keeps_the_pages_ink(models, tmp_path):
    src = page(tmp_path / "p.png", size=(120, 90))
    res = colorize(models, src, "--ink", "screen")
    assert res.exit_code == 2 and "--ink 'screen': allowed values are multiply, none" in res.output
    assert not (tmp_path / "p.color.png").exists()
    assert colorize(models, src).exit_code == 0
    out = np.asarray(Image.open(tmp_path / "p.color.png"), np.int16)
    ink = np.asarray(Image.open(src).convert("L"), np.int16)
    lines = separate(ink.astype(np.uint8)).line
    assert out.shape == (90, 120, 3) and (out[lines] <= ink[lines][:, None]).all()  # full size, strokes multiplied
    assert colorize(models, src, "-o", tmp_path / "raw", "--ink", "none").exit_code == 0
    raw = np.asarray(Image.open(tmp_path / "raw" / "p.color.png"), np.uint8)
    # the default output is exactly the bare color layer composed with the page's ink
    assert np.array_equal(compose_page(raw, ink.astype(np.uint8)), out.astype(np.uint8))
    assert colorize(models, src, "-o", tmp_path / "kept", "--tone", "keep").exit_code == 0
    kept = np.asarray(Image.open(tmp_path / "kept" / "p.color.png"), np.uint8)
    assert np.array_equal(compose_page(raw, ink.astype(np.uint8), tone="keep"), kept)
    res = colorize(models, src, "--tone", "halftone")
    assert res.exit_code == 2 and "--tone 'halftone': allowed values are descreen, keep" in res.output
    assert not np.array_equal(raw, out)


@pytest.mark.slow
def test_two_colorize_processes_into_one_folder(models, tmp_path):
    srcs = [page(tmp_path / "in" / f"p{i:02d}.png") for i in range(12)]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "colorize", *map(str, srcs), "-o", str(out), "--model",
           str(models / "color.pt"), "--scan-model", str(models / "scan.pt"), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              cwd=ROOT) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("12 written, 0 failed" in o for o in outputs)
    assert sorted(p.name for p in out.iterdir()) == [f"p{i:02d}.color.png" for i in range(12)]
    for p in out.iterdir():
        Image.open(p).load()  # every PNG decodes: no mixed or truncated file


def test_metadata_cli_names_a_damaged_shard_and_keeps_its_good_lines(tmp_path):
    import gzip

    good = b"".join(b'{"id": "%d", "tags": []}\n' % i for i in range(1, 2001))
    shard = tmp_path / "2020000000000000.gz"
    shard.write_bytes(gzip.compress(good)[:-200])  # the end of the stream is cut off
    out = tmp_path / "t.parquet"
    res = runner.invoke(app, ["metadata", str(shard), "-o", str(out)])
    assert res.exit_code == 1 and "Aborted" not in res.output
    assert f"{shard.name}: truncated gzip stream; the lines before the damage were kept" in res.output
    import pyarrow.parquet as pq

    assert 1000 < pq.read_table(out).num_rows < 2000


def test_hint_and_chapter_options_refuse_what_cannot_work(models, tmp_path):
    src = page(tmp_path / "p.png", size=(40, 56))
    other = page(tmp_path / "q.png", size=(40, 56))
    hints = tmp_path / "h.json"
    hints.write_text('[{"x": 3, "y": 4, "color": "#ff0000"}]')
    res = colorize(models, src, "--hints", hints)  # the fixture's colorizer has no hint channels
    assert res.exit_code == 2 and "trained without hints" in res.output
    res = colorize(models, src, other, "--hints", hints)
    assert res.exit_code == 2 and "exactly one page" in res.output
    res = colorize(models, src, "--hints", tmp_path / "missing.png")
    assert res.exit_code == 2 and "--hints" in res.output and "missing.png: no such file" in res.output
    res = colorize(models, src, "--colored-pages", "keep")
    assert res.exit_code == 2 and "--colored-pages 'keep': allowed values are copy, colorize" in res.output
    (tmp_path / "ch.cbz").write_bytes(b"PK not really a zip")
    res = colorize(models, tmp_path / "ch.cbz")
    assert res.exit_code == 1 and "ch.cbz: not a readable .cbz/.zip archive" in res.output
    assert not (tmp_path / "ch.color.cbz").exists()
    (tmp_path / "chapter").mkdir()
    res = colorize(models, tmp_path / "chapter", "--layers")
    assert res.exit_code == 2 and "--layers" in res.output
    assert not list(tmp_path.glob("*.color.png"))


def test_a_hint_png_of_another_size_fails_that_page_by_name(tmp_path):
    import torch

    from pipeline.training.colorizer_step import build_colorizer

    d = tmp_path / "m"
    publish_tiny_scan_generator(d / "scan.pt")
    torch.manual_seed(0)
    g, _ = build_colorizer(ColorizerConfig(width=4, mults=[1, 2], n_attention=1, groups=2, hints_max=4))
    publish_colorizer(g, d / "color.pt", image_size=32, steps=0, variant="scangen")
    src = page(tmp_path / "p.png", size=(40, 56))
    Image.new("RGBA", (41, 56)).save(tmp_path / "h.png")
    res = colorize(d, src, "--hints", tmp_path / "h.png")
    assert res.exit_code == 1
    assert "h.png: it is 41x56 but the page is 40x56" in res.output
    assert not (tmp_path / "p.color.png").exists()


def test_auto_none_colors_only_what_the_hints_reach_and_needs_no_colorizer(tmp_path):
    """`--auto none`: the dotted box flat in its dot's color, everything else the page as
    drawn, with no colorizer file at all; without hints it is refused."""
    arr = np.full((60, 100), 255, np.uint8)
    arr[10:50, 10:45][[0, 1, -2, -1], :] = 0
    arr[10:50, 10:45][:, [0, 1, -2, -1]] = 0
    src = tmp_path / "boxes.png"
    Image.fromarray(arr).convert("RGB").save(src)
    hints = tmp_path / "dots.json"
    hints.write_text(json.dumps([{"x": 25, "y": 30, "color": "#3060c0"}]))
    none = tmp_path / "no-model.pt"
    res = runner.invoke(app, ["colorize", str(src), "--auto", "none", "--model", str(none), "--device", "cpu"])
    assert res.exit_code == 2 and "--auto none colors only the regions hints reach" in res.output
    res = runner.invoke(app, ["colorize", str(src), "--auto", "none", "--hints", str(hints), "--model", str(none),
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "boxes.color.png").convert("RGB")).astype(int)
    assert (out[14:46, 14:41] == (48, 96, 192)).all()  # the box, flat in its dot's color
    assert np.array_equal(out[:, 50:], np.repeat(arr[:, 50:, None], 3, -1))  # the rest as drawn
    assert (out[10:12, 10:45] == 0).all()  # the box's ink, black
