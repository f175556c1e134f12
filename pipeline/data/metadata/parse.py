"""JSON lines -> Arrow tables of Danbooru2020's raw types (numbers are strings).

Arrow's C++ JSON reader with an explicit schema parses a block of lines far faster than a
Python `json.loads` loop. A block that Arrow rejects (a truncated line, a number where a
string belongs) is re-parsed line by line with orjson, so one bad line costs one counted
record, never the block. A line longer than the reader's chunks (a post with thousands of
tags) is read with chunks sized to it. Nothing is dropped without a count (`ParseStats`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pajson

from pipeline.data.danbooru import BOOL_FIELDS, NULLABLE_ID_FIELDS, TIMESTAMP_FIELDS

_RAW_TAG = pa.struct([("id", pa.string()), ("name", pa.string()), ("category", pa.string())])
RAW_INT_FIELDS = ("id", "uploader_id", "score", "up_score", "down_score", "image_width",
                   "image_height", "file_size") + NULLABLE_ID_FIELDS
_RAW_STRING_FIELDS = ("rating", "file_ext", "md5", "source", "file_url", "fav_count") + TIMESTAMP_FIELDS

# How a Danbooru2020 line looks to the JSON reader: numbers are strings.
RAW_SCHEMA = pa.schema(
    [(name, pa.string()) for name in RAW_INT_FIELDS]
    + [(name, pa.string()) for name in _RAW_STRING_FIELDS]
    + [(name, pa.bool_()) for name in BOOL_FIELDS]
    + [("tags", pa.list_(_RAW_TAG)), ("pools", pa.list_(pa.string())), ("favs", pa.list_(pa.string()))]
)

# What the fused metadata+select path parses: only what the tag filter and dedupe read.
SELECT_RAW_SCHEMA = pa.schema(
    [RAW_SCHEMA.field(n) for n in ("id", "updated_at", "rating", "file_ext", "image_width", "image_height",
                                    "is_deleted", "is_banned", "file_url")]
    + [("tags", pa.list_(pa.struct([("name", pa.string())])))]
)


@dataclass
class ParseStats:
    """What happened to the input, for metrics: nothing is dropped without a count."""

    bytes_in: int = 0
    lines: int = 0
    records: int = 0  # parsed and kept for dedupe
    malformed: Counter = field(default_factory=Counter)  # reason -> lines
    bad_values: Counter = field(default_factory=Counter)  # field -> values turned into null
    duplicate_ids: int = 0
    duplicate_tags: int = 0
    rows_out: int = 0
    files: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)  # input name -> what is wrong with it

    def note_damage(self, name: str, reason: str) -> None:
        self.damaged.setdefault(name, reason)

    def as_metrics(self) -> dict:
        return {
            "files": len(self.files),
            "input_mb": round(self.bytes_in / 1e6, 3),
            "lines": self.lines,
            "records_parsed": self.records,
            "malformed_lines": sum(self.malformed.values()),
            "malformed_by_reason": dict(sorted(self.malformed.items())),
            "bad_values_nulled": dict(sorted(self.bad_values.items())),
            "duplicate_ids_dropped": self.duplicate_ids,
            "duplicate_tags_dropped": self.duplicate_tags,
            "rows": self.rows_out,
            "damaged_files": len(self.damaged),
            "damaged_by_file": dict(sorted(self.damaged.items())),
        }


def parse_block(block, stats: ParseStats, schema: pa.Schema = RAW_SCHEMA) -> pa.Table:
    """JSON lines -> `schema` (RAW_SCHEMA or a subset); bad lines are counted in `stats`."""
    stats.bytes_in += len(block)
    try:
        _check_utf8(block)
        table = _read_json(block, schema)
        stats.lines += table.num_rows  # Arrow skips blank lines; so do we
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = _parse_lines_slowly(block, stats, schema)
    return table


def _check_utf8(block) -> None:
    """ArrowInvalid unless `block` is valid UTF-8. Arrow's JSON reader copies invalid bytes
    into string columns (where they break later readers) while orjson rejects the line, so
    without this check a line's fate would depend on its neighbours. ~6 GB/s."""
    data = pa.py_buffer(block)
    offsets = pa.py_buffer(np.array([0, data.size], dtype=np.int64))
    pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data]).cast(pa.large_string())


_JSON_CHUNK = 4 << 20  # Arrow's reader parses a block in chunks of this size, one per thread


def _read_json(block, schema: pa.Schema = RAW_SCHEMA) -> pa.Table:
    """Arrow's JSON reader over one block of lines.

    The reader rejects a line that covers a whole chunk ("straddling object"). Such a line
    (a post with thousands of tags) is rare, so the check costs nothing up front: only a
    block the reader rejected is measured, and if it holds a line that long it is read again
    with chunks longer than that line; any other rejection is the caller's (bad lines).
    """
    try:
        return _read_json_chunked(block, schema, _JSON_CHUNK)
    except pa.ArrowInvalid:
        longest = _longest_line(block)
        if longest < _JSON_CHUNK:
            raise
        return _read_json_chunked(block, schema, min(((longest >> 20) + 1) << 20, 2**31 - 1))


def _read_json_chunked(block, schema: pa.Schema, chunk: int) -> pa.Table:
    return pajson.read_json(
        pa.BufferReader(block),
        read_options=pajson.ReadOptions(use_threads=True, block_size=chunk),  # threads split blocks
        parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )


def _longest_line(block) -> int:
    """Bytes in the longest line of `block`, its newline included."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
    bounds = np.concatenate([[-1], ends, [len(block) - 1]])
    return int(np.diff(bounds).max())


def _parse_lines_slowly(block: bytes, stats: ParseStats, schema: pa.Schema) -> pa.Table:
    """Fallback for a block Arrow rejected: validate each line, re-emit the good ones."""
    good: list[bytes] = []
    for line in bytes(block).split(b"\n"):
        if not line.strip():
            continue
        stats.lines += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            stats.malformed["invalid_json"] += 1
            continue
        if not isinstance(obj, dict):
            stats.malformed["not_an_object"] += 1
            continue
        fixed, reason = _coerce_raw(obj, stats)
        if fixed is None:
            stats.malformed[reason] += 1
            continue
        good.append(orjson.dumps(fixed))
    if not good:
        return schema.empty_table()
    return _read_json(b"\n".join(good) + b"\n", schema)


def _coerce_raw(obj: dict, stats: ParseStats) -> tuple[dict | None, str]:
    """Bring a decoded record to RAW_SCHEMA's JSON types, or say why it can't be."""
    if "id" not in obj:
        return None, "missing_id"
    out: dict = {}
    for name in RAW_INT_FIELDS + _RAW_STRING_FIELDS:
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            if name == "id":
                return None, "bad_id"
            stats.bad_values[name] += 1  # becomes null
            continue
        out[name] = str(value) if not isinstance(value, float) else str(int(value)) if value.is_integer() else str(value)
    for name in BOOL_FIELDS:
        value = obj.get(name)
        if isinstance(value, bool):
            out[name] = value
        elif value in ("true", "false", "t", "f"):
            out[name] = value in ("true", "t")
    tags = obj.get("tags")
    if isinstance(tags, list):
        clean = []
        for tag in tags:
            if isinstance(tag, dict) and isinstance(tag.get("name"), str):
                clean.append({"id": str(tag.get("id", "0")), "name": tag["name"],
                              "category": str(tag.get("category", "0"))})
            elif isinstance(tag, str):  # some dumps carry bare names
                clean.append({"id": "0", "name": tag, "category": "0"})
        out["tags"] = clean
        stats.bad_values["tags"] += len(tags) - len(clean)
    elif tags is not None:
        stats.bad_values["tags"] += 1
    for name in ("pools", "favs"):
        value = obj.get(name)
        if isinstance(value, list):
            out[name] = [str(v) for v in value if isinstance(v, (str, int))]
    return out, ""
