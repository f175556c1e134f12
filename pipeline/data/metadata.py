"""Danbooru2020 metadata shards -> one typed, deduplicated Parquet table.

Why it is built this way:
- Parsing: Arrow's C++ JSON reader with an explicit schema parses a block of lines far
  faster than a Python `json.loads` loop; the string-encoded numbers and the 1970/"0" null
  conventions are then fixed with vectorised Arrow kernels. A block that Arrow rejects
  (a truncated line, a number where a string belongs) is re-parsed line by line with
  orjson, so one bad line costs one counted record, never the block. A line longer than
  the reader's chunks (a post with thousands of tags) is read with chunks sized to it.
- Memory is bounded by the block size and the dedupe bucket size, not by the input:
  pass 1 streams blocks into `id % K` Arrow IPC bucket files; pass 2 loads one bucket at
  a time, keeps the newest copy of every id (latest `updated_at`; ties: the later
  line), and appends it to the Parquet file.
- Inputs may be plain shards, `.gz`, `.xz`, `.bz2` or a `.tar`/`.tar.xz`/`.tar.gz`
  archive of shards; archives are streamed, never unpacked to disk. A damaged input
  (truncated, corrupt, not the format its name says) gives the lines before the damage
  and is listed with the reason in the stats (`damaged_by_file`); it never stops the run.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
import tarfile
import tempfile
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from pipeline.data.danbooru import BOOL_FIELDS, NULLABLE_ID_FIELDS, TIMESTAMP_FIELDS
from pipeline.files import atomic_path

# --------------------------------------------------------------------------- schemas

_RAW_TAG = pa.struct([("id", pa.string()), ("name", pa.string()), ("category", pa.string())])
_RAW_INT_FIELDS = ("id", "uploader_id", "score", "up_score", "down_score", "image_width",
                   "image_height", "file_size") + NULLABLE_ID_FIELDS
_RAW_STRING_FIELDS = ("rating", "file_ext", "md5", "source", "file_url", "fav_count") + TIMESTAMP_FIELDS

# How a Danbooru2020 line looks to the JSON reader: numbers are strings.
RAW_SCHEMA = pa.schema(
    [(name, pa.string()) for name in _RAW_INT_FIELDS]
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

_INT_TYPES = {name: SCHEMA.field(name).type for name in _RAW_INT_FIELDS}
_INT_RE = r"^-?[0-9]{1,18}$"
_TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"


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


# --------------------------------------------------------------------------- input streams

_TAR_SUFFIXES = (".tar", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2")


def discover_metadata_files(folder: Path, names: list[str] | None = None) -> list[Path]:
    """The metadata inputs in a folder, sorted by name (deterministic order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: metadata folder not found")
    if names:
        paths = [folder / n for n in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"metadata files listed in params not found: {', '.join(missing)}")
        return paths
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    paths = [p for p in paths if not p.name.endswith((".part", ".tmp"))]
    if not paths:
        raise FileNotFoundError(f"{folder}: no metadata files in this folder")
    return paths


@contextmanager
def _open_compressed(path: Path) -> Iterator[BinaryIO]:
    name = path.name.lower()
    if name.endswith(".gz"):
        f = gzip.open(path, "rb")
    elif name.endswith(".xz"):
        f = lzma.open(path, "rb")
    elif name.endswith(".bz2"):
        f = bz2.open(path, "rb")
    else:
        f = open(path, "rb")
    try:
        yield f
    finally:
        f.close()


class DamagedInputError(ValueError):
    """A metadata input is truncated, corrupt, or not the format its name says."""


def _raise_damage(name: str, reason: str) -> None:
    raise DamagedInputError(f"{name}: {reason}; re-download or re-copy the file, or remove it from the inputs")


def iter_metadata_streams(path: Path, on_damage: Callable[[str, str], None] | None = None
                          ) -> Iterator[tuple[str, BinaryIO]]:
    """(name, binary stream) for each JSON-lines file in `path` (a shard or an archive).

    A damaged input (truncated, corrupt, or not the format its name says) is not fatal:
    its stream ends where the damage starts, with every line decoded before it, and
    `on_damage(name, reason)` is called once; without `on_damage`, DamagedInputError.
    """
    path = Path(path)
    report = on_damage or _raise_damage
    if path.name.lower().endswith(_TAR_SUFFIXES):
        yield from _iter_tar_members(path, report)
        return
    with _open_compressed(path) as stream:
        yield path.name, _GuardedStream(stream, path.name, _format(path.name), report)


def _iter_tar_members(path: Path, report: Callable[[str, str], None]) -> Iterator[tuple[str, BinaryIO]]:
    reported: list[str] = []

    def note(name: str, reason: str) -> None:
        reported.append(name)
        report(name, reason)

    members = 0  # read so far: none means the file is no tar archive at all
    try:
        with tarfile.open(path, mode="r|*") as tar:  # streaming: no seeking, no unpacking
            for member in tar:
                members += 1
                if member.isfile() and not Path(member.name).name.startswith("."):
                    stream = tar.extractfile(member)
                    if stream is not None:
                        name = f"{path.name}:{member.name}"
                        yield name, _GuardedStream(stream, name, "tar", note)
    except _DAMAGE_ERRORS as exc:
        if _is_disk_error(exc):
            raise
        if not reported:  # a damaged member also breaks the walk to the next: say it once
            report(path.name, _damage_reason(exc, "tar", members))


# What decoders raise on damaged input: EOFError (truncated), BadGzipFile and bz2's OSError
# (no errno), LZMAError, zlib.error, tarfile.ReadError.
_DAMAGE_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error, tarfile.TarError)
_READ_PIECE = 64 << 10  # bytes per decoder call: at most this much is lost before damage in a tar member


def _is_disk_error(exc: BaseException) -> bool:
    """An OSError with an errno comes from the disk, not from the file's content."""
    return isinstance(exc, OSError) and exc.errno is not None


def _format(name: str) -> str:
    name = name.lower()
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    for suffix, fmt in ((".gz", "gzip"), (".xz", "xz"), (".bz2", "bz2")):
        if name.endswith(suffix):
            return fmt
    return "plain"


def _damage_reason(exc: BaseException, fmt: str, decoded: int) -> str:
    """A decoder's error in words for the metrics: truncated, not that format, or corrupt."""
    what = "archive" if fmt == "tar" else "stream"
    if isinstance(exc, EOFError) or "unexpected end of data" in str(exc):
        return f"truncated {fmt} {what}"
    if not decoded:
        return f"not {'an' if fmt == 'xz' else 'a'} {fmt} file"
    return f"corrupt {fmt} {what} after {decoded} bytes ({exc})"


class _GuardedStream:
    """A stream for iter_blocks on which damage ends the data instead of raising.

    `readinto` fills the whole buffer as a plain read does (block boundaries stay the same),
    one decoder call of at most _READ_PIECE bytes at a time, so when the decoder fails every
    byte decoded before the damage is returned (a plain `readinto` loses what it had read in
    that call); later reads return nothing and `on_damage(name, reason)` is called once.
    """

    def __init__(self, inner: BinaryIO, name: str, fmt: str, on_damage: Callable[[str, str], None]):
        self.inner, self.name, self.fmt, self.on_damage = inner, name, fmt, on_damage
        self.decoded = 0
        self.damage: str | None = None

    def readinto(self, buf) -> int:
        view = memoryview(buf)
        total = 0
        while total < len(view) and self.damage is None:
            try:
                n = self.inner.readinto1(view[total : total + _READ_PIECE])
            except _DAMAGE_ERRORS as exc:
                if _is_disk_error(exc):
                    raise
                self.damage = _damage_reason(exc, self.fmt, self.decoded + total)
                self.on_damage(self.name, self.damage)
                break
            if not n:
                break
            total += n
        self.decoded += total
        return total

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while part := self.read(1 << 20):
                parts.append(part)
            return b"".join(parts)
        buf = bytearray(size)
        return bytes(buf[: self.readinto(buf)])

    def tell(self) -> int:
        return self.inner.tell()


def iter_blocks(stream: BinaryIO, block_bytes: int) -> Iterator[memoryview]:
    """Chunks of whole lines, about `block_bytes` each (a final line may lack a newline).

    One buffer is reused for every block (fresh 32 MB allocations cost page faults), so a
    block is only valid until the next one is requested: parse it before moving on.
    """
    buf = bytearray(block_bytes)
    view = memoryview(buf)
    filled = 0  # bytes carried over from the previous block (a partial line)
    while True:
        if filled == len(buf):  # one line longer than the block: grow
            buf.extend(bytes(len(buf)))
            view = memoryview(buf)
        n = stream.readinto(view[filled:]) if hasattr(stream, "readinto") else _read_into(stream, view, filled)
        if not n:
            break
        end = filled + n
        cut = buf.rfind(b"\n", 0, end)
        if cut < 0:
            filled = end
            continue
        yield view[: cut + 1]
        rest = end - (cut + 1)
        buf[:rest] = buf[cut + 1 : end]
        filled = rest
    if bytes(view[:filled]).strip():
        yield memoryview(bytes(view[:filled]) + b"\n")


def _read_into(stream: BinaryIO, view: memoryview, start: int) -> int:
    data = stream.read(len(view) - start)
    view[start : start + len(data)] = data
    return len(data)


# --------------------------------------------------------------------------- parsing


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
    for name in _RAW_INT_FIELDS + _RAW_STRING_FIELDS:
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
    for name in _RAW_INT_FIELDS:
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


# --------------------------------------------------------------------------- the stage


def _bucket_count(paths: list[Path], configured: int) -> int:
    if configured:
        return configured
    total = 0
    for p in paths:
        size = p.stat().st_size
        compressed = p.name.lower().endswith((".gz", ".xz", ".bz2", ".txz", ".tgz"))
        total += size * (8 if compressed else 1)
    return max(1, math.ceil(total / (256 << 20)))  # ~256 MB of JSON per bucket


def build_metadata_table(
    paths: list[Path],
    out_path: Path,
    block_mb: int = 32,
    buckets: int = 0,
    progress: bool = True,
) -> ParseStats:
    """Parse every shard in `paths` into one typed Parquet table at `out_path` (atomic)."""
    stats = ParseStats(files=[p.name for p in paths])
    out_path = Path(out_path)
    with _bucketed(paths, out_path.parent, block_mb, _bucket_count(paths, buckets), RAW_SCHEMA,
                   stats, progress) as tables, atomic_path(out_path) as part:
        with pq.ParquetWriter(part, SCHEMA, compression="zstd", compression_level=1) as writer:
            for table in tables:
                stats.rows_out += table.num_rows
                writer.write_table(table, row_group_size=64 * 1024)
    return stats


def filter_metadata(
    paths: list[Path],
    out_path: Path,
    select_cfg,
    block_mb: int = 32,
    buckets: int = 0,
    progress: bool = True,
) -> tuple[ParseStats, Counter]:
    """Metadata shards -> the selected posts, in one pass (`onepunch metadata --select`).

    Parses only the fields the tag filter and the dedupe read and classifies each block
    before bucketing, so buckets carry ~60 bytes a post instead of its tags. Same result
    as build_metadata_table + select_posts (tested), about twice as fast.
    """
    from pipeline.data.select import classify_posts, finish_selection, keep_selected
    from pipeline.files import write_parquet

    stats = ParseStats(files=[p.name for p in paths])
    counts: Counter = Counter()
    parts = []

    def classify(table: pa.Table) -> pa.Table:
        small = classify_posts(table, select_cfg)
        return small.append_column("updated_at", table.column("updated_at"))

    k = max(1, _bucket_count(paths, buckets) // 16)  # rows are ~1/30 of the JSON's size
    with _bucketed(paths, Path(out_path).parent, block_mb, k, SELECT_RAW_SCHEMA, stats, progress,
                   transform=classify) as tables:
        for table in tables:
            stats.rows_out += table.num_rows
            parts.append(keep_selected(table.drop_columns(["updated_at"]), counts))
    selected = finish_selection(parts, select_cfg, counts)
    write_parquet(out_path, selected)
    return stats, counts


@contextmanager
def _bucketed(paths, tmp_parent: Path, block_mb: int, k: int, schema: pa.Schema, stats: ParseStats,
              progress: bool, transform=None) -> Iterator[Iterator[pa.Table]]:
    """Pass 1: parse + normalise blocks into `id % k` IPC buckets in a temp folder.
    Yields an iterator over the deduplicated buckets (pass 2), one in memory at a time."""
    tmp_parent.mkdir(parents=True, exist_ok=True)
    seq = 0  # input order, for "later line wins" ties
    with tempfile.TemporaryDirectory(prefix=".metadata-", dir=tmp_parent) as tmp:
        tmpdir = Path(tmp)
        writers: dict[int, ipc.RecordBatchFileWriter] = {}
        sinks: dict = {}
        bar = _progress(sum(p.stat().st_size for p in paths), progress, "metadata")
        try:
            for path in paths:
                for _name, stream in iter_metadata_streams(path, on_damage=stats.note_damage):
                    for block in iter_blocks(stream, block_mb << 20):
                        table = normalize(parse_block(block, stats, schema), stats)
                        if transform is not None:
                            table = transform(table)
                        n = table.num_rows
                        table = table.append_column("_seq", pa.array(np.arange(seq, seq + n, dtype=np.int64)))
                        seq += n
                        _scatter(table, k, tmpdir, writers, sinks)
                        if bar is not None:
                            bar.update_to(_raw_position(stream, path))
                if bar is not None:
                    bar.file_done(path.stat().st_size)
        finally:
            for w in writers.values():
                w.close()
            for sink in sinks.values():
                sink.close()
            if bar is not None:
                bar.close()

        def deduped() -> Iterator[pa.Table]:
            for b in range(k):
                bucket = tmpdir / f"{b:05d}.arrow"
                if not bucket.exists():
                    continue
                with pa.memory_map(str(bucket)) as src:
                    table = ipc.open_file(src).read_all()
                yield _dedupe(table, stats).drop_columns(["_seq"])

        yield deduped()


def _scatter(table: pa.Table, k: int, tmpdir: Path, writers: dict, sinks: dict) -> None:
    if table.num_rows == 0:
        return
    if k == 1:
        parts = {0: table}
    else:
        bucket = (table.column("id").to_numpy() % k).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        sorted_b = bucket[order]
        bounds = np.flatnonzero(np.diff(sorted_b)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(order)]])
        taken = table.take(pa.array(order))
        parts = {int(sorted_b[s]): taken.slice(s, e - s) for s, e in zip(starts, ends)}
    for b, part in parts.items():
        if b not in writers:
            sinks[b] = pa.OSFile(str(tmpdir / f"{b:05d}.arrow"), "wb")
            writers[b] = ipc.new_file(sinks[b], part.schema)
        writers[b].write_table(part)


def _dedupe(table: pa.Table, stats: ParseStats) -> pa.Table:
    """Keep one row per id: newest updated_at, then the later input line (input order kept)."""
    if table.num_rows == 0:
        return table
    ids = table.column("id").to_numpy()
    updated = pc.fill_null(pc.cast(table.column("updated_at"), pa.int64()), -(2**62)).to_numpy()
    seq = table.column("_seq").to_numpy()
    order = np.lexsort((-seq, -updated, ids))  # by id, then newest first
    sorted_ids = ids[order]
    dup = np.zeros(len(order), dtype=bool)
    dup[1:] = sorted_ids[1:] == sorted_ids[:-1]
    n_dup = int(dup.sum())
    if not n_dup:
        return table
    stats.duplicate_ids += n_dup
    keep = np.ones(len(order), dtype=bool)
    keep[order[dup]] = False
    return table.filter(pa.array(keep))


def _raw_position(stream: BinaryIO, path: Path) -> int | None:
    stream = getattr(stream, "inner", stream)  # a _GuardedStream
    try:
        raw = getattr(stream, "fileobj", None) or getattr(stream, "_fp", None)
        if raw is not None and hasattr(raw, "tell"):
            return raw.tell()
        return stream.tell()
    except (OSError, ValueError, AttributeError):
        return None


class _Progress:
    """Byte progress over all input files (compressed bytes for compressed inputs)."""

    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, mininterval=1.0)
        self.done = 0  # bytes of finished files

    def _move_to(self, position: int) -> None:
        position = min(position, self.bar.total)
        if position > self.bar.n:
            self.bar.update(position - self.bar.n)  # tqdm throttles redraws itself

    def update_to(self, pos: int | None) -> None:
        if pos is not None:
            self._move_to(self.done + pos)

    def file_done(self, size: int) -> None:
        self.done += size
        self._move_to(self.done)

    def close(self) -> None:
        self.bar.close()


def _progress(total: int, enabled: bool, desc: str) -> _Progress | None:
    return _Progress(total, desc) if enabled else None
