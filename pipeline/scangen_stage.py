"""The train_cyclegan stage as one library call (the stage script only parses arguments)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import Params
from pipeline.prepare import load_split, load_split_for_training
from pipeline.scangen import (cyclegan_step, describe, generate_scans, make_state, publish_scan_generator, sample_grid,
                              scan_quality)
from pipeline.training import (Checkpointer, LoopConfig, MetricLogger, fingerprint, fit, seed_everything,
                               setup_runtime, teardown_runtime)

SAMPLES = 8


def holdout_with_truth(prepared: Path) -> tuple[np.ndarray, np.ndarray | None]:
    color = load_split(prepared, "color", "holdout", mmap=False)
    gt_files = sorted(prepared.glob("color-holdout-gt-*.npy"))
    truth = np.concatenate([np.load(p) for p in gt_files]) if gt_files else None
    return color, truth


def train_scan_generator(params: Params, prepared: Path, model_path: Path, live_dir: Path,
                         checkpoint_dir: Path, stop_after: int | None = None) -> dict | None:
    """Train (resuming when possible), publish, evaluate. Returns metrics (None on early stop)."""
    cfg = params.cyclegan
    rt = setup_runtime(cfg.device)
    try:
        seed_everything(params.seed + rt.rank)
        color = load_split_for_training(prepared, "color", "train")
        scan = load_split_for_training(prepared, "scan", "train")
        hold_color, hold_truth = holdout_with_truth(prepared)
        sample_idx = np.linspace(0, len(hold_color) - 1, min(SAMPLES, len(hold_color))).astype(int)
        state = make_state(cfg, params.lr, rt, color, scan, params.seed)
        fp = fingerprint({**describe(cfg, params.lr), "seed": params.seed, "world": rt.world_size},
                         [prepared / "index.parquet"])
        checkpointer = Checkpointer(checkpoint_dir, fp, enabled=rt.is_main)
        logger = MetricLogger(live_dir, enabled=rt.is_main)

        def sample(st):
            grid = sample_grid(st.models["G_scan"], hold_color[sample_idx],
                               None if hold_truth is None else hold_truth[sample_idx], rt)
            logger.image(f"samples/step_{st.step:06d}.png", grid)

        loop = LoopConfig.of(cfg)
        state = fit(state, lambda st: cyclegan_step(st, cfg, rt), loop, rt, logger, checkpointer, sample,
                    stop_after=stop_after)
        if state.step < cfg.steps:
            return None
        metrics = None
        if rt.is_main:
            g_scan = state.models["G_scan"]
            publish_scan_generator(g_scan, model_path, image_size=color.shape[1], steps=state.step)
            metrics = {"steps": state.step}
            if hold_truth is not None:
                pred = generate_scans(g_scan, hold_color, rt, cfg.eval_batch)
                metrics.update(scan_quality(pred, hold_color, hold_truth))
                logger.summary({f"holdout/{k}": v for k, v in metrics.items()})
            logger.close()
            checkpointer.clear()
        return metrics
    finally:
        teardown_runtime(rt)
