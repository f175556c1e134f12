"""Random training batches from the packed uint8 shards, drawn from checkpointed generators.

Under DDP every rank draws the same global batch and keeps its slice, so N ranks train
exactly like one process on the global batch. With `crop`, each sample is a random
crop x crop window of its page-scale image: the cost of a small image at the line widths of
a real page.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.pixels import greyscale_u8


class BatchSampler:
    """Random batches (with replacement across batches, without inside one) from a uint8
    (N, H, W, C) array, in RAM or memory-mapped. The generator state is checkpointed.

    Under DDP each rank draws the same global batch of `batch_size * world_size` indices
    and keeps its own slice.
    """

    def __init__(self, array: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 crop: int = 0):
        if len(array) == 0:
            raise ValueError("cannot sample batches from an empty dataset")
        if crop and crop > min(array.shape[1:3]):
            raise ValueError(f"crop {crop} is larger than the {array.shape[1]}x{array.shape[2]} images")
        self.array = array
        self.crop = crop
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """This rank's (indices, crop corners) of the next global batch, sorted by index
        (sequential reads from a memory map). Corners are drawn for the global batch in its
        own order, so each (image, window) pair is the same whatever the rank count."""
        n = len(self.array)
        global_batch = self.batch_size * self.world_size
        if global_batch <= n:
            idx = torch.randperm(n, generator=self.generator)[:global_batch]
        else:
            idx = torch.randint(0, n, (global_batch,), generator=self.generator)
        if self.crop:
            h, w = self.array.shape[1:3]
            ys = torch.randint(0, h - self.crop + 1, (global_batch,), generator=self.generator)
            xs = torch.randint(0, w - self.crop + 1, (global_batch,), generator=self.generator)
            corners = torch.stack([ys, xs], 1)
        else:
            corners = torch.zeros((global_batch, 2), dtype=torch.int64)
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        idx, corners = idx[mine].numpy(), corners[mine].numpy()
        order = np.argsort(idx, kind="stable")
        return idx[order], corners[order]

    def cut(self, batch: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The crop windows of a (B, H, W, C) batch at `offsets` (the batch itself without crop)."""
        if not self.crop:
            return np.ascontiguousarray(batch)
        c = self.crop
        return np.stack([batch[i, y:y + c, x:x + c] for i, (y, x) in enumerate(offsets)])

    def next(self) -> torch.Tensor:
        """uint8 (B, H, W, C) on the CPU (H = W = crop when cropping)."""
        idx, corners = self.draw()
        return torch.from_numpy(self.cut(self.array[idx], corners))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class PairSampler:
    """Random (scan, color) batches drawn with one index set (pairs stay pairs).

    `scans=None` means greyscale(color), computed per batch (no second copy of the data).
    """

    def __init__(self, scans, colors, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 crop: int = 0):
        assert scans is None or len(scans) == len(colors), "pair arrays differ in length"
        self.scans, self.colors = scans, colors
        self.sampler = BatchSampler(colors, batch_size, seed, rank, world_size, crop)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, H, W, 1) scans and (B, H, W, 3) colors, one crop window per pair."""
        idx, offsets = self.sampler.draw()
        colors = self.sampler.cut(self.colors[idx], offsets)
        scans = greyscale_u8(colors) if self.scans is None else self.sampler.cut(self.scans[idx], offsets)
        return torch.from_numpy(scans), torch.from_numpy(colors)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


class Prefetcher:
    """`sampler.next()` one batch ahead, on a background thread, so reading and cropping
    the next batch (from a memory map, at full scale) overlaps the current step's compute.
    With `pin`, the batch is copied to page-locked memory there too, so `to_model_input`'s
    `non_blocking` copy to the GPU is truly asynchronous.

    Batches and checkpoints are those of the bare sampler: `state_dict` is the sampler's
    state *before* the batch in flight was drawn, so a resumed run draws that batch again.
    """

    def __init__(self, sampler: BatchSampler | PairSampler, pin: bool = False):
        self.sampler, self.pin = sampler, pin
        self._pool = None  # the worker thread, started by the first batch (again after `close`)
        self._pending = None  # (sampler state before the draw, future of the batch)

    def _fetch(self):
        batch = self.sampler.next()
        if self.pin:
            batch = tuple(t.pin_memory() for t in batch) if isinstance(batch, tuple) else batch.pin_memory()
        return batch

    def _submit(self) -> None:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            # pinning on the worker needs the trainer's CUDA device current there too
            init = (torch.cuda.set_device, (torch.cuda.current_device(),)) if self.pin else (None, ())
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch", initializer=init[0],
                                            initargs=init[1])
        # the state is read here, on the caller's thread, before the worker touches the generator
        self._pending = (self.sampler.state_dict(), self._pool.submit(self._fetch))

    def next(self):
        if self._pending is None:
            self._submit()
        batch = self._pending[1].result()
        self._submit()
        return batch

    def state_dict(self) -> dict:
        if self._pending is None:
            return self.sampler.state_dict()
        return self._pending[0]

    def load_state_dict(self, state: dict) -> None:
        self._drop_pending()
        self.sampler.load_state_dict(state)

    def close(self) -> None:
        """Drop the batch in flight and stop the worker (`fit` calls it when training ends)."""
        self._drop_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _drop_pending(self) -> None:
        if self._pending is not None:
            from concurrent.futures import wait

            wait([self._pending[1]])  # the worker done with the generator; its batch (or error) dropped
            self.sampler.load_state_dict(self._pending[0])  # and the draw undone: the next one redraws it
            self._pending = None


def read_ahead(sampler: BatchSampler | PairSampler, device) -> BatchSampler | PairSampler | Prefetcher:
    """The sampler a training stage reads from on `device`: on CUDA a pinned `Prefetcher`
    (the host is otherwise idle while the GPU computes); on the CPU the bare sampler, as
    before prefetching existed: there a reading thread competes with the step for the same
    cores, and on 2 cores two same-run measurements disagreed (step time with it 0.91-1.01×
    in one, 0.98-1.05× in the other; docs/benchmarks.md). Both give the same batches and
    checkpoints (tested).
    """
    return Prefetcher(sampler, pin=True) if device.type == "cuda" else sampler

