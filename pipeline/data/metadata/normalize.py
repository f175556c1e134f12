"""Raw Danbooru2020 columns -> the published schema: string-encoded numbers as integers, the
"0" and 1970 null conventions as nulls, timestamps with 0-6 fractional digits and a literal
` UTC`, tags typed and deduplicated inside each record; all with vectorised Arrow kernels.
A value that cannot be read becomes null and is counted.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.data.danbooru import BOOL_FIELDS, NULLABLE_ID_FIELDS, TIMESTAMP_FIELDS
from pipeline.data.metadata.parse import RAW_INT_FIELDS, ParseStats

TAG_TYPE = pa.struct([("id", pa.int64()), ("name", pa.string()), ("category", pa.int8())])
TIMESTAMP = pa.timestamp("us", tz="UTC")

# The published table.
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("created_at", TIMESTAMP),
        ("updated_at", TIMESTAMP),
        ("uploader_id", pa.int64()),
        ("approver_id", pa.int64()),
        ("parent_id", pa.int64()),
        ("pixiv_id", pa.int64()),
        ("score", pa.int32()),
        ("up_score", pa.int32()),
        ("down_score", pa.int32()),
        ("fav_count", pa.int32()),
        ("rating", pa.string()),
        ("image_width", pa.int32()),
        ("image_height", pa.int32()),
        ("file_ext", pa.string()),
        ("file_size", pa.int64()),
        ("md5", pa.string()),
        ("source", pa.string()),
        ("file_url", pa.string()),
        ("last_commented_at", TIMESTAMP),
        ("last_noted_at", TIMESTAMP),
    ]
    + [(name, pa.bool_()) for name in BOOL_FIELDS]
    + [
        ("tags", pa.list_(TAG_TYPE)),
        ("tag_names", pa.list_(pa.string())),
        ("pools", pa.list_(pa.int64())),
    ]
)

_INT_TYPES = {name: SCHEMA.field(name).type for name in RAW_INT_FIELDS}
_INT_RE = r"^-?[0-9]{1,18}$"
_TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"


def normalize(raw: pa.Table, stats: ParseStats) -> pa.Table:
    """RAW_SCHEMA table -> SCHEMA table (typed, nulls as nulls, tags deduplicated)."""
    n = raw.num_rows
    ids = raw.column("id")
    try:
        pc.cast(ids, pa.int64())
        valid_id = pc.is_valid(ids)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        valid_id = pc.fill_null(pc.match_substring_regex(ids, _INT_RE), False)
    bad = n - _count(valid_id)
    if bad:
        stats.malformed["bad_id"] += bad
        raw = raw.filter(valid_id)
        n = raw.num_rows
    present = set(raw.column_names)
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in RAW_INT_FIELDS:
        if name in present:
            cols[name] = _to_int(raw.column(name), _INT_TYPES[name], name, stats)
    for name in NULLABLE_ID_FIELDS:
        if name in present:
            col = cols[name]
            cols[name] = pc.if_else(pc.equal(col, 0), pa.scalar(None, col.type), col)
    keep = pc.fill_null(pc.greater(cols["id"], 0), False)
    if _count(keep) < n:
        stats.malformed["bad_id"] += n - _count(keep)
        raw = raw.filter(keep)
        cols = {k: v.filter(keep) for k, v in cols.items()}
        n = raw.num_rows
    for name in TIMESTAMP_FIELDS:
        if name in present:
            cols[name] = _to_timestamp(raw.column(name), name, stats)
    for name in ("rating", "file_ext", "md5", "source", "file_url"):
        if name in present:
            cols[name] = raw.column(name)
    if "file_ext" in cols:
        cols["file_ext"] = pc.utf8_lower(cols["file_ext"])
    for name in BOOL_FIELDS:
        if name in present:
            cols[name] = pc.fill_null(raw.column(name), False)
    if "favs" in present:
        # dumps list favouriting users; the live API gives a count instead
        favs = raw.column("favs").combine_chunks()
        count = pc.list_value_length(favs)
        if "fav_count" in present:
            count = pc.coalesce(count, _to_int(raw.column("fav_count"), pa.int32(), "fav_count", stats))
        cols["fav_count"] = pc.cast(pc.fill_null(count, 0), pa.int32())
    if "pools" in present:
        cols["pools"] = _list_to_int(raw.column("pools").combine_chunks())
    if "tags" in present:
        cols["tags"], cols["tag_names"] = _normalize_tags(raw.column("tags").combine_chunks(), stats)
        if cols["tags"] is None:
            del cols["tags"]
    stats.records += n
    schema = pa.schema([f for f in SCHEMA if f.name in cols])
    return pa.table({f.name: cols[f.name] for f in schema}, schema=schema)


def _count(mask) -> int:
    """True values in a boolean array; 0 for an empty one (a block with no good line)."""
    return pc.sum(mask).as_py() or 0


def _to_int(col, typ: pa.DataType, name: str, stats: ParseStats):
    try:  # fast path: every value is a clean integer string
        out = pc.cast(col, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.match_substring_regex(col, _INT_RE)
        bad = pc.sum(pc.and_(pc.is_valid(col), pc.invert(pc.fill_null(ok, True)))).as_py() or 0
        stats.bad_values[name] += bad
        out = pc.cast(pc.if_else(pc.fill_null(ok, False), col, pa.scalar(None, pa.string())), pa.int64())
    if typ != pa.int64():
        info = np.iinfo(typ.to_pandas_dtype())
        lo, hi = pc.min_max(out).values()
        if lo.is_valid and (lo.as_py() < info.min or hi.as_py() > info.max):
            in_range = pc.and_(pc.greater_equal(out, info.min), pc.less_equal(out, info.max))
            stats.bad_values[name] += pc.sum(pc.invert(pc.fill_null(in_range, True))).as_py() or 0
            out = pc.if_else(pc.fill_null(in_range, False), out, pa.scalar(None, pa.int64()))
        out = pc.cast(out, typ)
    return out


def _to_timestamp(col, name: str, stats: ParseStats):
    text = pc.utf8_rtrim(pc.replace_substring(col, " UTC", ""), characters=" ")
    try:  # fast path: every value is 'YYYY-MM-DD HH:MM:SS[.f{1,6}]'
        ts = pc.cast(text, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.match_substring_regex(text, _TS_RE)
        stats.bad_values[name] += pc.sum(pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(ok, True)))).as_py() or 0
        text = pc.if_else(pc.fill_null(ok, False), text, pa.scalar(None, pa.string()))
        ts = pc.cast(text, pa.timestamp("us"))
    ts = pc.cast(ts, TIMESTAMP)  # the text is UTC
    return pc.if_else(pc.equal(ts, pa.scalar(0, TIMESTAMP)), pa.scalar(None, TIMESTAMP), ts)


def _list_to_int(arr: pa.ListArray) -> pa.ListArray:
    values = pc.list_flatten(arr)
    ok = pc.fill_null(pc.match_substring_regex(values, _INT_RE), False)
    values = pc.cast(pc.if_else(ok, values, pa.scalar(None, pa.string())), pa.int64())
    offsets = _offsets(arr)
    return pa.ListArray.from_arrays(offsets, values, mask=pc.is_null(arr))


def _offsets(arr: pa.ListArray) -> pa.Array:
    # list_flatten drops null lists; rebuild offsets from lengths so they match it
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(arr) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.array(offsets)


def _normalize_tags(arr: pa.ListArray, stats: ParseStats) -> tuple[pa.ListArray | None, pa.ListArray]:
    """Typed tags, deduplicated by name inside each record (first occurrence wins), and the
    names alone; tags is None for a names-only parse (the fused select path)."""
    n = len(arr)
    flat = pc.list_flatten(arr)
    if flat.type.get_field_index("id") < 0:
        # names-only parse (the fused select path): the filter is duplicate-proof, skip the work
        return None, pa.ListArray.from_arrays(_offsets(arr), flat.field("name"))
    parents = pc.list_parent_indices(arr).to_numpy()
    names = flat.field("name")
    keep = np.ones(len(flat), dtype=bool)
    valid_name = pc.fill_null(pc.greater(pc.utf8_length(names), 0), False).to_numpy(zero_copy_only=False)
    keep &= valid_name
    if len(flat):
        codes = pc.dictionary_encode(pc.fill_null(names, "")).indices.to_numpy().astype(np.int64)
        key = parents.astype(np.int64) * (int(codes.max()) + 1) + codes
        _, first = np.unique(key, return_index=True)
        unique_mask = np.zeros(len(flat), dtype=bool)
        unique_mask[first] = True
        dup = valid_name & ~unique_mask
        stats.duplicate_tags += int(dup.sum())
        keep &= unique_mask
    mask = pa.array(keep)
    flat = flat.filter(mask)
    kept_parents = parents[keep]
    lengths = np.bincount(kept_parents, minlength=n) if n else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    offsets = pa.array(offsets)
    name = flat.field("name")
    tag_names = pa.ListArray.from_arrays(offsets, name)
    tag_id = _to_int(flat.field("id"), pa.int64(), "tags.id", stats)
    tag_id = pc.if_else(pc.equal(tag_id, 0), pa.scalar(None, pa.int64()), tag_id)
    category = _to_int(flat.field("category"), pa.int8(), "tags.category", stats)
    tags_flat = pa.StructArray.from_arrays([tag_id, name, category], fields=list(TAG_TYPE))
    tags = pa.ListArray.from_arrays(offsets, tags_flat)
    return tags, tag_names
