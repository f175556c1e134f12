"""The images stage: packed shards, failures listed, parallel = serial, kill + re-run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

from pipeline.config import ImagesConfig, SourceConfig
from pipeline.data.danbooru import UnsafePathError, image_relpath, safe_join
from pipeline.data.prepare import prepare_images
from pipeline.data.select import OUT_SCHEMA
from pipeline.data.shards import load_index, load_split

ROOT = Path(__file__).resolve().parents[2]


def drawing(seed: int, side: int, color: bool) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (side, side), "white")
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, side // 2, 2)
        x1, y1 = np.array([x0, y0]) + rng.integers(side // 8, side // 2, 2)
        fill = tuple(int(v) for v in rng.integers(0, 255, 3)) if color else None
        d.ellipse([int(x0), int(y0), int(x1), int(y1)], fill=fill, outline="black", width=max(1, side // 64))
    return img


def make_mirror(root: Path, n_color: int, n_scan: int, side: int = 128, fmt: str = "JPEG"):
    """A tiny Danbooru layout + a matching select table (+ groundtruth for color posts)."""
    rows = []
    for i in range(n_color + n_scan):
        pid = 1000 + 37 * i
        color = i < n_color
        rel = image_relpath(pid, "jpg", "512px")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img = drawing(pid, side, color)
        img.save(path, format=fmt)
        if color:
            (root / "groundtruth").mkdir(exist_ok=True)
            drawing(pid, side, False).convert("L").save(root / "groundtruth" / f"{pid}.png")
        split = "holdout" if i % 4 == 0 else "train"
        rows.append((pid, "color" if color else "scan", split))
    table = pa.table({
        "id": [r[0] for r in rows], "domain": [r[1] for r in rows], "split": [r[2] for r in rows],
        "file_ext": ["jpg"] * len(rows), "image_width": [800] * len(rows), "image_height": [800] * len(rows),
        "rating": ["s"] * len(rows), "file_url": [None] * len(rows),
    }, schema=OUT_SCHEMA)
    return table


def run(tmp: Path, table, root: Path, out: str = "out", **images_kw):
    cfg = ImagesConfig(**{"size": 16, "shard_images": 3, "workers": 1, **images_kw})
    return prepare_images(table, SourceConfig(kind="synthetic"), cfg, root, tmp / out,
                          tmp / "work", tmp / "cache", progress=False)


def tree_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_shards_index_failures_and_groundtruth(tmp_path):
    root = tmp_path / "mirror"
    table = make_mirror(root, n_color=8, n_scan=6)
    ids = table.column("id").to_pylist()
    # corrupt one color image, delete one scan image
    bad = safe_join(root, image_relpath(ids[1], "jpg", "512px"))
    bad.write_bytes(bad.read_bytes()[:200])
    safe_join(root, image_relpath(ids[9], "jpg", "512px")).unlink()
    stats = run(tmp_path, table, root)
    out = tmp_path / "out"
    assert stats["images"] == 12 and stats["failed"] == 2
    with open(out / "failures.csv", newline="") as f:
        failures = {int(r["id"]): r["reason"] for r in csv.DictReader(f)}
    assert failures == {ids[1]: "truncated", ids[9]: "missing_file"}
    index = load_index(out).to_pylist()
    assert len(index) == 12
    # every index row points at the right image in its shard
    for row in index:
        arr = np.load(out / row["shard"], mmap_mode="r")
        assert arr.shape[1:] == ((16, 16, 3) if row["domain"] == "color" else (16, 16, 1))
        assert row["row"] < arr.shape[0]
    color_holdout = load_split(out, "color", "holdout")
    gt = np.concatenate([np.load(p) for p in sorted(out.glob("color-holdout-gt-*.npy"))])
    assert gt.shape[0] == color_holdout.shape[0] > 0 and gt.shape[-1] == 1
    # the gt is the line art of the same drawing: dark where the color image has lines
    assert np.corrcoef(gt.reshape(len(gt), -1).astype(float).mean(0),
                       color_holdout.mean(-1).reshape(len(gt), -1).mean(0))[0, 1] > 0.3
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_parallel_equals_serial(tmp_path):
    root = tmp_path / "mirror"
    table = make_mirror(root, n_color=7, n_scan=7)
    run(tmp_path, table, root, out="serial", workers=1)
    run(tmp_path, table, root, out="parallel", workers=2)
    assert tree_bytes(tmp_path / "serial") == tree_bytes(tmp_path / "parallel")


def test_unsafe_metadata_paths_are_refused(tmp_path):
    for pid, ext in [(-1, "jpg"), (0, "jpg"), ("5", "jpg"), (5, "../x"), (5, "j/pg"), (5, "")]:
        with pytest.raises(UnsafePathError):
            image_relpath(pid, ext, "original")
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, "../escape.jpg")
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, "/etc/passwd")
    # a selected post with a hostile file_ext is counted as a failure, nothing is read
    root = tmp_path / "mirror"
    table = make_mirror(root, n_color=2, n_scan=1)
    table = table.set_column(3, "file_ext", pa.array(["../../../etc/passwd", "jpg", "jpg"]))
    cfg = ImagesConfig(size=16, shard_images=4, workers=1)
    stats = prepare_images(table, SourceConfig(kind="local", root=str(root), image_variant="original"),
                           cfg, root, tmp_path / "out", tmp_path / "work", tmp_path / "cache", progress=False)
    assert stats["failed_unsafe_path"] == 1


KILL_SCRIPT = """
import sys, pyarrow.parquet as pq
from pathlib import Path
from pipeline.config import ImagesConfig, SourceConfig
from pipeline.data.prepare import prepare_images
tmp = Path(sys.argv[1])
prepare_images(pq.read_table(tmp / "selected.parquet"), SourceConfig(kind="synthetic"),
               ImagesConfig(size=32, shard_images=2, workers=1), tmp / "mirror", tmp / sys.argv[2],
               tmp / "work", tmp / "cache", progress=False)
"""


@pytest.mark.slow
def test_killed_run_resumes_to_identical_output(tmp_path):
    import pyarrow.parquet as pq

    table = make_mirror(tmp_path / "mirror", n_color=30, n_scan=30, side=1024, fmt="PNG")
    pq.write_table(table, tmp_path / "selected.parquet")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)]
    subprocess.run(cmd + ["clean"], check=True, env=env, timeout=300)
    clean = tree_bytes(tmp_path / "clean")

    proc = subprocess.Popen(cmd + ["out"], env=env)
    deadline = time.time() + 120
    markers: list = []
    while time.time() < deadline and proc.poll() is None:
        markers = list((tmp_path / "work").glob("*/*.json"))
        if len(markers) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed; make the test input larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "out").exists()  # nothing half-written in the output
    done_before = len(list((tmp_path / "work").glob("*/*.json")))
    assert done_before >= 3

    code = KILL_SCRIPT.replace("progress=False)", "progress=False)\nprint(__import__('json').dumps(_s))")
    code = code.replace("prepare_images(pq.read_table", "_s = prepare_images(pq.read_table")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path), "out"], env=env, timeout=300,
                         check=True, capture_output=True, text=True)
    stats = json.loads(res.stdout.strip().splitlines()[-1])
    assert stats["units_resumed"] >= done_before >= 3
    assert tree_bytes(tmp_path / "out") == clean


def test_sharded_array_reads_rows_across_shards(tmp_path):
    from pipeline.data.shards import ShardedArray
    from pipeline.training.samplers import BatchSampler

    parts = [np.arange(k * 10, k * 10 + n).reshape(n, 1, 1, 1).astype(np.uint8) for k, n in enumerate([3, 5, 2])]
    for i, p in enumerate(parts):
        np.save(tmp_path / f"color-train-{i:05d}.npy", p)
    arr = load_split(tmp_path, "color", "train", mmap=True)
    whole = np.concatenate(parts)
    assert isinstance(arr, ShardedArray) and arr.shape == whole.shape and len(arr) == 10
    idx = np.array([0, 2, 3, 7, 8, 9])
    assert np.array_equal(arr[idx], whole[idx])
    assert np.array_equal(arr[2:9], whole[2:9])
    batch = BatchSampler(arr, 4, seed=0).next()  # what training does with it
    assert batch.shape == (4, 1, 1, 1)


def test_safe_join_follows_the_layout_links_not_escaping_ones(tmp_path):
    """The root and the variant folder may be links (another disk); what lies below must
    resolve inside one of them."""
    real, disk, elsewhere = tmp_path / "real", tmp_path / "disk2" / "512px", tmp_path / "elsewhere"
    for d in (real, disk / "0001", elsewhere):
        d.mkdir(parents=True)
    (elsewhere / "secret.jpg").write_bytes(b"secret")
    (tmp_path / "mirror").symlink_to(real, target_is_directory=True)  # the root is a link
    (real / "512px").symlink_to(disk, target_is_directory=True)  # 512px/ is on another disk
    (disk / "0001" / "1001.jpg").write_bytes(b"jpg")
    (disk / "0001" / "2001.jpg").symlink_to("1001.jpg")  # a link inside the mirror
    (disk / "0001" / "3001.jpg").symlink_to(elsewhere / "secret.jpg")  # a link out of it
    (disk / "0002").symlink_to(elsewhere, target_is_directory=True)  # a bucket folder out of it
    mirror = tmp_path / "mirror"
    assert safe_join(mirror, "512px/0001/1001.jpg") == disk / "0001" / "1001.jpg"
    assert safe_join(mirror, "512px/0001/2001.jpg") == disk / "0001" / "1001.jpg"
    assert safe_join(mirror, "512px/0001/4001.jpg") == disk / "0001" / "4001.jpg"  # missing: the caller says so
    for rel in ("512px/0001/3001.jpg", "512px/0002/secret.jpg", "512px/0001/../../../elsewhere/secret.jpg"):
        with pytest.raises(UnsafePathError, match="outside|leaves"):
            safe_join(mirror, rel)
    (disk / "0001" / "5001.jpg").symlink_to("5001.jpg")  # a loop: refused, not a RuntimeError
    with pytest.raises(UnsafePathError, match="loop"):
        safe_join(mirror, "512px/0001/5001.jpg")
    (real / "7.jpg").symlink_to(elsewhere / "secret.jpg")  # one-part paths (the API cache) have no layout folder
    with pytest.raises(UnsafePathError, match="outside"):
        safe_join(mirror, "7.jpg")
