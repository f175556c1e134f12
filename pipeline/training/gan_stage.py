"""The one runner of both GAN training stages (`train_cyclegan`, `train_colorizer@*`).

What the two stages share, written once: runtime (device, torchrun ranks), seeding, the
checkpoint fingerprint, checkpointer and DVCLive logger, the `fit` loop with sample grids,
and on the main rank publishing the model, the metrics and cleaning up the checkpoint.
A stage supplies only what differs, as a `GanStagePlan` built on the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipeline.config import TrainingLoopConfig
from pipeline.runtime import Runtime, seed_everything, setup_runtime, teardown_runtime
from pipeline.training.checkpoints import Checkpointer, fingerprint
from pipeline.training.loop import fit
from pipeline.training.metric_logger import MetricLogger
from pipeline.training.state import TrainState


@dataclass
class GanStagePlan:
    """What one GAN stage trains and publishes."""

    state: TrainState  # networks, optimizers, samplers, ... (built after seeding)
    step: Callable[[TrainState], dict[str, float]]  # one optimisation step -> losses
    describe: dict[str, Any]  # what a checkpoint must match, besides seed and world size
    inputs: list[Path]  # data files whose content a checkpoint must match
    sample: Callable[[TrainState], Any]  # -> a PIL sample grid
    # main rank, after the last step: publish the model, return (metrics, DVCLive summary)
    finish: Callable[[TrainState], tuple[dict, dict]]


def run_gan_stage(cfg: TrainingLoopConfig, seed: int, plan_for: Callable[[Runtime], GanStagePlan],
                  live_dir: Path, checkpoint_dir: Path) -> dict | None:
    """Train (resuming from a matching checkpoint), publish, measure.

    Returns the metrics on the main rank, None on the others.
    """
    rt = setup_runtime(cfg.device)
    try:
        seed_everything(seed + rt.rank)
        plan = plan_for(rt)
        # a fine-tune's starting file is an input too: a replaced file must not resume
        inputs = plan.inputs + ([Path(cfg.init_from)] if cfg.init_from else [])
        fp = fingerprint({**plan.describe, "seed": seed, "world": rt.world_size}, inputs)
        checkpointer = Checkpointer(checkpoint_dir, fp, enabled=rt.is_main)
        logger = MetricLogger(live_dir, enabled=rt.is_main)

        def sample(st: TrainState) -> None:
            logger.image(f"samples/step_{st.step:06d}.png", plan.sample(st))

        state = fit(plan.state, plan.step, cfg, rt, logger, checkpointer, sample)
        if not rt.is_main:
            return None
        if cfg.steps == 0:  # a model published as it is (init_from): one grid of what it does
            sample(state)
        metrics, summary = plan.finish(state)
        if cfg.init_from:
            from pipeline.digests import file_digest

            metrics.update(init_from=cfg.init_from, init_sha256=file_digest(cfg.init_from))
        if summary:
            logger.summary(summary)
        logger.close()
        checkpointer.clear()
        return metrics
    finally:
        teardown_runtime(rt)
