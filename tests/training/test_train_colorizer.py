"""The colorizer's training pieces: pair sampling, the cGAN step, progressive sizes."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import smooth

from pipeline.config import ColorizerConfig
from pipeline.models.pixels import greyscale_u8
from pipeline.training.colorizer_step import colorizer_step, current_size, make_state
from pipeline.training.runtime import Runtime
from pipeline.training.samplers import PairSampler

CPU = Runtime(device=torch.device("cpu"))
TINY = ColorizerConfig(steps=40, batch_size=2, width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=4,
                       flip=False, rotate_deg=0.0, shift=0.0)


def test_pair_sampler_keeps_pairs_together():
    scans = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    colors = np.repeat(scans, 3, axis=3)
    s, c = PairSampler(scans, colors, 4, seed=0).next()
    assert torch.equal(s[..., 0], c[..., 0])


@pytest.mark.slow
def test_colorizer_learns_one_batch():
    colors = smooth(2, 3)
    scans = greyscale_u8(colors)
    cfg = replace(TINY, lambda_l1=100.0)
    state = make_state(cfg, 5e-3, CPU, scans, colors, seed=0)
    first = colorizer_step(state, cfg, CPU)["loss/L1"]
    for _ in range(cfg.steps):
        last = colorizer_step(state, cfg, CPU)["loss/L1"]
    assert last < 0.5 * first


def test_progressive_sizes():
    cfg = replace(TINY, steps=90, progressive_sizes=[16, 32, 64])
    assert [current_size(cfg, s, 64) for s in (0, 29, 30, 60, 89)] == [16, 16, 32, 64, 64]
    assert current_size(TINY, 5, 64) == 64
