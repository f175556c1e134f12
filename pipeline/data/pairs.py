"""The paired dataset: the scan generator over every colored image -> (scangen(color), color).

Output folder: `scangen-{split}-{k}.npy` (uint8 (N, S, S, 1)) row-aligned with the images
stage's `color-{split}-{k}.npy`, so a pair is (shard k row i, shard k row i) and the
colored images are not copied. Geometric augmentation of a pair happens at training time,
on the channel-concatenated pair, so both members always move together.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pipeline.files import replace_folder
from pipeline.runtime import setup_runtime, teardown_runtime


def make_pairs(model_path: Path, prepared: Path, out_dir: Path, batch: int = 64, device: str = "auto",
               progress: bool = True) -> dict:
    from pipeline.batched import generate_scans
    from pipeline.models.scan_generator import load_scan_generator

    t0 = time.perf_counter()
    rt = setup_runtime(device)
    try:
        model = load_scan_generator(model_path, rt.device)
        counts: dict[str, int] = {}
        shards = sorted(p for p in prepared.glob("color-*-[0-9]*.npy") if len(p.stem.split("-")) == 3)
        if not shards:
            raise FileNotFoundError(f"{prepared}: no color shards (run the images stage first)")
        with replace_folder(out_dir) as tmp:
            for shard in shards:
                _, split, k = shard.stem.split("-")
                color = np.load(shard, mmap_mode="r")
                scans = generate_scans(model, color, rt, batch, progress=progress)
                np.save(tmp / f"scangen-{split}-{k}.npy", scans)
                counts[split] = counts.get(split, 0) + len(scans)
            (tmp / "pairs.json").write_text(json.dumps({"model": str(model_path), "pairs": counts}, indent=2) + "\n")
        return {f"{k}_pairs": v for k, v in sorted(counts.items())} | {
            "seconds": round(time.perf_counter() - t0, 2)}
    finally:
        teardown_runtime(rt)


def load_pairs(prepared: Path, pairs: Path, split: str):
    """(generated scans (N,S,S,1), colored images (N,S,S,3)) for one split, row-aligned;
    in RAM when small, memory-mapped (ShardedArray) when large."""
    from pipeline.data.shards import IN_RAM_LIMIT, ShardedArray

    shards = sorted(pairs.glob(f"scangen-{split}-[0-9]*.npy"))
    if not shards:
        raise FileNotFoundError(f"{pairs}: no {split} pairs (run the make_pairs stage)")
    color_files = [prepared / f"color-{split}-{p.stem.split('-')[-1]}.npy" for p in shards]
    mmap = sum(p.stat().st_size for p in shards + color_files) > IN_RAM_LIMIT
    scans = [np.load(p, mmap_mode="r" if mmap else None) for p in shards]
    colors = [np.load(p, mmap_mode="r" if mmap else None) for p in color_files]
    for s, c in zip(scans, colors):
        assert len(s) == len(c), "pair shards out of step with the color shards"
    if mmap:
        return ShardedArray(scans), ShardedArray(colors)
    return np.concatenate(scans), np.concatenate(colors)
