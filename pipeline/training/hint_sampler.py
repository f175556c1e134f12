"""Training hints for the colorizer (Zhang et al. 2017; AlacGAN, Ci et al. 2018): per sample a
geometric number of hints taken from the target, spread as a user's hints are
(`pipeline.colorist.hints`), some recolored so the network learns to obey a hint that
disagrees with what it would paint; drawn from a checkpointed generator (exact resume).
"""

from __future__ import annotations

import numpy as np

from pipeline.colorist.hints import encode_hints, sample_hints
from pipeline.colorist.regions import regions
from pipeline.models.colorizer import HINT_CHANNELS


def training_hints(rng: np.random.Generator, scans: np.ndarray, colors: np.ndarray, p: float, max_hints: int,
                   max_patch: int, recolor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Hint channels for a training batch: uint8 (B, H, W, 1) scans and (B, H, W, 3) targets
    -> (uint8 (B, H, W, 4) hints, the targets they ask for). Hint counts are geometric,
    P(k) = p (1 - p)^k capped at max_hints: a share p of the samples gets none (the
    automatic colorizer), the mean is (1 - p) / p.

    recolor: the share of hints given a random color instead of the target's, the target
    recolored to match over the region the hint spreads over (its shading kept). Sampled
    from the target alone, hints never disagree with it, and a network never learns what
    a colorist's hints mostly are: a different color than it would have chosen, to be
    obeyed inside the region and nowhere else.
    """
    out = np.empty((*scans.shape[:3], HINT_CHANNELS), np.uint8)
    targets = colors
    counts = np.minimum(rng.geometric(p, size=len(scans)) - 1, max_hints)
    for i, k in enumerate(counts.tolist()):
        scan = scans[i, ..., 0]
        ids, cols = sample_hints(rng, scan, colors[i], k, max_patch)
        flip = rng.random(len(cols)) < recolor if recolor > 0 else np.zeros(len(cols), bool)
        labels = regions(scan)[0] if len(cols) else None
        if flip.any():
            cols = cols.copy()
            cols[flip] = rng.integers(0, 256, (int(flip.sum()), 3))
        out[i] = encode_hints(scan, ids, cols, labels)
        if flip.any():
            if targets is colors:
                targets = np.array(colors)
            _recolor(targets[i], out[i], labels, np.unique(labels[np.isin(ids, np.flatnonzero(flip))]))
    return out, targets


def _recolor(target: np.ndarray, encoded: np.ndarray, labels: np.ndarray, hit: np.ndarray) -> None:
    """In place: over each region in `hit` the target becomes the hint layer's color there
    plus the target's own shading (its deviation from its mean over the region)."""
    for region in hit.tolist():
        if region == 0:
            continue
        where = labels == region
        base = target[where].astype(np.int16)
        shading = base - base.mean(0).round().astype(np.int16)
        target[where] = np.clip(encoded[where, :3].astype(np.int16) + shading, 0, 255).astype(np.uint8)


class HintSampler:
    """Training hints from a checkpointed generator (exact resume)."""

    def __init__(self, seed: int, p: float, max_hints: int, max_patch: int, recolor: float = 0.0):
        self.rng = np.random.default_rng(seed)
        self.p, self.max_hints, self.max_patch, self.recolor = p, max_hints, max_patch, recolor

    def __call__(self, scans: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hint channels, targets) for a batch; see `training_hints`."""
        return training_hints(self.rng, scans, colors, self.p, self.max_hints, self.max_patch, self.recolor)

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
