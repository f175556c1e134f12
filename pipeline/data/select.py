"""Tag filtering: the metadata table -> the scan set and the color set, split train/holdout.

OnePunchGAN needs two *unpaired* domains: line-art scans (monochrome/greyscale/lineart
posts) and colored illustrations. Tags match exactly, as whole names:
`partially_monochrome` is not `monochrome`. Every rejected post is counted under the
first rule it fails, so `dvc metrics show` explains where the data went.

The split is a hash of (split_seed, id): a post stays on its side when the dataset
grows, and the holdout never leaks into training.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import DomainRules, SelectConfig

DOMAINS = ("scan", "color")
REJECT_REASONS = ("deleted", "banned", "rating", "file_ext", "too_small", "aspect", "no_domain", "both_domains")
COLUMNS = ["id", "rating", "file_ext", "image_width", "image_height", "is_deleted", "is_banned",
           "tag_names", "file_url"]
OUT_SCHEMA = pa.schema([
    ("id", pa.int64()), ("domain", pa.string()), ("split", pa.string()), ("file_ext", pa.string()),
    ("image_width", pa.int32()), ("image_height", pa.int32()), ("rating", pa.string()),
    ("file_url", pa.string()),
])

def tag_hits(tag_lists: pa.ListArray | pa.ChunkedArray, tags: list[str]) -> np.ndarray:
    """Per row, how many of `tags` it carries (tags are unique within a row)."""
    if isinstance(tag_lists, pa.ChunkedArray):
        tag_lists = tag_lists.combine_chunks()
    n = len(tag_lists)
    if not tags or n == 0:
        return np.zeros(n, dtype=np.int64)
    flat = pc.list_flatten(tag_lists)
    parents = pc.list_parent_indices(tag_lists).to_numpy()
    codes = pc.index_in(flat, value_set=pa.array(sorted(set(tags)), pa.string()))
    hit = pc.is_valid(codes).to_numpy(zero_copy_only=False)
    # count distinct tags per row: a tag repeated inside a record counts once
    key = np.unique(parents[hit].astype(np.int64) * len(tags) + codes.filter(pc.is_valid(codes)).to_numpy())
    return np.bincount(key // len(tags), minlength=n)


def domain_mask(tag_lists, rules: DomainRules) -> np.ndarray:
    """Rows that match the domain's include rules and carry none of its excluded tags."""
    n = len(tag_lists)
    included = np.ones(n, dtype=bool)
    if rules.include_any:
        included &= tag_hits(tag_lists, rules.include_any) > 0
    if rules.include_all:
        included &= tag_hits(tag_lists, rules.include_all) == len(set(rules.include_all))
    return included & ~(tag_hits(tag_lists, rules.exclude) > 0)


def split_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per id, stable across runs and machines (splitmix64)."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def classify_posts(table: pa.Table, cfg: SelectConfig) -> pa.Table:
    """Every metadata row -> OUT_SCHEMA columns plus `reason`: the index into
    REJECT_REASONS of the first rule it fails, or -1 when it is selected."""
    n = table.num_rows
    reason = np.full(n, -1, dtype=np.int8)

    def reject(mask: np.ndarray, name: str) -> None:
        reason[(reason < 0) & mask] = REJECT_REASONS.index(name)

    def col(name: str) -> pa.Array:
        c = table.column(name)
        return c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c

    if cfg.drop_deleted:
        reject(pc.fill_null(col("is_deleted"), False).to_numpy(zero_copy_only=False), "deleted")
    if cfg.drop_banned:
        reject(pc.fill_null(col("is_banned"), False).to_numpy(zero_copy_only=False), "banned")
    rating_ok = pc.fill_null(pc.is_in(col("rating"), value_set=pa.array(cfg.ratings, pa.string())), False)
    reject(~rating_ok.to_numpy(zero_copy_only=False), "rating")
    ext_ok = pc.fill_null(pc.is_in(col("file_ext"), value_set=pa.array(cfg.file_ext, pa.string())), False)
    reject(~ext_ok.to_numpy(zero_copy_only=False), "file_ext")
    w = pc.fill_null(col("image_width"), 0).to_numpy(zero_copy_only=False).astype(np.float64)
    h = pc.fill_null(col("image_height"), 0).to_numpy(zero_copy_only=False).astype(np.float64)
    reject((w < max(cfg.min_side, 1)) | (h < max(cfg.min_side, 1)), "too_small")
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(h > 0, w / np.where(h > 0, h, 1), 0)
    reject((aspect < cfg.min_aspect) | (aspect > cfg.max_aspect), "aspect")

    tags = col("tag_names")
    scan = domain_mask(tags, cfg.scan)
    color = domain_mask(tags, cfg.color)
    reject(scan & color, "both_domains")
    reject(~scan & ~color, "no_domain")

    ids = col("id").to_numpy()
    split = np.where(split_hash(ids, cfg.split_seed) < cfg.holdout_fraction, "holdout", "train")
    out = pa.table({
        "id": col("id"),
        "domain": pa.array(np.where(scan, "scan", "color"), pa.string()),
        "split": pa.array(split, pa.string()),
        "file_ext": col("file_ext"),
        "image_width": pc.cast(col("image_width"), pa.int32()),
        "image_height": pc.cast(col("image_height"), pa.int32()),
        "rating": col("rating"),
        "file_url": col("file_url") if "file_url" in table.column_names else pa.nulls(n, pa.string()),
    }, schema=OUT_SCHEMA)
    return out.append_column("reason", pa.array(reason))


def keep_selected(classified: pa.Table, counts: Counter) -> pa.Table:
    """Count rows per rejection reason; return the selected rows (OUT_SCHEMA)."""
    reason = classified.column("reason").to_numpy()
    counts["posts"] += len(reason)
    per_reason = np.bincount(reason[reason >= 0], minlength=len(REJECT_REASONS))
    for name, k in zip(REJECT_REASONS, per_reason):
        counts[f"rejected_{name}"] += int(k)
    return classified.filter(pa.array(reason < 0)).drop_columns(["reason"])


def filter_posts(table: pa.Table, cfg: SelectConfig, counts: Counter | None = None) -> pa.Table:
    """Metadata rows -> selected rows (OUT_SCHEMA); rejections are added to `counts`."""
    return keep_selected(classify_posts(table, cfg), counts if counts is not None else Counter())


def iter_metadata_batches(path: Path, batch_rows: int = 65536) -> Iterator[pa.Table]:
    """Stream the metadata Parquet in row batches: only the columns the filter reads."""
    pf = pq.ParquetFile(path)
    columns = [c for c in COLUMNS if c in pf.schema_arrow.names]
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        yield pa.Table.from_batches([batch])


def select_posts(metadata_path: Path, cfg: SelectConfig) -> tuple[pa.Table, Counter]:
    """Filter the whole metadata table in bounded memory; sorted by (domain, split, id)."""
    counts: Counter = Counter()
    parts = [filter_posts(batch, cfg, counts) for batch in iter_metadata_batches(metadata_path)]
    return finish_selection(parts, cfg, counts), counts


def finish_selection(parts: list[pa.Table], cfg: SelectConfig, counts: Counter) -> pa.Table:
    """Concatenate filtered parts, apply the per-domain cap, sort, count per domain/split."""
    selected = pa.concat_tables(parts) if parts else OUT_SCHEMA.empty_table()
    if cfg.max_per_domain and selected.num_rows:
        before = selected.num_rows
        selected = _cap(selected, cfg)
        counts["rejected_over_cap"] = before - selected.num_rows
    selected = _ensure_holdout(selected, cfg)
    selected = selected.sort_by([("domain", "ascending"), ("split", "ascending"), ("id", "ascending")])
    for d in DOMAINS:
        for s in ("train", "holdout"):
            mask = pc.and_(pc.equal(selected.column("domain"), d), pc.equal(selected.column("split"), s))
            counts[f"{d}_{s}"] = pc.sum(mask).as_py() or 0
    counts["selected"] = selected.num_rows
    return selected


def _ensure_holdout(selected: pa.Table, cfg: SelectConfig) -> pa.Table:
    """A small set (a user's folder of 20 pages) can hash no colored post into the holdout
    that the sample grids and the evaluation show: then the colored post that hashes
    lowest goes there, so a holdout of at least one exists whenever holdout_fraction > 0
    and there are two colored posts or more. Large sets are never touched."""
    domain = selected.column("domain").to_numpy(zero_copy_only=False)
    split = selected.column("split").to_numpy(zero_copy_only=False)
    color = np.flatnonzero(domain == "color")
    if cfg.holdout_fraction <= 0 or len(color) < 2 or (split[color] == "holdout").any():
        return selected
    first = color[np.argmin(split_hash(selected.column("id").to_numpy()[color], cfg.split_seed))]
    split = split.copy()
    split[first] = "holdout"
    at = selected.schema.get_field_index("split")
    return selected.set_column(at, "split", pa.array(split, pa.string()))


def _cap(selected: pa.Table, cfg: SelectConfig) -> pa.Table:
    """At most max_per_domain posts per domain, chosen by a second hash (deterministic)."""
    ids = selected.column("id").to_numpy()
    rank_key = split_hash(ids, cfg.split_seed + 1)
    domain = selected.column("domain").to_numpy(zero_copy_only=False)
    keep = np.zeros(len(ids), dtype=bool)
    for d in DOMAINS:
        idx = np.flatnonzero(domain == d)
        chosen = idx[np.argsort(rank_key[idx], kind="stable")[: cfg.max_per_domain]]
        keep[chosen] = True
    return selected.filter(pa.array(keep))
