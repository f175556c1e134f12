"""Metadata parsing on real-format Danbooru2020 records."""

import gzip
import io
import json
import lzma
import tarfile
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from pipeline.data.danbooru import dump_record
from pipeline.data.metadata.normalize import SCHEMA
from pipeline.data.metadata.table import build_metadata_table

UTC = timezone.utc


def rec(pid, **kw):
    post = dict(
        id=pid,
        created_at=datetime(2015, 3, 1, 12, 0, 5, 123400, tzinfo=UTC),
        updated_at=datetime(2019, 6, 1, 8, 30, 0, tzinfo=UTC),
        uploader_id=42, score=7, up_score=8, down_score=-1, rating="s",
        image_width=1200, image_height=900, file_ext="jpg", file_size=345678,
        md5="0" * 32, source="https://www.pixiv.net/ünïcødé/✨",
        tags=[("monochrome", 0, 1), ("greyscale", 0, 2), ("初音ミク", 4, 3), ("monochrome", 0, 1)],
        pools=[12], favs=[1, 2, 3],
    )
    post.update(kw)
    return dump_record(post)


def write_lines(path, records, extra_lines=()):
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(tmp_path, files, **kw):
    out = tmp_path / "out.parquet"
    stats = build_metadata_table(files, out, progress=False, **kw)
    return pq.read_table(out), stats


def test_types_nulls_and_tags(tmp_path):
    f = tmp_path / "2020000000000000"
    write_lines(f, [rec(148112, parent_id=None, approver_id=99, last_commented_at=None)])
    table, stats = build(tmp_path, [f])
    assert table.schema.equals(SCHEMA)
    row = table.to_pylist()[0]
    assert row["id"] == 148112 and isinstance(row["id"], int)
    assert row["parent_id"] is None  # "0" means null
    assert row["approver_id"] == 99
    assert row["pixiv_id"] is None
    assert row["last_commented_at"] is None  # the 1970 null
    assert row["created_at"] == datetime(2015, 3, 1, 12, 0, 5, 123400, tzinfo=UTC)
    assert row["score"] == 7 and row["down_score"] == -1
    assert row["fav_count"] == 3 and row["pools"] == [12]
    assert row["source"] == "https://www.pixiv.net/ünïcødé/✨"
    # duplicate tag inside the record dropped, first occurrence kept, categories typed
    assert row["tag_names"] == ["monochrome", "greyscale", "初音ミク"]
    assert row["tags"][2] == {"id": 3, "name": "初音ミク", "category": 4}
    assert stats.duplicate_tags == 1


def test_timestamp_fraction_digits(tmp_path):
    raw = rec(5)
    lines = []
    for i, ts in enumerate(["2005-05-24 03:35:31 UTC", "2005-05-24 03:35:31.8 UTC",
                            "2005-05-24 03:35:31.88181 UTC", "2005-05-24 03:35:31.881810 UTC"]):
        r = dict(raw, id=str(10 + i), created_at=ts)
        lines.append(json.dumps(r))
    f = tmp_path / "shard"
    f.write_text("\n".join(lines) + "\n")
    table, _ = build(tmp_path, [f])
    got = [t.microsecond for t in table.column("created_at").to_pylist()]
    assert got == [0, 800000, 881810, 881810]


def test_malformed_lines_are_counted_not_fatal(tmp_path):
    f = tmp_path / "shard"
    write_lines(f, [rec(1), rec(2)], extra_lines=[
        '{"id":"3","tags":[{"id"',  # truncated
        "[1,2,3]",  # not an object
        '{"rating":"s"}',  # no id
        '{"id":"abc","rating":"s"}',  # non-numeric id
        json.dumps(dict(rec(4), score="lots")),  # bad value -> null, row kept
        json.dumps(dict(rec(6), id=6, image_width=1000)),  # numbers as JSON numbers: coerced
    ])
    table, stats = build(tmp_path, [f])
    m = stats.as_metrics()
    assert sorted(table.column("id").to_pylist()) == [1, 2, 4, 6]
    assert m["malformed_lines"] == 4
    assert m["malformed_by_reason"] == {"bad_id": 1, "invalid_json": 1, "missing_id": 1, "not_an_object": 1}
    assert m["bad_values_nulled"].get("score") == 1
    row6 = [r for r in table.to_pylist() if r["id"] == 6][0]
    assert row6["image_width"] == 1000


def test_dedupe_keeps_newest_snapshot(tmp_path):
    a, b = tmp_path / "2020000000000000", tmp_path / "2020000000000001"
    old = rec(77, updated_at=datetime(2018, 1, 1, tzinfo=UTC), score=1)
    new = rec(77, updated_at=datetime(2020, 1, 1, tzinfo=UTC), score=50)
    write_lines(a, [new, rec(1)])
    write_lines(b, [old, rec(2)])
    table, stats = build(tmp_path, [a, b])
    rows = {r["id"]: r for r in table.to_pylist()}
    assert sorted(rows) == [1, 2, 77]
    assert rows[77]["score"] == 50
    assert stats.duplicate_ids == 1


@pytest.mark.parametrize("buckets,block_mb", [(1, 1), (7, 1), (3, 32)])
def test_buckets_and_blocks_do_not_change_content(tmp_path, buckets, block_mb):
    records = [rec(i * 37 % 1000 + 1, score=i) for i in range(600)]  # with repeats
    f = tmp_path / "shard"
    write_lines(f, records)
    table, stats = build(tmp_path, [f], buckets=buckets, block_mb=block_mb)
    ref_ids = sorted({int(r["id"]) for r in records})
    assert sorted(table.column("id").to_pylist()) == ref_ids
    assert stats.rows_out == len(ref_ids)
    assert stats.duplicate_ids == 600 - len(ref_ids)


def test_compressed_and_archived_inputs(tmp_path):
    records = [rec(i) for i in range(1, 21)]
    text = ("\n".join(json.dumps(r) for r in records) + "\n").encode()
    gz = tmp_path / "a.json.gz"
    half = text.split(b"\n")
    first, second = b"\n".join(half[:10]) + b"\n", b"\n".join(half[10:])
    gz.write_bytes(gzip.compress(first))
    xz = tmp_path / "b.xz"
    xz.write_bytes(lzma.compress(second))
    tar_path = tmp_path / "metadata.json.tar.xz"
    with tarfile.open(tar_path, "w:xz") as tar:
        for name, data in [("metadata/2020000000000000", first), ("metadata/2020000000000001", second)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    t1, _ = build(tmp_path, [gz, xz])
    out2 = tmp_path / "o2.parquet"
    build_metadata_table([tar_path], out2, progress=False)
    t2 = pq.read_table(out2)
    assert sorted(t1.column("id").to_pylist()) == list(range(1, 21))
    assert sorted(t2.column("id").to_pylist()) == list(range(1, 21))


def test_output_is_atomic_and_deterministic(tmp_path):
    f = tmp_path / "shard"
    write_lines(f, [rec(i) for i in range(1, 50)])
    out = tmp_path / "o.parquet"
    build_metadata_table([f], out, progress=False)
    first = pq.read_table(out)
    build_metadata_table([f], out, progress=False)
    assert pq.read_table(out).equals(first)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".metadata-*"))


def test_file_without_trailing_newline(tmp_path):
    f = tmp_path / "shard"
    f.write_text(json.dumps(rec(1)) + "\n" + json.dumps(rec(2)))
    table, stats = build(tmp_path, [f])
    assert sorted(table.column("id").to_pylist()) == [1, 2]
    assert stats.lines == 2


def test_fused_filter_matches_table_then_select(tmp_path):
    from pipeline.config import DomainRules, SelectConfig
    from pipeline.data.metadata.filter import filter_metadata
    from pipeline.data.select import select_posts

    records = []
    for i in range(1, 300):
        tags = [("monochrome", 0, 1)] if i % 3 == 0 else [("smile", 0, 5)]
        if i % 7 == 0:
            tags.append(("comic", 0, 9))
        records.append(rec(i, tags=tags, rating="s" if i % 5 else "e", is_deleted=(i % 11 == 0)))
    # a newer snapshot that deletes post 3 must win in both paths
    records.append(rec(3, updated_at=datetime(2021, 1, 1, tzinfo=UTC), is_deleted=True))
    f = tmp_path / "shard"
    write_lines(f, records)
    cfg = SelectConfig(scan=DomainRules(include_any=["monochrome"], exclude=["comic"]),
                       color=DomainRules(exclude=["monochrome", "comic"]), holdout_fraction=0.2)
    build_metadata_table([f], tmp_path / "all.parquet", progress=False)
    via_table, counts_a = select_posts(tmp_path / "all.parquet", cfg)
    _, counts_b = filter_metadata([f], tmp_path / "sel.parquet", cfg, progress=False)
    fused = pq.read_table(tmp_path / "sel.parquet")
    assert fused.equals(via_table)
    assert counts_a == counts_b
    assert 3 not in fused.column("id").to_pylist()
    assert counts_a["scan_train"] + counts_a["scan_holdout"] > 0


def test_last_line_cut_without_newline(tmp_path):
    """A shard cut mid-line by a failed copy: the cut line is its own block, and counted."""
    f = tmp_path / "shard"
    f.write_text(json.dumps(rec(1)) + "\n" + json.dumps(rec(2)) + "\n" + json.dumps(rec(3))[:60])
    table, stats = build(tmp_path, [f])
    assert sorted(table.column("id").to_pylist()) == [1, 2]
    assert stats.malformed == {"invalid_json": 1} and stats.lines == 3


@pytest.mark.parametrize("suffix,compress,reason", [
    (".gz", gzip.compress, "truncated gzip stream"),
    (".xz", lzma.compress, "truncated xz stream"),
])
def test_damaged_shard_is_reported_not_fatal(tmp_path, suffix, compress, reason):
    data = ("".join(json.dumps(rec(i)) + "\n" for i in range(1, 400))).encode()
    packed = compress(data)
    f = tmp_path / f"2020000000000000{suffix}"
    f.write_bytes(packed[: len(packed) // 2])
    table, stats = build(tmp_path, [f])
    ids = table.column("id").to_pylist()
    assert len(ids) > 50 and sorted(ids) == list(range(1, len(ids) + 1))  # the lines before the damage
    m = stats.as_metrics()
    assert m["damaged_files"] == 1 and m["damaged_by_file"] == {f.name: reason}
    # without a damage handler the reader says which file and why, instead of EOFError
    from pipeline.data.metadata.read import DamagedInputError, iter_blocks, iter_metadata_streams

    with pytest.raises(DamagedInputError, match=f"{f.name}: {reason}"):
        for _name, stream in iter_metadata_streams(f):
            for _ in iter_blocks(stream, 1 << 20):
                pass


def test_undamaged_inputs_report_no_damage(tmp_path):
    f = tmp_path / "a.json.gz"
    f.write_bytes(gzip.compress((json.dumps(rec(1)) + "\n").encode()))
    _, stats = build(tmp_path, [f])
    m = stats.as_metrics()
    assert m["damaged_files"] == 0 and m["damaged_by_file"] == {}
