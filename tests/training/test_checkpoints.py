"""Training checkpoints (`pipeline.training.checkpoints.Checkpointer`) load weights-only: a
file holding anything but tensors, plain data and numpy's RNG state is refused by name,
without running it; a real checkpoint still round-trips every RNG."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from pipeline.training.checkpoints import Checkpointer, CheckpointError
from pipeline.training.state import rng_state, set_rng_state


class MakesADirectory:
    """Unpickling this calls os.mkdir: what a planted checkpoint could do with any function."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_a_checkpoint_that_would_run_code_is_refused_by_name(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "ckpt").mkdir()
    path = tmp_path / "ckpt" / "last.pt"
    torch.save({"fingerprint": "fp", "step": 3, "models": {}, "payload": MakesADirectory(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        Checkpointer(tmp_path / "ckpt", "fp").load()
    message = str(err.value)
    assert message.startswith(f"{path}: holds ") and "mkdir" in message and "delete it" in message, message
    assert "\n" not in message
    assert not marker.exists()  # nothing ran


def test_a_checkpoint_round_trips_every_rng_weights_only(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    pcg = np.random.default_rng(4)
    model = torch.nn.Linear(2, 3)
    saved = {"step": 7, "rng": rng_state(), "pcg": pcg.bit_generator.state, "log_window": {"sums": {"a": 1.5}, "count": 2},
             "models": {"G": model.state_dict()}}
    expected = (random.random(), np.random.rand(), torch.rand(1), pcg.random())
    Checkpointer(tmp_path, "fp").save(saved)
    loaded = Checkpointer(tmp_path, "fp").load()
    set_rng_state(loaded["rng"])
    pcg2 = np.random.default_rng()
    pcg2.bit_generator.state = loaded["pcg"]
    assert (random.random(), np.random.rand(), torch.rand(1), pcg2.random()) == expected
    assert loaded["step"] == 7 and loaded["log_window"] == {"sums": {"a": 1.5}, "count": 2}
    assert torch.equal(loaded["models"]["G"]["weight"], saved["models"]["G"]["weight"])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_damaged_checkpoint_says_delete_it(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"\x80\x04not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*delete it") as err:
        Checkpointer(tmp_path, "fp").load()
    assert str(tmp_path / "last.pt") in str(err.value) and "\n" not in str(err.value)
