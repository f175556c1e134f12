"""One row per post id across every input (older yearly snapshots overlap): the newest copy
(latest `updated_at`; ties: the later line), with memory bounded by the bucket size, not
the input. Pass 1 streams parsed blocks into `id % K` Arrow IPC bucket files; pass 2 loads
one bucket at a time and keeps the newest copy of every id.
"""

from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from pipeline.data.metadata.normalize import normalize
from pipeline.data.metadata.parse import ParseStats, parse_block
from pipeline.data.metadata.read import iter_blocks, iter_metadata_streams, progress_bar, raw_position


def bucket_count(paths: list[Path], configured: int) -> int:
    if configured:
        return configured
    total = 0
    for p in paths:
        size = p.stat().st_size
        compressed = p.name.lower().endswith((".gz", ".xz", ".bz2", ".txz", ".tgz"))
        total += size * (8 if compressed else 1)
    return max(1, math.ceil(total / (256 << 20)))  # ~256 MB of JSON per bucket


@contextmanager
def bucketed(paths, tmp_parent: Path, block_mb: int, k: int, schema: pa.Schema, stats: ParseStats,
              progress: bool, transform=None) -> Iterator[Iterator[pa.Table]]:
    """Pass 1: parse + normalise blocks into `id % k` IPC buckets in a temp folder.
    Yields an iterator over the deduplicated buckets (pass 2), one in memory at a time."""
    tmp_parent.mkdir(parents=True, exist_ok=True)
    seq = 0  # input order, for "later line wins" ties
    with tempfile.TemporaryDirectory(prefix=".metadata-", dir=tmp_parent) as tmp:
        tmpdir = Path(tmp)
        writers: dict[int, ipc.RecordBatchFileWriter] = {}
        sinks: dict = {}
        bar = progress_bar(sum(p.stat().st_size for p in paths), progress, "metadata")
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
                            bar.update_to(raw_position(stream, path))
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
