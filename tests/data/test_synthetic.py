"""The synthetic mini-Danbooru2020: layout, record format, distractors, drawings, determinism."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import SyntheticConfig
from pipeline.data.danbooru import INT_FIELDS, METADATA_SHARD_NAMES, NULL_TIMESTAMP, image_relpath
from pipeline.data.synthetic.dataset import MARKER, generate_dataset
from pipeline.data.synthetic.posts import DISTRACTOR_KINDS, distractor_counts
from pipeline.data.synthetic.scene_images import pad_to_square, render_color, render_scan
from pipeline.data.synthetic.scenes import make_scene
from pipeline.imaging import shrink_to_fit

CFG = SyntheticConfig(seed=7, n_color=6, n_scan=6, n_distractors=16, n_shards=4, duplicate_fraction=0.2)
MONO_FAMILY = {"monochrome", "greyscale", "lineart", "partially_monochrome", "spot_color", "screentone",
               "hatching_(texture)", "comic"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})? UTC$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "source"
    stats = generate_dataset(CFG, root, workers=1, progress=False)
    return root, stats


def read_lines(root: Path) -> tuple[list[tuple[str, dict]], int]:
    """(shard name, record) for every valid line, and the number of unparsable lines."""
    records, bad = [], 0
    for shard in sorted((root / "metadata").iterdir()):
        for line in shard.read_text(encoding="utf-8").splitlines():
            try:
                records.append((shard.name, json.loads(line)))
            except json.JSONDecodeError:
                bad += 1
    return records, bad


def latest(records: list[tuple[str, dict]]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for _, r in records:
        i = int(r["id"])
        if i not in out or r["updated_at"] > out[i]["updated_at"]:
            out[i] = r
    return out


def tags(record: dict) -> set[str]:
    return {t["name"] for t in record["tags"]}


def jpg_path(root: Path, post_id: int) -> Path:
    return root / image_relpath(post_id, "jpg", "512px")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def color_posts(root: Path) -> list[int]:
    return sorted(int(p.stem) for p in (root / "groundtruth").glob("*.png"))


# --------------------------------------------------------------------------- dataset


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(dataset, tmp_path):
    root, _ = dataset
    generate_dataset(CFG, tmp_path / "two", workers=2, progress=False)
    a, b = tree(root), tree(tmp_path / "two")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    generate_dataset(SyntheticConfig(**{**CFG.__dict__, "seed": 8}), tmp_path / "other", workers=1, progress=False)
    assert tree(tmp_path / "other")["metadata/" + METADATA_SHARD_NAMES[0]] != a["metadata/" + METADATA_SHARD_NAMES[0]]


def test_layout_and_record_format(dataset):
    root, stats = dataset
    assert sorted(p.name for p in (root / "metadata").iterdir()) == list(METADATA_SHARD_NAMES[: CFG.n_shards])
    records, bad = read_lines(root)
    assert len(records) == stats["n_records"] == stats["n_posts"] + stats["n_duplicates"]
    assert 1 <= bad == stats["n_malformed_lines"] <= 3
    fractions = set()
    for _, r in records:
        for name in INT_FIELDS:
            if name != "fav_count":
                assert isinstance(r[name], str) and re.fullmatch(r"-?\d+", r[name]), (name, r[name])
        assert isinstance(r["is_deleted"], bool) and isinstance(r["has_children"], bool)
        for name in ("created_at", "updated_at", "last_commented_at", "last_noted_at"):
            assert TIMESTAMP.match(r[name]), r[name]
            fractions.add(len(r[name].split(".")[1]) - 4 if "." in r[name] else 0)
        assert r["tags"] and all(set(t) == {"id", "name", "category"} for t in r["tags"])
        assert all(isinstance(v, str) for t in r["tags"] for v in t.values())
        assert {t["category"] for t in r["tags"]} <= {"0", "1", "3", "4", "5"}
    assert len(fractions) >= 3  # 0-6 fractional digits occur
    assert any(r["last_commented_at"] == NULL_TIMESTAMP for _, r in records)
    assert any(r["pixiv_id"] == "0" for _, r in records) and any(r["pixiv_id"] != "0" for _, r in records)
    ids = [int(r["id"]) for _, r in records]
    assert len(set(ids)) == stats["n_posts"] and max(ids) - min(ids) > 10 * len(set(ids))  # not contiguous
    assert any(not line.isascii() for p in (root / "metadata").iterdir() for line in p.read_text("utf-8").split("\n"))
    assert (root / MARKER).is_file()


def test_older_snapshots_sit_in_other_shards_with_earlier_updated_at(dataset):
    root, stats = dataset
    by_id: dict[str, list[tuple[str, dict]]] = {}
    for shard, r in read_lines(root)[0]:
        by_id.setdefault(r["id"], []).append((shard, r))
    dups = [v for v in by_id.values() if len(v) > 1]
    assert len(dups) == stats["n_duplicates"] >= 1
    deleted_later = 0
    for (s1, r1), (s2, r2) in dups:
        assert s1 != s2 and r1["updated_at"] != r2["updated_at"]
        old, new = sorted((r1, r2), key=lambda r: r["updated_at"])
        assert len(old["tags"]) <= len(new["tags"]) and int(old["up_score"]) <= int(new["up_score"])
        assert not old["is_deleted"]
        deleted_later += new["is_deleted"]
    assert deleted_later >= 1  # keeping the wrong snapshot would resurrect a deleted post


def test_images_exist_exactly_for_safe_image_posts(dataset):
    root, stats = dataset
    posts = latest(read_lines(root)[0])
    written = {int(p.stem) for p in (root / "512px").rglob("*.jpg")}
    expected = {i for i, r in posts.items() if r["rating"] == "s" and r["file_ext"] in ("jpg", "png")}
    assert written == expected and len(written) == stats["n_images"]
    readable = 0
    for i in written:
        try:
            with Image.open(jpg_path(root, i)) as im:
                im.load()
                assert im.size == (CFG.canvas, CFG.canvas)
                readable += 1
        except OSError:
            pass
    assert readable == len(written) - stats["kinds"]["corrupt"]


def test_every_distractor_kind_is_present(dataset):
    root, stats = dataset
    assert set(stats["kinds"]) == {"color", "scan", "corrupt", *DISTRACTOR_KINDS}
    posts = latest(read_lines(root)[0])
    all_tags = [tags(r) for r in posts.values()]
    for tag in ("comic", "4koma", "photo_(medium)", "partially_monochrome", "spot_color"):
        assert any(tag in t for t in all_tags), tag
    assert all("monochrome" not in t for t in all_tags if "partially_monochrome" in t)
    assert {"q", "e"} <= {r["rating"] for r in posts.values()}
    assert any(r["is_deleted"] for r in posts.values()) and any(r["is_banned"] for r in posts.values())
    odd = [i for i, r in posts.items() if r["file_ext"] not in ("jpg", "png")]
    assert odd and not any(jpg_path(root, i).exists() for i in odd)
    sides = [(int(r["image_width"]), int(r["image_height"])) for r in posts.values()]
    assert any(max(s) < 256 for s in sides) and any(max(s) / min(s) >= 3.4 for s in sides)

    broken = []
    for i, r in posts.items():
        if jpg_path(root, i).exists():
            try:
                with Image.open(jpg_path(root, i)) as im:
                    im.load()
            except OSError:
                broken.append(r)
    assert 2 <= len(broken) <= 4
    assert all(r["rating"] == "s" and not tags(r) & MONO_FAMILY for r in broken)  # they look like color posts


def test_domain_tags(dataset):
    root, _ = dataset
    posts = latest(read_lines(root)[0])
    colors = [posts[i] for i in color_posts(root)]
    assert len(colors) == CFG.n_color
    assert all(r["rating"] == "s" and not tags(r) & MONO_FAMILY for r in colors)
    scans = [r for r in posts.values() if tags(r) & {"monochrome", "greyscale", "lineart"}
             and not tags(r) & {"comic", "spot_color", "partially_monochrome"}]
    assert len(scans) >= CFG.n_scan


def test_groundtruth_is_pixel_aligned_with_its_color_image(dataset):
    root, stats = dataset
    posts = latest(read_lines(root)[0])
    assert stats["n_groundtruth"] == CFG.n_color
    for i in color_posts(root):
        truth = Image.open(root / "groundtruth" / f"{i}.png")
        color = Image.open(jpg_path(root, i)).convert("L")
        assert truth.mode == "L" and truth.size == color.size
        ink = np.asarray(truth) < 64
        grey = np.asarray(color, dtype=np.float32)
        assert ink.mean() > 0.01
        assert grey[ink].mean() < grey[~ink].mean() - 40  # the color image's lines sit on the scan's lines
        w, h = shrink_to_fit(int(posts[i]["image_width"]), int(posts[i]["image_height"]), CFG.canvas)
        x0, y0 = (CFG.canvas - w) // 2, (CFG.canvas - h) // 2
        pad = np.ones_like(ink)
        pad[y0:y0 + h, x0:x0 + w] = False
        assert (np.asarray(truth)[pad] == 255).all()
        far = np.ones_like(ink)  # JPEG blurs 8x8 blocks across the content edge
        far[max(0, y0 - 8):y0 + h + 8, max(0, x0 - 8):x0 + w + 8] = False
        assert (grey[far] > 245).all()


def test_greyscale_of_color_is_not_the_scan(dataset):
    root, stats = dataset
    diffs = [np.abs(np.asarray(Image.open(jpg_path(root, i)).convert("L"), dtype=np.float32)
                    - np.asarray(Image.open(root / "groundtruth" / f"{i}.png"), dtype=np.float32)).mean()
             for i in color_posts(root)]
    assert np.mean(diffs) > 30
    assert stats["grey_vs_scan_mad"] == pytest.approx(np.mean(diffs), abs=5)


def test_scans_are_dark_lines_on_white(dataset):
    root, _ = dataset
    posts = latest(read_lines(root)[0])
    scans = [i for i, r in posts.items() if "lineart" in tags(r) or "monochrome" in tags(r)
             and not tags(r) & {"comic", "spot_color", "4koma"} and r["rating"] == "s" and jpg_path(root, i).exists()]
    assert scans
    for i in scans:
        rgb = np.asarray(Image.open(jpg_path(root, i)).convert("RGB"), dtype=np.int16)
        grey = rgb.mean(axis=2)
        assert 0.02 < (grey < 100).mean() < 0.5
        assert (grey > 200).mean() > 0.4
        assert np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max() < 30  # no color


def test_colored_images_are_colorful(dataset):
    root, _ = dataset
    for i in color_posts(root):
        hsv = np.asarray(Image.open(jpg_path(root, i)).convert("HSV"), dtype=np.float32)
        v = hsv[..., 2]
        content = v < 250  # skip the white padding
        assert hsv[..., 1][content].mean() / 255 > 0.2


def test_rerun_after_a_killed_run_and_refusing_a_foreign_folder(dataset, tmp_path):
    root, _ = dataset
    target = tmp_path / "source"
    partial = tmp_path / ".source.999999999.k1ll3d__.tmp"  # what a run killed mid-way leaves (pipeline.files)
    (partial / "512px").mkdir(parents=True)
    (partial / "512px" / "junk.jpg").write_bytes(b"half written")
    target.mkdir()
    (target / "old.txt").write_text("from the previous run")
    (target / MARKER).write_text("{}")
    generate_dataset(CFG, target, workers=1, progress=False)
    assert tree(target) == tree(root) and not partial.exists()

    foreign = tmp_path / "mirror"
    foreign.mkdir()
    (foreign / "metadata").mkdir()
    with pytest.raises(FileExistsError, match="refusing"):
        generate_dataset(CFG, foreign, workers=1, progress=False)
    assert (foreign / "metadata").is_dir()


# --------------------------------------------------------------------------- scene images


def test_render_functions_on_tiny_sizes():
    scene = make_scene(np.random.default_rng(0), 64, 48)
    scan = render_scan(scene, (64, 48))
    color = render_color(scene, (64, 48), np.random.default_rng(1))
    assert scan.mode == "L" and scan.size == (64, 48)
    assert color.mode == "RGB" and color.size == (64, 48)
    assert np.array_equal(np.asarray(scan), np.asarray(render_scan(make_scene(np.random.default_rng(0), 64, 48))))
    other = render_scan(make_scene(np.random.default_rng(2), 64, 48))
    assert not np.array_equal(np.asarray(scan), np.asarray(other))
    half = render_scan(make_scene(np.random.default_rng(0), 128, 96), (64, 48))  # a scene drawn smaller
    assert half.size == (64, 48) and (np.asarray(half) < 128).mean() > 0.02


def test_scan_and_color_statistics_over_many_scenes():
    dark, sat, mad = [], [], []
    for seed in range(12):
        scene = make_scene(np.random.default_rng(seed), 160, 128)
        scan = np.asarray(render_scan(scene), dtype=np.float32)
        color = render_color(scene, None, np.random.default_rng(seed + 100))
        dark.append((scan < 128).mean())
        sat.append(np.asarray(color.convert("HSV"))[..., 1].mean() / 255)
        mad.append(np.abs(np.asarray(color.convert("L"), dtype=np.float32) - scan).mean())
    assert 0.03 < np.mean(dark) < 0.4
    assert min(dark) > 0.01
    assert np.mean(sat) > 0.15  # half the backdrops are white, as on Danbooru; skin and white shirts are pale
    assert np.mean(mad) > 30  # greyscale(color) is clearly not the scan


def test_fit_and_pad():
    assert shrink_to_fit(2400, 1200, 512) == (512, 256)
    assert shrink_to_fit(100, 200, 512) == (100, 200)  # never enlarged
    with pytest.raises(ValueError):
        shrink_to_fit(0, 10, 512)
    padded = pad_to_square(Image.new("L", (10, 4), 0), 12)
    arr = np.asarray(padded)
    assert padded.size == (12, 12) and arr[4:8, 1:11].max() == 0 and arr[:4].min() == 255


@pytest.mark.parametrize("n", [0, 1, 5, 14, 120])
def test_distractor_counts(n):
    counts = distractor_counts(n)
    assert sum(counts.values()) == n
    if n >= 14:
        assert set(counts) == {"corrupt", *DISTRACTOR_KINDS} and 2 <= counts["corrupt"] <= 4
