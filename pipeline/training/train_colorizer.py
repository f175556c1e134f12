"""The `train_colorizer@{scangen,greyscale}` stage as one library call: train the attention
U-Net colorizer on (scangen(color), color) pairs (the method) or on (greyscale(color), color)
pairs (the thesis test's baseline) and publish it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from torch import nn

from pipeline.colorist.arrays import colorize_arrays
from pipeline.config import Params
from pipeline.data.shards import holdout_with_truth, load_split_for_training
from pipeline.evaluation.grids import image_grid, sample_crop
from pipeline.models.colorizer import publish_colorizer
from pipeline.pixels import greyscale_u8
from pipeline.runtime import Runtime
from pipeline.training.colorizer_step import (
    VARIANTS,
    colorizer_step,
    describe,
    make_state,
    published_generator,
)
from pipeline.training.gan_stage import GanStagePlan, run_gan_stage
from pipeline.training.state import TrainState

SAMPLES = 8  # holdout images in each sample grid


def colorizer_sample_grid(g: nn.Module, scans: np.ndarray, colors: np.ndarray, rt: Runtime):
    """The training sample grid; rows: input scan | colorization | ground truth."""
    return image_grid([scans, colorize_arrays(g, scans, rt), colors], scale=2)


def training_pairs(variant: str, prepared: Path, pairs: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(scans, colors) of the train split for a variant."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: allowed values are {', '.join(VARIANTS)}")
    if variant == "greyscale":
        return None, load_split_for_training(prepared, "color", "train")  # scans: greyscale per batch
    from pipeline.data.pairs import load_pairs

    if pairs is None:
        raise ValueError("the scangen variant needs --pairs (the make_pairs stage's output)")
    return load_pairs(prepared, pairs, "train")


def train_colorizer(params: Params, variant: str, prepared: Path, pairs: Path | None, model_path: Path,
                    live_dir: Path, checkpoint_dir: Path) -> dict | None:
    """Train (resuming when possible) and publish one variant. Returns the metrics (None on ranks other than the main one)."""
    cfg = params.colorizer
    if variant == "greyscale":
        # its inputs are greyscale copies of the colors, whose grey is the color's own
        # lightness, not ink: composed with them, it would learn color / lightness; nor
        # are they scans to re-ink
        cfg = replace(cfg, composite_l1=False, scan_style=0.0)

    def plan_for(rt: Runtime) -> GanStagePlan:
        scans, colors = training_pairs(variant, prepared, pairs)
        hold_color, hold_truth = holdout_with_truth(prepared)
        idx = np.linspace(0, len(hold_color) - 1, min(SAMPLES, len(hold_color))).astype(int)
        hold_scans = hold_truth[idx] if hold_truth is not None else greyscale_u8(hold_color[idx])
        hold_scans, shown_colors = sample_crop(hold_scans), sample_crop(hold_color[idx])

        def finish(state: TrainState) -> tuple[dict, dict]:
            publish_colorizer(published_generator(state), model_path, image_size=colors.shape[1], steps=state.step,
                              variant=variant)
            metrics = {"steps": state.step, "variant": variant, "train_pairs": len(colors)}
            return metrics, {}

        return GanStagePlan(
            state=make_state(cfg, params.lr, rt, scans, colors, params.seed),
            step=lambda st: colorizer_step(st, cfg, rt),
            describe=describe(cfg, params.lr, variant),
            inputs=[prepared / "index.parquet"] + ([pairs / "pairs.json"] if variant == "scangen" else []),
            sample=lambda st: colorizer_sample_grid(published_generator(st), hold_scans, shown_colors, rt),
            finish=finish,
        )

    return run_gan_stage(cfg, params.seed, plan_for, live_dir, checkpoint_dir)
