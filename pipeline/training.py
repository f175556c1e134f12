"""Training infrastructure shared by both GAN stages (scan generator and colorizer).

One short loop (`fit`) drives any GAN step function; the helpers around it handle what
every stage needs and nothing model-specific:

- `Runtime`: the device (CUDA with bf16 autocast when present, else CPU fp32), the
  torchrun/DDP rank and world size (gloo on CPU, nccl on CUDA);
- `BatchSampler`: random batches from the packed uint8 shards, drawn from a checkpointed
  generator; under DDP every rank draws the same global batch and keeps its slice, so
  N ranks train exactly like one process on the global batch;
- `Checkpointer`: full-state checkpoints (weights, optimizers, schedulers, samplers,
  history pools, RNG states, step) written atomically, tagged with a fingerprint of the
  params and data; a re-run with the same fingerprint resumes, anything else starts fresh;
- `MetricLogger`: DVCLive (losses, lr, images/s; sample grids) on the main rank only,
  its history kept beside the checkpoint so a resumed run keeps its curves.

Checkpoints live outside the stage's DVC outputs (DVC deletes outputs before running a
stage), so a killed `dvc repro` resumes and the run-cache is untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pipeline.files import open_atomic


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be used."""


# --------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp_dtype: torch.dtype | None = None  # bf16 on CUDA; None: full fp32
    channels_last: bool = True  # NHWC activations: the fast conv layout for oneDNN and cuDNN

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def setup_runtime(device: str = "auto", amp: bool = True, autotune: bool = True) -> Runtime:
    """Pick the device and join the torchrun process group when there is one.

    `autotune`: let cuDNN time its kernels per input shape (training: one shape, pays off;
    inference on users' images of every size: each new shape would pay the search again).
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device {device!r}: allowed values are auto, cpu, cuda")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use auto or cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = autotune
    else:
        dev = torch.device("cpu")
    amp_dtype = torch.bfloat16 if (use_cuda and amp and torch.cuda.is_bf16_supported()) else None
    return Runtime(device=dev, rank=rank, world_size=world, local_rank=local_rank, amp_dtype=amp_dtype)


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def place_module(module: nn.Module, rt: Runtime) -> nn.Module:
    """Move to the device in the runtime's memory format."""
    return module.to(rt.device).to(memory_format=rt.memory_format)


def adam(params, lr: float, betas: tuple[float, float], rt: Runtime) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel (one launch per step instead of one per tensor group)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=rt.device.type == "cuda")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- data


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


def to_model_input(batch: torch.Tensor, device: torch.device,
                   memory_format: torch.memory_format = torch.channels_last) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [-1, 1] on `device`."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return (x / 127.5 - 1.0).contiguous(memory_format=memory_format)


def to_uint8_image(x: torch.Tensor) -> torch.Tensor:
    """float (B, C, H, W) in [-1, 1] -> uint8 (B, C, H, W)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# --------------------------------------------------------------------------- schedules


def linear_decay(total_steps: int, decay_start: float) -> Callable[[int], float]:
    """LR factor: 1 until `decay_start` of the run, then linear to 0 at the end (CycleGAN)."""
    start = int(total_steps * decay_start)

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start) / max(1, total_steps - start))

    return factor


# --------------------------------------------------------------------------- checkpoints


def fingerprint(config: Any, data_files: list[Path] = ()) -> str:
    """What a checkpoint must match to be resumed: the stage's config and its input data."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for p in data_files:
        h.update(Path(p).name.encode())
        h.update(hashlib.sha256(Path(p).read_bytes()).digest() if Path(p).stat().st_size < 1 << 26
                 else str(Path(p).stat().st_size).encode())
    return h.hexdigest()[:20]


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
            state = torch.load(self.path, map_location="cpu", weights_only=False)
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
            for d in (self.live_snapshot, self.live_snapshot.with_name(self.live_snapshot.name + ".tmp")):
                shutil.rmtree(d, ignore_errors=True)


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save via temp file + rename: a published model is never half-written."""
    with open_atomic(path) as f:
        torch.save(obj, f)


# --------------------------------------------------------------------------- state


@dataclass
class TrainState:
    """Everything a step function mutates and a checkpoint must restore."""

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any] = field(default_factory=dict)
    stateful: dict[str, Any] = field(default_factory=dict)  # samplers, pools, augment RNGs
    step: int = 0

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "stateful": {k: s.state_dict() for k, s in self.stateful.items()},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for kind, part in (("models", self.models), ("optimizers", self.optimizers),
                           ("schedulers", self.schedulers), ("stateful", self.stateful)):
            missing = set(part) - set(state[kind])
            if missing:
                raise CheckpointError(f"checkpoint lacks {kind} {sorted(missing)}; delete it to start fresh")
        for k, m in self.models.items():
            m.load_state_dict(state["models"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        for k, s in self.stateful.items():
            s.load_state_dict(state["stateful"][k])
        set_rng_state(state["rng"])
        self.step = int(state["step"])


# --------------------------------------------------------------------------- logging


class MetricLogger:
    """DVCLive on the main rank; a no-op elsewhere. Never rewrites dvc.yaml.

    DVC deletes a stage's DVCLive folder before re-running it, so a resumed run would lose
    the curves of the steps before its checkpoint. `snapshot` keeps a copy of the folder
    beside each checkpoint and `restore` puts it back when the run resumes, so the curves
    of a killed and re-run stage are those of a run never interrupted.
    """

    def __init__(self, directory: str | Path | None, enabled: bool = True):
        self.live = None
        self.directory = Path(directory) if directory is not None else None
        if directory is not None and enabled:
            self.live = self._open(resume=False)

    def _open(self, resume: bool):
        from dvclive import Live

        return Live(str(self.directory), dvcyaml=False, save_dvc_exp=False, report=None, resume=resume)

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.live is None:
            return
        self.live.step = step
        for k, v in values.items():
            self.live.log_metric(k, float(v))
        self.live.next_step()

    def image(self, name: str, image) -> None:
        if self.live is not None:
            self.live.log_image(name, image)

    def summary(self, values: dict[str, float]) -> None:
        if self.live is not None:
            self.live.summary.update(values)

    def snapshot(self, dest: Path) -> None:
        """Copy the DVCLive folder to `dest` (replaced via a temporary sibling)."""
        if self.live is None or not self.directory.is_dir():
            return
        import shutil

        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.directory, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)

    def restore(self, src: Path, step: int) -> None:
        """Put a snapshot back and continue logging after `step` (rows past it are dropped:
        a snapshot can be a few steps newer than the checkpoint it sits beside)."""
        if self.live is None:
            return
        import shutil

        src = src if src.is_dir() else src.with_name(src.name + ".tmp")
        if not src.is_dir():
            return  # a checkpoint from before snapshots existed: curves start here
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.copytree(src, self.directory)
        for tsv in self.directory.rglob("*.tsv"):
            lines = tsv.read_text().splitlines()
            col = lines[0].split("\t").index("step") if lines else 0
            kept = lines[:1] + [ln for ln in lines[1:] if int(ln.split("\t")[col]) <= step]
            tsv.write_text("\n".join(kept) + "\n")
        self.live = self._open(resume=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.end()


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class LoopConfig:
    steps: int
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 200
    images_per_step: int = 1  # for images/s

    @classmethod
    def of(cls, cfg) -> "LoopConfig":
        """From a stage config (CycleGANConfig, ColorizerConfig): same field names."""
        return cls(steps=cfg.steps, log_every=cfg.log_every, sample_every=cfg.sample_every,
                   checkpoint_every=cfg.checkpoint_every, images_per_step=cfg.batch_size)


def fit(
    state: TrainState,
    step_fn: Callable[[TrainState], dict[str, float]],
    loop: LoopConfig,
    rt: Runtime,
    logger: MetricLogger,
    checkpointer: Checkpointer,
    sample_fn: Callable[[TrainState], Any] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainState:
    """Run `step_fn` until `loop.steps`, resuming from the checkpoint when it matches.

    `step_fn(state)` does one optimisation step and returns its losses; schedulers are
    stepped here. `stop_after` ends early (tests simulate a kill with it).
    """
    saved = checkpointer.load()
    sums: dict[str, float] = {}
    count = 0
    if saved is not None:
        state.load_state_dict(saved)
        logger.restore(checkpointer.live_snapshot, state.step)
        # the losses summed so far in the current log window (empty when checkpoint_every
        # is a multiple of log_every), so the next logged mean is the uninterrupted one
        window = saved.get("log_window", {"sums": {}, "count": 0})
        sums, count = dict(window["sums"]), int(window["count"])
        if rt.is_main:
            print(f"resuming from {checkpointer.path} at step {state.step}/{loop.steps}", flush=True)
    from tqdm import tqdm

    bar = tqdm(total=loop.steps, initial=state.step, disable=not (progress and rt.is_main),
               unit="step", mininterval=2.0)
    t_window = time.perf_counter()
    try:
        while state.step < loop.steps:
            losses = step_fn(state)
            for s in state.schedulers.values():
                s.step()
            state.step += 1
            bar.update(1)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            if state.step % loop.log_every == 0 or state.step == loop.steps:
                elapsed = time.perf_counter() - t_window
                values = {k: v / count for k, v in sums.items()}
                values["images_per_s"] = count * loop.images_per_step * rt.world_size / max(elapsed, 1e-9)
                for name, opt in state.optimizers.items():
                    values[f"lr/{name}"] = opt.param_groups[0]["lr"]
                if not all(math.isfinite(v) for v in values.values()):
                    raise FloatingPointError(f"non-finite loss at step {state.step}: {values}; "
                                             "lower lr or check the data")
                logger.log(state.step, values)
                bar.set_postfix({k: f"{v:.3f}" for k, v in list(values.items())[:4]})
                sums, count, t_window = {}, 0, time.perf_counter()
            if sample_fn is not None and rt.is_main and (
                    state.step % loop.sample_every == 0 or state.step == loop.steps):
                sample_fn(state)
            stopping = stop_after is not None and state.step >= stop_after
            if rt.is_main and (stopping or (state.step % loop.checkpoint_every == 0 and state.step < loop.steps)):
                logger.snapshot(checkpointer.live_snapshot)  # first: restore drops its rows past the checkpoint
                checkpointer.save({**state.state_dict(), "log_window": {"sums": sums, "count": count}})
            if stopping:
                break
    finally:
        bar.close()
    return state


@torch.no_grad()
def run_batched(model: nn.Module, images, out_channels: int, rt: Runtime, batch: int = 64,
                progress: bool = False, desc: str = "") -> np.ndarray:
    """Inference over uint8 (N, H, W, C) images -> uint8 (N, H, W, out_channels)."""
    from tqdm import tqdm

    model.eval()
    out = []
    for chunk in tqdm(list(iterate_batches(images, batch)), disable=not progress, desc=desc, unit="batch"):
        x = to_model_input(torch.from_numpy(chunk), rt.device, rt.memory_format)
        with rt.autocast():
            y = model(x)
        out.append(to_uint8_image(y).permute(0, 2, 3, 1).cpu().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:3], out_channels), np.uint8)


def iterate_batches(array: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Sequential batches for inference (make_pairs, evaluation)."""
    for i in range(0, len(array), batch_size):
        yield np.ascontiguousarray(array[i:i + batch_size])
