"""The metadata stage's job: every input shard -> one typed, deduplicated Parquet table."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipeline.data.metadata.dedupe import bucket_count, bucketed
from pipeline.data.metadata.normalize import SCHEMA
from pipeline.data.metadata.parse import RAW_SCHEMA, ParseStats
from pipeline.files import atomic_path


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
    with bucketed(paths, out_path.parent, block_mb, bucket_count(paths, buckets), RAW_SCHEMA,
                   stats, progress) as tables, atomic_path(out_path) as part:
        with pq.ParquetWriter(part, SCHEMA, compression="zstd", compression_level=1) as writer:
            for table in tables:
                stats.rows_out += table.num_rows
                writer.write_table(table, row_group_size=64 * 1024)
    return stats
