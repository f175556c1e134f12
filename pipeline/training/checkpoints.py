"""Full-state checkpoints, written atomically and tagged with a fingerprint of the params and
data: a re-run with the same fingerprint resumes, anything else starts fresh.

Checkpoints live outside the stage's DVC outputs (DVC deletes outputs before running a
stage), so a killed `dvc repro` resumes and the run-cache is untouched.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.digests import file_digest, json_digest
from pipeline.files import open_atomic, remove_leftovers


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be used."""


def fingerprint(config: Any, data_files: list[Path] = ()) -> str:
    """What a checkpoint must match to be resumed: the stage's config and its input data
    (each file's content; past HASHED_LIMIT bytes, its size)."""
    files = {Path(p).name: file_digest(p) if Path(p).stat().st_size < HASHED_LIMIT else f"size {Path(p).stat().st_size}"
             for p in data_files}
    return json_digest({"config": config, "files": files}, digits=20)


HASHED_LIMIT = 1 << 26
# what a checkpoint holds besides tensors and plain containers: numpy's global RNG state
# (np.random.get_state(): a uint32 array), allowed by name to the weights-only unpickler
_NUMPY_ARRAYS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), np.zeros(0).__reduce__()[0]]


class Checkpointer:
    """`<directory>/last.pt`, written atomically; only resumed when fingerprints match."""

    def __init__(self, directory: str | Path, fingerprint: str, enabled: bool = True):
        self.directory = Path(directory)
        self.path = self.directory / "last.pt"
        self.live_snapshot = self.directory / "dvclive"  # MetricLogger.snapshot/restore
        self.fingerprint = fingerprint
        self.enabled = enabled

    def load(self) -> dict | None:
        """The saved state, or None when there is none or it belongs to other params/data."""
        if not self.path.exists():
            return None
        try:
            with torch.serialization.safe_globals(_NUMPY_ARRAYS):
                state = torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:  # weights_only met something else than tensors and plain data
            found = re.search(r"GLOBAL (\S+)", str(exc))
            if found is None:
                why = str(exc).partition("\n")[0][:200]
                raise CheckpointError(f"{self.path}: not a readable checkpoint ({why}); "
                                      "delete it to start this stage from scratch") from None
            raise CheckpointError(
                f"{self.path}: holds {found.group(1)[:100]}, not only tensors and plain data, and loading it could "
                "run code; delete it to start this stage from scratch") from None
        except Exception as exc:  # truncated, not a torch file, wrong format
            raise CheckpointError(
                f"{self.path}: not a readable checkpoint ({type(exc).__name__}: {exc}); "
                "delete it to start this stage from scratch") from None
        if not isinstance(state, dict) or "fingerprint" not in state or "step" not in state:
            raise CheckpointError(f"{self.path}: not a checkpoint of this pipeline; delete it to start fresh")
        if state["fingerprint"] != self.fingerprint:
            return None  # params or data changed: start fresh (the file is replaced on save)
        return state

    def save(self, state: dict) -> None:
        if not self.enabled:
            return
        with open_atomic(self.path) as f:
            torch.save({**state, "fingerprint": self.fingerprint}, f)

    def clear(self) -> None:
        if self.enabled:
            import shutil

            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.live_snapshot, ignore_errors=True)
            remove_leftovers(self.directory, self.path.name)
            remove_leftovers(self.directory, self.live_snapshot.name)
