"""Random training batches from the packed uint8 shards, drawn from checkpointed generators.

Under DDP every rank draws the same global batch and keeps its slice, so N ranks train
exactly like one process on the global batch.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.models.pixels import greyscale_u8


class BatchSampler:
    """Random batches (with replacement across batches, without inside one) from a uint8
    (N, H, W, C) array, in RAM or memory-mapped. The generator state is checkpointed.

    Under DDP each rank draws the same global batch of `batch_size * world_size` indices
    and keeps its own slice.
    """

    def __init__(self, array: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if len(array) == 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.array = array
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator().manual_seed(seed)

    def next_indices(self) -> np.ndarray:
        n = len(self.array)
        global_batch = self.batch_size * self.world_size
        if global_batch <= n:
            idx = torch.randperm(n, generator=self.generator)[:global_batch]
        else:
            idx = torch.randint(0, n, (global_batch,), generator=self.generator)
        mine = idx[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        return np.sort(mine.numpy())  # sorted: sequential reads from a memory map

    def next(self) -> torch.Tensor:
        """uint8 (B, H, W, C) on the CPU."""
        return torch.from_numpy(np.ascontiguousarray(self.array[self.next_indices()]))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class PairSampler:
    """Random (scan, color) batches drawn with one index set (pairs stay pairs).

    `scans=None` means greyscale(color), computed per batch (no second copy of the data).
    """

    def __init__(self, scans, colors, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        assert scans is None or len(scans) == len(colors), "pair arrays differ in length"
        self.scans, self.colors = scans, colors
        self.sampler = BatchSampler(colors, batch_size, seed, rank, world_size)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.sampler.next_indices()
        colors = np.ascontiguousarray(self.colors[idx])
        scans = greyscale_u8(colors) if self.scans is None else np.ascontiguousarray(self.scans[idx])
        return torch.from_numpy(scans), torch.from_numpy(colors)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
