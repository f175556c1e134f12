"""The worker-process pool of the data stages (images, and the synthetic source's drawing).

One start method for every pool: spawn. Fork would copy the parent mid-lock when it holds
threads — torch's intra-op pool, DVC's, a tqdm monitor — and a child can then hang forever;
spawn starts clean interpreters and behaves the same on every OS. The cost is start-up:
0.43 s for a 2-worker pool on the 2-core development machine (fork: 0.01 s), once per stage run.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

START_METHOD = "spawn"


def worker_count(configured: int) -> int:
    """`configured` workers, or one per core when it is 0."""
    return configured or os.cpu_count() or 1


def process_pool(n_workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context(START_METHOD))
