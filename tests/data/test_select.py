"""Tag filter semantics and split determinism."""

from collections import Counter

import numpy as np
import pyarrow as pa

from pipeline.config import DomainRules, SelectConfig
from pipeline.data.select import filter_posts, split_hash, tag_hits


def table(rows):
    cols = {k: [r.get(k) for r in rows] for k in
            ["id", "rating", "file_ext", "image_width", "image_height", "is_deleted", "is_banned", "tag_names", "file_url"]}
    return pa.table({
        "id": pa.array(cols["id"], pa.int64()),
        "rating": pa.array(cols["rating"], pa.string()),
        "file_ext": pa.array(cols["file_ext"], pa.string()),
        "image_width": pa.array(cols["image_width"], pa.int32()),
        "image_height": pa.array(cols["image_height"], pa.int32()),
        "is_deleted": pa.array(cols["is_deleted"], pa.bool_()),
        "is_banned": pa.array(cols["is_banned"], pa.bool_()),
        "tag_names": pa.array(cols["tag_names"], pa.list_(pa.string())),
        "file_url": pa.array(cols["file_url"], pa.string()),
    })


def post(pid, tags, **kw):
    base = dict(id=pid, rating="s", file_ext="jpg", image_width=800, image_height=600,
                is_deleted=False, is_banned=False, tag_names=tags)
    base.update(kw)
    return base


RULES = SelectConfig(
    scan=DomainRules(include_any=["monochrome", "greyscale", "lineart"], exclude=["comic", "4koma", "spot_color"]),
    color=DomainRules(exclude=["monochrome", "greyscale", "lineart", "comic", "4koma", "spot_color",
                               "partially_monochrome", "photo_(medium)"]),
    holdout_fraction=0.0,
)


def run(rows, cfg=RULES):
    counts = Counter()
    out = filter_posts(table(rows), cfg, counts)
    return {r["id"]: r["domain"] for r in out.to_pylist()}, counts


def test_exact_tag_match_not_substring():
    got, counts = run([
        post(1, ["monochrome", "1girl"]),
        post(2, ["partially_monochrome", "1girl"]),  # not a scan; excluded from color too
        post(3, ["monochrome_background"]),  # a color post: not the monochrome tag
        post(4, ["1girl", "smile"]),
    ])
    assert got == {1: "scan", 3: "color", 4: "color"}
    assert counts["rejected_no_domain"] == 1


def test_exclusions_and_rejection_reasons_in_order():
    got, counts = run([
        post(1, ["monochrome", "comic"]),
        post(2, ["4koma"]),
        post(3, ["monochrome"], is_deleted=True),
        post(4, ["monochrome"], is_banned=True),
        post(5, ["monochrome"], rating="e"),
        post(6, ["monochrome"], file_ext="zip"),
        post(7, ["monochrome"], image_width=100),
        post(8, ["monochrome"], image_width=4000, image_height=500),
        post(9, ["photo_(medium)"]),
        post(10, ["greyscale", "lineart"]),
        post(11, ["smile"], rating=None, tag_names=None),
    ])
    assert got == {10: "scan"}
    assert counts["rejected_deleted"] == 1 and counts["rejected_banned"] == 1
    assert counts["rejected_rating"] == 2  # e, and a null rating
    assert counts["rejected_file_ext"] == 1
    assert counts["rejected_too_small"] == 1
    assert counts["rejected_aspect"] == 1
    assert counts["rejected_no_domain"] == 3  # comic, 4koma, photo
    assert counts["posts"] == 11
    assert sum(v for k, v in counts.items() if k.startswith("rejected_")) == 10


def test_include_all():
    cfg = SelectConfig(scan=DomainRules(include_all=["monochrome", "lineart"]),
                       color=DomainRules(include_any=["never"]), holdout_fraction=0.0)
    got, _ = run([post(1, ["monochrome"]), post(2, ["monochrome", "lineart", "x"])], cfg)
    assert got == {2: "scan"}


def test_both_domains_rejected():
    cfg = SelectConfig(scan=DomainRules(include_any=["a"]), color=DomainRules(include_any=["b"]),
                       holdout_fraction=0.0)
    got, counts = run([post(1, ["a", "b"]), post(2, ["b"])], cfg)
    assert got == {2: "color"} and counts["rejected_both_domains"] == 1


def test_tag_hits_counts_per_row():
    arr = pa.array([["a", "b"], [], None, ["b", "c", "a"]], pa.list_(pa.string()))
    assert tag_hits(arr, ["a", "c"]).tolist() == [1, 0, 0, 2]


def test_split_is_deterministic_uniform_and_seeded():
    ids = np.arange(1, 200_001)
    u = split_hash(ids, 0)
    assert np.array_equal(u, split_hash(ids, 0))
    assert 0 <= u.min() and u.max() < 1
    assert abs((u < 0.1).mean() - 0.1) < 0.005
    assert not np.array_equal(u, split_hash(ids, 1))
    # a post's side does not depend on which other posts exist
    assert np.array_equal(split_hash(ids[::7], 0), u[::7])


def test_holdout_fraction_applied():
    cfg = SelectConfig(scan=RULES.scan, color=RULES.color, holdout_fraction=0.25)
    out = filter_posts(table([post(i, ["x"]) for i in range(1, 2001)]), cfg)
    frac = np.mean([s == "holdout" for s in out.column("split").to_pylist()])
    assert 0.2 < frac < 0.3


def test_repeated_tag_counts_once():
    arr = pa.array([["a", "a", "b"], ["a", "a"]], pa.list_(pa.string()))
    assert tag_hits(arr, ["a", "b"]).tolist() == [2, 1]
