"""The one training loop of both GAN stages: step, schedule, log, sample, checkpoint, resume.

`loop` is the stage's own config (`CycleGANConfig` or `ColorizerConfig`): the loop reads
the fields they share through `TrainingLoopConfig` (steps, batch_size, log_every,
sample_every, checkpoint_every).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable

from pipeline.config import TrainingLoopConfig
from pipeline.runtime import Runtime
from pipeline.training.checkpoints import Checkpointer
from pipeline.training.metric_logger import MetricLogger
from pipeline.training.state import TrainState


def fit(
    state: TrainState,
    step_fn: Callable[[TrainState], dict[str, float]],
    loop: TrainingLoopConfig,
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
                values["images_per_s"] = count * loop.batch_size * rt.world_size / max(elapsed, 1e-9)
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
            if stopping or (state.step % loop.checkpoint_every == 0 and state.step < loop.steps):
                snapshot = state.state_dict()  # on every rank: under DDP it gathers each rank's streams
                if rt.is_main:
                    logger.snapshot(checkpointer.live_snapshot)  # first: restore drops its rows past the checkpoint
                    checkpointer.save({**snapshot, "log_window": {"sums": sums, "count": count}})
            if stopping:
                break
    finally:
        bar.close()
        with contextlib.ExitStack() as helpers:  # e.g. a prefetcher's worker; each closed even if one fails
            for helper in state.stateful.values():
                if hasattr(helper, "close"):
                    helpers.callback(helper.close)
    return state
