"""The training state a step function mutates and a checkpoint restores: models, optimizers,
schedulers, stateful helpers (samplers, pools, augmentation RNGs), global RNGs and the step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.runtime import unwrap
from pipeline.training.checkpoints import CheckpointError


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """Everything a step function mutates and a checkpoint must restore."""

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any] = field(default_factory=dict)
    stateful: dict[str, Any] = field(default_factory=dict)  # samplers, pools, augment RNGs
    step: int = 0

    def state_dict(self) -> dict:
        """The checkpoint. Under DDP every rank must call it: it gathers each rank's own
        random streams (augmentation, noise, pools; the networks are the same on all) to
        rank 0, the one that saves it."""
        own = {"stateful": {k: s.state_dict() for k, s in self.stateful.items()}, "rng": rng_state()}
        out = {
            "step": self.step,
            # the bare networks' weights: a checkpoint resumes with or without DDP around them
            "models": {k: unwrap(m).state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            **own,  # rank 0's, which any rank count can resume from
        }
        if _world() > 1:  # to rank 0, which writes the checkpoint (the others' copy is None)
            ranks: list | None = [None] * _world() if _rank() == 0 else None
            torch.distributed.gather_object(own, ranks, dst=0)
            out["per_rank"] = ranks
        return out

    def load_state_dict(self, state: dict) -> None:
        for kind, part in (("models", self.models), ("optimizers", self.optimizers),
                           ("schedulers", self.schedulers), ("stateful", self.stateful)):
            missing = set(part) - set(state[kind])
            if missing:
                raise CheckpointError(f"checkpoint lacks {kind} {sorted(missing)}; delete it to start fresh")
        for k, m in self.models.items():
            unwrap(m).load_state_dict(state["models"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        # each rank its own streams when the rank count is the checkpoint's; else rank 0's
        per_rank = state.get("per_rank") or []
        own = per_rank[_rank()] if len(per_rank) == _world() else state
        for k, s in self.stateful.items():
            s.load_state_dict(own["stateful"][k])
        set_rng_state(own["rng"])
        self.step = int(state["step"])


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
