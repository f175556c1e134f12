"""The train_colorizer stage as one library call (the stage script only parses arguments)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.colorization import (VARIANTS, colorize_arrays, colorizer_step, describe, greyscale_u8, make_state,
                                   publish_colorizer)
from pipeline.config import Params
from pipeline.prepare import load_split_for_training
from pipeline.scangen_stage import holdout_with_truth
from pipeline.training import (Checkpointer, LoopConfig, MetricLogger, fingerprint, fit, seed_everything,
                               setup_runtime, teardown_runtime)

SAMPLES = 8


def training_pairs(variant: str, prepared: Path, pairs: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(scans, colors) of the train split for a variant."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: allowed values are {', '.join(VARIANTS)}")
    if variant == "greyscale":
        return None, load_split_for_training(prepared, "color", "train")  # scans: greyscale per batch
    from pipeline.pairs import load_pairs

    if pairs is None:
        raise ValueError("the scangen variant needs --pairs (the make_pairs stage's output)")
    return load_pairs(prepared, pairs, "train")


def sample_grid(g, scans: np.ndarray, colors: np.ndarray, rt):
    """PIL grid: input scan | colorization | ground truth, one column per image."""
    import torch
    import torchvision
    from PIL import Image

    out = colorize_arrays(g, scans, rt)
    rows = [torch.from_numpy(scans).permute(0, 3, 1, 2).expand(-1, 3, -1, -1),
            torch.from_numpy(out).permute(0, 3, 1, 2), torch.from_numpy(colors).permute(0, 3, 1, 2)]
    grid = torchvision.utils.make_grid(torch.cat(rows), nrow=len(scans), padding=2, pad_value=128)
    img = Image.fromarray(grid.permute(1, 2, 0).numpy())
    return img.resize((img.width * 2, img.height * 2), Image.NEAREST)


def train_colorizer(params: Params, variant: str, prepared: Path, pairs: Path | None, model_path: Path,
                    live_dir: Path, checkpoint_dir: Path, stop_after: int | None = None) -> dict | None:
    cfg = params.colorizer
    rt = setup_runtime(cfg.device)
    try:
        seed_everything(params.seed + rt.rank)
        scans, colors = training_pairs(variant, prepared, pairs)
        hold_color, hold_truth = holdout_with_truth(prepared)
        idx = np.linspace(0, len(hold_color) - 1, min(SAMPLES, len(hold_color))).astype(int)
        hold_scans = hold_truth[idx] if hold_truth is not None else greyscale_u8(hold_color[idx])
        state = make_state(cfg, params.lr, rt, scans, colors, params.seed)
        inputs = [prepared / "index.parquet"] + ([pairs / "pairs.json"] if variant == "scangen" else [])
        fp = fingerprint({**describe(cfg, params.lr, variant), "seed": params.seed, "world": rt.world_size},
                         inputs)
        checkpointer = Checkpointer(checkpoint_dir, fp, enabled=rt.is_main)
        logger = MetricLogger(live_dir, enabled=rt.is_main)

        def sample(st):
            logger.image(f"samples/step_{st.step:06d}.png", sample_grid(st.models["G"], hold_scans,
                                                                        hold_color[idx], rt))

        loop = LoopConfig.of(cfg)
        state = fit(state, lambda st: colorizer_step(st, cfg, rt), loop, rt, logger, checkpointer, sample,
                    stop_after=stop_after)
        if state.step < cfg.steps:
            return None
        metrics = None
        if rt.is_main:
            publish_colorizer(state.models["G"], model_path, image_size=colors.shape[1], steps=state.step,
                              variant=variant)
            metrics = {"steps": state.step, "variant": variant, "train_pairs": len(colors)}
            logger.close()
            checkpointer.clear()
        return metrics
    finally:
        teardown_runtime(rt)
