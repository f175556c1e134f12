"""Metadata shards straight to the selected posts, in one pass (`onepunch metadata --select`):
the metadata stage and the select stage fused for whoever filters a whole mirror at once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa

from pipeline.data.metadata.dedupe import bucket_count, bucketed
from pipeline.data.metadata.parse import SELECT_RAW_SCHEMA, ParseStats
from pipeline.data.select import classify_posts, finish_selection, keep_selected
from pipeline.files import write_parquet


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
    stats = ParseStats(files=[p.name for p in paths])
    counts: Counter = Counter()
    parts = []

    def classify(table: pa.Table) -> pa.Table:
        small = classify_posts(table, select_cfg)
        return small.append_column("updated_at", table.column("updated_at"))

    k = max(1, bucket_count(paths, buckets) // 16)  # rows are ~1/30 of the JSON's size
    with bucketed(paths, Path(out_path).parent, block_mb, k, SELECT_RAW_SCHEMA, stats, progress,
                   transform=classify) as tables:
        for table in tables:
            stats.rows_out += table.num_rows
            parts.append(keep_selected(table.drop_columns(["updated_at"]), counts))
    selected = finish_selection(parts, select_cfg, counts)
    write_parquet(out_path, selected)
    return stats, counts
