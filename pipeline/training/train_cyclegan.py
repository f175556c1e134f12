"""The `train_cyclegan` stage as one library call (the stage script only parses arguments):
train the CycleGAN, publish its color->scan generator as `models/scan_generator.pt`, and
measure it against the true scans of the synthetic holdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.batched import generate_scans
from pipeline.config import Params
from pipeline.data.shards import holdout_with_truth, load_split_for_training
from pipeline.evaluation.grids import image_grid, sample_crop
from pipeline.evaluation.metrics import scan_quality
from pipeline.models.scan_generator import publish_scan_generator
from pipeline.pixels import luma
from pipeline.runtime import Runtime, unwrap
from pipeline.training.cyclegan_step import cyclegan_step, describe, make_state
from pipeline.training.gan_stage import GanStagePlan, run_gan_stage
from pipeline.training.state import TrainState

SAMPLES = 8  # holdout images in each sample grid


def scan_sample_grid(g_scan: nn.Module, color: np.ndarray, truth: np.ndarray | None, rt: Runtime):
    """The training sample grid; rows: colored | generated scan | true scan (when known) |
    greyscale(color)."""
    rows = [color, generate_scans(g_scan, color, rt)] + ([truth] if truth is not None else []) + [_grey(color)]
    return image_grid(rows, scale=2)


def _grey(color: np.ndarray) -> np.ndarray:
    c = torch.from_numpy(color).permute(0, 3, 1, 2)
    return luma(c.float()).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def train_scan_generator(params: Params, prepared: Path, model_path: Path, live_dir: Path,
                         checkpoint_dir: Path) -> dict | None:
    """Train (resuming when possible), publish, evaluate. Returns the metrics (None on ranks other than the main one)."""
    cfg = params.cyclegan

    def plan_for(rt: Runtime) -> GanStagePlan:
        color = load_split_for_training(prepared, "color", "train")
        scan = load_split_for_training(prepared, "scan", "train")
        if cfg.steps and not (len(color) and len(scan)):
            raise ValueError(f"{prepared}: the train split holds {len(color)} colored and {len(scan)} line-art "
                             "images; the CycleGAN learns from both (add line-art pages to the source, or "
                             "set cyclegan.init_from to a published scan generator and cyclegan.steps to 0)")
        hold_color, hold_truth = holdout_with_truth(prepared)
        idx = np.linspace(0, len(hold_color) - 1, min(SAMPLES, len(hold_color))).astype(int)
        shown_colors = sample_crop(hold_color[idx])
        shown_truth = None if hold_truth is None else sample_crop(hold_truth[idx])

        def finish(state: TrainState) -> tuple[dict, dict]:
            g_scan = unwrap(state.models["G_scan"])  # rank 0 alone: the bare network, no DDP collectives
            publish_scan_generator(g_scan, model_path, image_size=color.shape[1], steps=state.step)
            metrics = {"steps": state.step}
            if hold_truth is None:
                return metrics, {}
            metrics.update(scan_quality(generate_scans(g_scan, hold_color, rt, cfg.eval_batch), hold_color,
                                        hold_truth))
            return metrics, {f"holdout/{k}": v for k, v in metrics.items()}

        return GanStagePlan(
            state=make_state(cfg, params.lr, rt, color, scan, params.seed),
            step=lambda st: cyclegan_step(st, cfg, rt),
            describe=describe(cfg, params.lr),
            inputs=[prepared / "index.parquet"],
            sample=lambda st: scan_sample_grid(unwrap(st.models["G_scan"]), shown_colors, shown_truth, rt),
            finish=finish,
        )

    return run_gan_stage(cfg, params.seed, plan_for, live_dir, checkpoint_dir)
