"""Reading the images stage's packed shards back: whole splits in RAM, or memory-mapped when
large, and the synthetic holdout with its true scans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def load_index(prepared: Path) -> pa.Table:
    return pq.read_table(Path(prepared) / "index.parquet")


class ShardedArray:
    """Several memory-mapped .npy shards seen as one (N, H, W, C) array.

    Supports len(), .shape, integer-array indexing (a batch) and slices, reading only the
    rows asked for, so full-scale training (hundreds of GB of shards) never loads a split
    into RAM.
    """

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays
        self.offsets = np.cumsum([0] + [len(a) for a in arrays])
        self.shape = (int(self.offsets[-1]), *arrays[0].shape[1:])
        self.dtype = arrays[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index)
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        shard = np.searchsorted(self.offsets, index, side="right") - 1
        for k in np.unique(shard):
            mask = shard == k
            out[mask] = self.arrays[k][index[mask] - self.offsets[k]]
        return out


def load_split(prepared: Path, domain: str, split: str, mmap: bool = True):
    """All shards of one (domain, split): memory-mapped (a ShardedArray when there are
    several), or loaded into RAM with mmap=False (small datasets: faster sampling)."""
    prepared = Path(prepared)
    shards = sorted(prepared.glob(f"{domain}-{split}-[0-9]*.npy"))
    if not shards:
        raise FileNotFoundError(f"{prepared}: no {domain}-{split} shards (run the images stage)")
    arrays = [np.load(p, mmap_mode="r" if mmap else None) for p in shards]
    if len(arrays) == 1:
        return arrays[0]
    return ShardedArray(arrays) if mmap else np.concatenate(arrays)


IN_RAM_LIMIT = 4 << 30  # splits larger than this are memory-mapped for training


def load_split_for_training(prepared: Path, domain: str, split: str):
    """In RAM when it fits comfortably (the CPU default), memory-mapped otherwise."""
    shards = sorted(Path(prepared).glob(f"{domain}-{split}-[0-9]*.npy"))
    total = sum(p.stat().st_size for p in shards)
    return load_split(prepared, domain, split, mmap=total > IN_RAM_LIMIT)


def holdout_oracles(prepared: Path) -> dict[str, np.ndarray]:
    """The synthetic holdout's ceiling and floor images ({"oracle": ..., "oracle_grey": ...}),
    row-aligned with the color holdout; only layers present for every holdout shard."""
    prepared = Path(prepared)
    n_shards = len(list(prepared.glob("color-holdout-[0-9]*.npy")))
    out = {}
    for layer in ("oracle", "oracle_grey"):
        files = sorted(prepared.glob(f"color-holdout-{layer}-*.npy"))
        if files and len(files) == n_shards:
            out[layer] = np.concatenate([np.load(p) for p in files])
    return out


def holdout_materials(prepared: Path) -> np.ndarray | None:
    """uint8 (N, S, S) material codes of the synthetic holdout (`pipeline.data.materials`),
    row-aligned with the color holdout; None unless every holdout shard has them."""
    prepared = Path(prepared)
    n_shards = len(list(prepared.glob("color-holdout-[0-9]*.npy")))
    files = sorted(prepared.glob("color-holdout-materials-*.npy"))
    if not files or len(files) != n_shards:
        return None
    return np.concatenate([np.load(p) for p in files])


def holdout_with_truth(prepared: Path) -> tuple[np.ndarray, np.ndarray | None]:
    color = load_split(prepared, "color", "holdout", mmap=False)
    gt_files = sorted(prepared.glob("color-holdout-gt-*.npy"))
    truth = np.concatenate([np.load(p) for p in gt_files]) if gt_files else None
    return color, truth
