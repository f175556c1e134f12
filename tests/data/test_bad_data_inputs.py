"""Bad data inputs to the metadata and images stages, generated here (no binary blobs in
the repository). Each case asserts the exact outcome: which reason and count are reported,
the file named, nothing half-written under a final name, the rest of the batch done.

Kinds covered (the README's Reliability section counts them):
 1. a truncated .gz metadata shard
 2. a truncated .bz2 metadata shard
 3. a truncated .xz metadata shard
 4. plain text named .xz
 5. plain text named .gz
 6. plain text named .bz2
 7. a .gz shard with one corrupted byte mid-stream
 8. a truncated .tar.gz archive of shards
 9. plain text named .tar.xz
10. a 9.6 MiB metadata line (a post with 3100 long tags), stage path
11. the same line, fused `metadata --select` path
12. "id" as a list
13. "id" as null
14. "id" as true
15. "id" as false
16. a NUL byte in the middle of a line
17. a line of NUL bytes
18. invalid UTF-8 inside a string value
19. a line of invalid UTF-8
20. a shard whose only line is bad (each of the eight above, alone)
21. an image symlinked to a file outside the mirror
22. an image symlink loop (2003.jpg -> 2003.jpg)
23. an image symlinked to another image inside the mirror (ok)
24. `512px/` a symlink to a folder outside the mirror root (ok)
25. the mirror root a symlink (ok)
26. a `../` path built from metadata (file_ext "../../../etc/passwd")
"""

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import re
import tarfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from pipeline.config import DomainRules, ImagesConfig, SelectConfig, SourceConfig
from pipeline.data.danbooru import dump_record, image_relpath
from pipeline.data.metadata.filter import filter_metadata
from pipeline.data.metadata.table import build_metadata_table
from pipeline.data.prepare import prepare_images
from pipeline.data.select import OUT_SCHEMA

UTC = timezone.utc


# --------------------------------------------------------------------------- metadata inputs


def rec(pid: int, **kw) -> dict:
    post = dict(id=pid, created_at=datetime(2015, 3, 1, tzinfo=UTC), updated_at=datetime(2019, 6, 1, tzinfo=UTC),
                rating="s", image_width=1200, image_height=900, file_ext="jpg", md5="%032x" % pid,
                tags=[("smile", 0, 5), ("1girl", 0, 6)])
    post.update(kw)
    return dump_record(post)


def lines(ids) -> bytes:
    return b"".join(json.dumps(rec(i)).encode() + b"\n" for i in ids)


def no_leftovers(folder: Path) -> bool:
    """Nothing half-written: no temporary files or spill folders beside the output."""
    return not [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def build(tmp_path: Path, files: list[Path]):
    out = tmp_path / "out" / "metadata.parquet"
    stats = build_metadata_table(files, out, progress=False)
    assert no_leftovers(out.parent)
    return pq.read_table(out), stats


def complete_lines(data: bytes) -> tuple[list[int], bool]:
    """Ids of the whole lines in decoded bytes, and whether a cut line follows them."""
    whole, _, tail = data.rpartition(b"\n")
    return [int(json.loads(line)["id"]) for line in whole.split(b"\n") if line], bool(tail)


def _truncated(compress, decompressor):
    def make(data: bytes) -> tuple[bytes, bytes]:
        packed = compress(data)
        cut = packed[: len(packed) // 2]
        return cut, decompressor().decompress(cut)  # every byte a decoder can get from `cut`
    return make


DAMAGED_SHARDS = {
    # name: (file name, make(data) -> (file bytes, decodable bytes), reason)
    "truncated gzip": ("a.json.gz", _truncated(gzip.compress, lambda: zlib.decompressobj(wbits=31)),
                       "truncated gzip stream"),
    "truncated bz2": ("a.json.bz2", _truncated(lambda d: bz2.compress(d, 1), bz2.BZ2Decompressor),
                      "truncated bz2 stream"),
    "truncated xz": ("a.json.xz", _truncated(lzma.compress, lzma.LZMADecompressor), "truncated xz stream"),
    "plain text named .xz": ("a.json.xz", lambda d: (d, b""), "not an xz file"),
    "plain text named .gz": ("a.json.gz", lambda d: (d, b""), "not a gzip file"),
    "plain text named .bz2": ("a.json.bz2", lambda d: (d, b""), "not a bz2 file"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGED_SHARDS))
def test_damaged_shard_keeps_its_good_lines_and_is_reported(tmp_path, kind):
    name, make, reason = DAMAGED_SHARDS[kind]
    before, after = tmp_path / "2020000000000000", tmp_path / "2020000000000002"
    before.write_bytes(lines(range(1, 11)))
    after.write_bytes(lines(range(5001, 5011)))
    damaged = tmp_path / name
    content, decodable = make(lines(range(1001, 3001)))  # 1.6 MB: several 100 kB bz2 blocks
    damaged.write_bytes(content)
    good, cut_line = complete_lines(decodable)
    assert (len(good) > 100) == (reason.startswith("truncated"))  # the damage is mid-file

    table, stats = build(tmp_path, [before, damaged, after])
    assert sorted(table.column("id").to_pylist()) == list(range(1, 11)) + good + list(range(5001, 5011))
    m = stats.as_metrics()
    assert m["damaged_files"] == 1
    assert m["damaged_by_file"] == {name: reason}
    assert m["malformed_by_reason"] == ({"invalid_json": 1} if cut_line else {})  # the line cut by the damage
    assert m["lines"] == 20 + len(good) + cut_line


def _flip_middle_byte(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[len(packed) // 2] ^= 0xFF
    return bytes(packed)


def test_corrupt_byte_is_reported_and_the_batch_done(tmp_path):
    """Deflate has no sync points: what follows a flipped byte decodes to garbage (counted as
    malformed lines) until the CRC check at the end of the stream names the damage."""
    before, after = tmp_path / "2020000000000000", tmp_path / "2020000000000002"
    before.write_bytes(lines(range(1, 11)))
    after.write_bytes(lines(range(5001, 5011)))
    damaged = tmp_path / "a.json.gz"
    damaged.write_bytes(_flip_middle_byte(lines(range(1001, 3001))))
    table, stats = build(tmp_path, [before, damaged, after])
    ids = set(table.column("id").to_pylist())
    assert set(range(1, 11)) | set(range(5001, 5011)) <= ids <= set(range(1, 11)) | set(range(1001, 3001)) | set(
        range(5001, 5011))
    assert len(ids) > 20 + 100  # the lines before the flipped byte
    (name, reason), = stats.as_metrics()["damaged_by_file"].items()
    assert name == "a.json.gz" and re.fullmatch(r"corrupt gzip stream after \d+ bytes \(.+\)", reason)


def test_plain_text_named_tar_xz(tmp_path):
    archive = tmp_path / "metadata.json.tar.xz"
    archive.write_bytes(lines(range(1, 11)))
    after = tmp_path / "2020000000000009"
    after.write_bytes(lines(range(9001, 9011)))
    table, stats = build(tmp_path, [archive, after])
    assert sorted(table.column("id").to_pylist()) == list(range(9001, 9011))
    assert stats.as_metrics()["damaged_by_file"] == {"metadata.json.tar.xz": "not a tar file"}
    assert stats.malformed == {}


def test_truncated_tar_archive_keeps_whole_members(tmp_path):
    first, second = lines(range(1, 301)), lines(range(1001, 3001))
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        for member, data in [("metadata/2020000000000000", first), ("metadata/2020000000000001", second)]:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "metadata.json.tar.gz"
    archive.write_bytes(packed.getvalue()[: len(packed.getvalue()) * 3 // 4])  # inside the second member
    after = tmp_path / "2020000000000009"
    after.write_bytes(lines(range(9001, 9011)))

    table, stats = build(tmp_path, [archive, after])
    ids = sorted(table.column("id").to_pylist())
    got_second = [i for i in ids if 1001 <= i <= 3000]
    assert [i for i in ids if i <= 300] == list(range(1, 301))
    assert got_second == list(range(1001, 1001 + len(got_second))) and 0 < len(got_second) < 2000
    assert [i for i in ids if i > 9000] == list(range(9001, 9011))
    assert stats.as_metrics()["damaged_by_file"] == {
        "metadata.json.tar.gz:metadata/2020000000000001": "truncated tar archive"}


N_LONG_TAGS = 3100


@pytest.fixture(scope="module")
def long_line_shard(tmp_path_factory) -> Path:
    """Post 7 carries 3100 tags of ~3.2 kB (one 9.6 MiB line) ending with `monochrome`,
    between ordinary posts: longer than two of the JSON reader's 4 MiB chunks, which once
    aborted the whole conversion."""
    tags = [(f"tag_{i:04d}_" + "x" * 3200, 0, i + 1) for i in range(N_LONG_TAGS)] + [("monochrome", 0, 99999)]
    long = json.dumps(rec(7, tags=tags)).encode()
    assert 9.5 * 2**20 < len(long) < 10 * 2**20
    path = tmp_path_factory.mktemp("long") / "2020000000000000"
    path.write_bytes(lines(range(1, 7)) + long + b"\n" + lines(range(8, 14)))
    return path


def test_long_line_stage_path(tmp_path, long_line_shard):
    table, stats = build(tmp_path, [long_line_shard])
    assert sorted(table.column("id").to_pylist()) == list(range(1, 14))
    rows = {r["id"]: r for r in table.select(["id", "tag_names"]).to_pylist()}
    names = rows[7]["tag_names"]
    assert len(names) == N_LONG_TAGS + 1 and names[0].startswith("tag_0000_") and names[-1] == "monochrome"
    assert rows[8]["tag_names"] == ["smile", "1girl"]
    assert stats.malformed == {} and stats.lines == 13


def test_long_line_fused_select_path(tmp_path, long_line_shard):
    cfg = SelectConfig(scan=DomainRules(include_any=["monochrome"]), color=DomainRules(exclude=["monochrome"]),
                       holdout_fraction=0.0)
    out = tmp_path / "out" / "selected.parquet"
    stats, counts = filter_metadata([long_line_shard], out, cfg, progress=False)
    assert no_leftovers(out.parent)
    selected = pq.read_table(out)
    domains = dict(zip(selected.column("id").to_pylist(), selected.column("domain").to_pylist()))
    # post 7 is a scan only through its last tag, after the 3100 long ones
    assert domains == {i: "scan" if i == 7 else "color" for i in range(1, 14)}
    assert stats.malformed == {} and stats.lines == 13 and counts["selected"] == 13


_GOOD = json.dumps(rec(3)).encode()
BAD_LINES = {
    # name: (line, malformed reason)
    "id as a list": (json.dumps(dict(rec(3), id=["3"])).encode(), "bad_id"),
    "id as null": (json.dumps(dict(rec(3), id=None)).encode(), "bad_id"),
    "id as true": (json.dumps(dict(rec(3), id=True)).encode(), "bad_id"),
    "id as false": (json.dumps(dict(rec(3), id=False)).encode(), "bad_id"),
    "NUL byte mid-line": (_GOOD[:40] + b"\x00" + _GOOD[40:], "invalid_json"),
    "line of NUL bytes": (b"\x00" * 16, "invalid_json"),
    "invalid UTF-8 in a value": (_GOOD.replace(b'"rating": "s"', b'"rating": "\xff\xfe"'), "invalid_json"),
    "line of invalid UTF-8": (b"\xc3\x28\xa0\xa1", "invalid_json"),
}


@pytest.mark.parametrize("alone", [False, True], ids=["amid good lines", "alone in its shard"])
@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_bad_line_is_counted_and_the_rest_kept(tmp_path, kind, alone):
    line, reason = BAD_LINES[kind]
    assert line != _GOOD
    shard = tmp_path / "2020000000000000"
    shard.write_bytes(line + b"\n" if alone else lines([1, 2]) + line + b"\n" + lines([4, 5]))
    other = tmp_path / "2020000000000001"
    other.write_bytes(lines([10, 11]))
    table, stats = build(tmp_path, [shard, other])
    assert sorted(table.column("id").to_pylist()) == ([] if alone else [1, 2, 4, 5]) + [10, 11]
    assert stats.malformed == {reason: 1}
    assert stats.lines == (1 if alone else 5) + 2
    table.validate(full=True)  # raises on invalid UTF-8 in a string column


# --------------------------------------------------------------------------- mirror layouts

IDS = [1001, 1002, 2003, 3004]  # buckets 0001, 0002, 0003, 0004


def picture(seed: int, color: bool) -> Image.Image:
    img = Image.new("RGB", (48, 48), "white")
    d = ImageDraw.Draw(img)
    d.ellipse([seed % 7, seed % 5, 30 + seed % 11, 40], fill=(seed % 255, 90, 160) if color else None,
              outline="black", width=2)
    return img


def make_mirror(root: Path) -> pa.Table:
    """A four-post Danbooru layout (512px/) and its selection table."""
    for i, pid in enumerate(IDS):
        path = root / image_relpath(pid, "jpg", "512px")
        path.parent.mkdir(parents=True, exist_ok=True)
        picture(pid, color=i % 2 == 0).save(path, format="JPEG")
    n = len(IDS)
    return pa.table({
        "id": IDS, "domain": ["color", "scan"] * (n // 2), "split": ["train"] * n, "file_ext": ["jpg"] * n,
        "image_width": [800] * n, "image_height": [800] * n, "rating": ["s"] * n, "file_url": [None] * n,
    }, schema=OUT_SCHEMA)


def run_images(tmp_path: Path, table: pa.Table, root: Path, out: str, variant: str = "512px") -> dict:
    source = SourceConfig(kind="local", root=str(root), image_variant=variant)
    cfg = ImagesConfig(size=16, shard_images=2, workers=1)
    return prepare_images(table, source, cfg, root, tmp_path / out, tmp_path / "work", tmp_path / "cache",
                          progress=False)


def read_failures(folder: Path) -> list[tuple[int, str, str]]:
    with open(folder / "failures.csv", newline="", encoding="utf-8") as f:
        return [(int(r["id"]), r["reason"], r["detail"]) for r in csv.DictReader(f)]


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _link_image_outside(tmp_path: Path, root: Path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.jpg"  # a decodable image: only the rule refuses it
    secret.parent.mkdir()
    picture(1, color=True).save(secret, format="JPEG")
    link = root / image_relpath(2003, "jpg", "512px")
    link.unlink()
    link.symlink_to(secret)
    return root


def _link_image_inside(tmp_path: Path, root: Path) -> Path:
    link = root / image_relpath(2003, "jpg", "512px")
    link.unlink()
    link.symlink_to(Path("..", "0001", "1001.jpg"))  # relative, as mirror tools make them
    return root


def _link_loop(tmp_path: Path, root: Path) -> Path:
    link = root / image_relpath(2003, "jpg", "512px")
    link.unlink()
    link.symlink_to("2003.jpg")
    return root


def _variant_folder_elsewhere(tmp_path: Path, root: Path) -> Path:
    disk = tmp_path / "disk2"
    disk.mkdir()
    os.replace(root / "512px", disk / "512px")
    (root / "512px").symlink_to(disk / "512px", target_is_directory=True)
    return root


def _root_is_a_link(tmp_path: Path, root: Path) -> Path:
    link = tmp_path / "mirror-link"
    link.symlink_to(root, target_is_directory=True)
    return link


LAYOUTS = {
    # name: (change(tmp_path, root) -> the root to pass, failure expected (id, reason, in detail) or None,
    #        output byte-identical to the plain mirror's)
    "image linked outside the mirror": (_link_image_outside, (2003, "unsafe_path", "outside the data folder"), False),
    "image link loop": (_link_loop, (2003, "unsafe_path", "loop"), False),
    "image linked inside the mirror": (_link_image_inside, None, False),
    "512px/ linked to another disk": (_variant_folder_elsewhere, None, True),
    "mirror root is a link": (_root_is_a_link, None, True),
}


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_mirror_links(tmp_path, kind):
    change, failure, same_as_plain = LAYOUTS[kind]
    root = tmp_path / "mirror"
    table = make_mirror(root)
    run_images(tmp_path, table, root, "plain")
    stats = run_images(tmp_path, table, change(tmp_path, root), "out")
    out = tmp_path / "out"
    got = read_failures(out)
    assert [(pid, reason) for pid, reason, _ in got] == ([failure[:2]] if failure else [])
    assert stats["failed"] == len(got) and stats["images"] == len(IDS) - len(got)
    if failure:
        assert stats["failed_unsafe_path"] == 1
        assert "512px/0003/2003.jpg" in got[0][2] and failure[2] in got[0][2]
    if same_as_plain:
        assert tree_bytes(out) == tree_bytes(tmp_path / "plain")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "plain").iterdir())
    assert no_leftovers(tmp_path) and not any((tmp_path / "work").iterdir())


def test_metadata_path_with_dotdot_is_refused(tmp_path):
    root = tmp_path / "mirror"
    table = make_mirror(root)
    for pid in IDS:  # the original/ variant keeps file_ext
        path = root / image_relpath(pid, "jpg", "original")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(root / image_relpath(pid, "jpg", "512px"), path)
    table = table.set_column(3, "file_ext", pa.array(["jpg", "../../../etc/passwd", "jpg", "jpg"]))
    stats = run_images(tmp_path, table, root, "out", variant="original")
    got = read_failures(tmp_path / "out")
    assert [(pid, reason) for pid, reason, _ in got] == [(1002, "unsafe_path")]
    assert "'../../../etc/passwd'" in got[0][2]
    assert stats["failed_unsafe_path"] == 1 and stats["images"] == 3
