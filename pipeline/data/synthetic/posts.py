"""Post plans of the synthetic mini-Danbooru2020: ids, kinds, original sizes, what gets a 512px file.

`plan_posts` decides every post before anything is drawn. Used by the `source` stage (kind
synthetic, via `generate_dataset`) and by `onepunch synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.config import SyntheticConfig
from pipeline.data.synthetic.distractors import CORRUPTIONS
from pipeline.data.synthetic.scene_images import pick_background

MAX_POST_ID = 5_000_000
DOMAINS = ("color", "scan")
DISTRACTOR_KINDS = (  # filled round-robin, so a few distractors already cover every kind
    "comic", "4koma", "photo", "partially_monochrome", "spot_color", "rating_q", "rating_e",
    "deleted", "banned", "non_image", "tiny", "extreme_aspect",
)
CORRUPT_KIND = "corrupt"  # colored-looking, rating s, but the 512px jpg is broken
IMAGE_EXTS = ("jpg", "png")
NON_IMAGE_EXTS = ("zip", "swf", "webm", "mp4")
_LOOK_ALTERNATING = ("rating_q", "rating_e", "deleted", "banned", "non_image", "tiny", "extreme_aspect")


@dataclass(frozen=True)
class PostPlan:
    """What one post is and what its 512px image shows (decided before anything is drawn)."""

    id: int
    kind: str  # color, scan, a DISTRACTOR_KINDS entry, or corrupt
    look: str  # color, scan, comic, 4koma_color, 4koma_scan, photo, spot_color, partially_monochrome
    width: int  # the original's image_width / image_height
    height: int
    file_ext: str
    rating: str
    has_image: bool  # a 512px jpg exists (rating s, an image file_ext)
    background: str = "white"  # color looks: one of BACKGROUNDS
    corruption: str = ""  # corrupt kind: one of CORRUPTIONS
    grey_jpeg: bool = False  # scan saved as a 1-channel JPEG


def distractor_counts(n: int) -> dict[str, int]:
    """How n distractors split over kinds: 2-3 corrupt files, the rest round-robin."""
    if n <= 0:
        return {}
    counts = {CORRUPT_KIND: min(3, max(1, n // 6))}
    counts.update({k: 0 for k in DISTRACTOR_KINDS})
    for i in range(n - counts[CORRUPT_KIND]):
        counts[DISTRACTOR_KINDS[i % len(DISTRACTOR_KINDS)]] += 1
    return {k: v for k, v in counts.items() if v}


def seed_entropy(seed: int) -> int:
    return int(seed) % 2**63  # SeedSequence wants a non-negative integer


def _dims(rng: np.random.Generator, long_side: tuple[int, int], aspect: tuple[float, float]) -> tuple[int, int]:
    """Original (width, height) with width/height drawn log-uniformly in `aspect`."""
    side = int(rng.integers(*long_side))
    a = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    return (side, max(1, round(side / a))) if a >= 1 else (max(1, round(side * a)), side)


def plan_posts(cfg: SyntheticConfig) -> list[PostPlan]:
    """Every post of the dataset: ids, kinds, original sizes, what gets a 512px file."""
    rng = np.random.default_rng([seed_entropy(cfg.seed), 1])
    kinds = ["color"] * cfg.n_color + ["scan"] * cfg.n_scan
    for kind, n in distractor_counts(cfg.n_distractors).items():
        kinds += [kind] * n
    ids = rng.choice(MAX_POST_ID, size=len(kinds), replace=False) + 1
    plans, seen = [], dict.fromkeys(kinds, 0)
    for post_id, kind in zip(ids.tolist(), kinds):
        i = seen[kind]
        seen[kind] += 1
        dims = _dims(rng, (600, 2400), (0.6, 1.6))
        look = "color" if kind == CORRUPT_KIND else kind
        rating, file_ext = "s", str(rng.choice(IMAGE_EXTS, p=[0.65, 0.35]))
        if kind in _LOOK_ALTERNATING:
            look = DOMAINS[i % 2]
        if kind == "comic":
            dims = _dims(rng, (900, 2400), (0.65, 0.75))
        elif kind == "4koma":
            dims = _dims(rng, (900, 2400), (0.55, 0.7))
            look = ("4koma_scan", "4koma_color")[i % 2]
        elif kind == "photo":
            file_ext = "jpg"
        elif kind in ("rating_q", "rating_e"):
            rating = kind[-1]
        elif kind == "non_image":
            file_ext = NON_IMAGE_EXTS[i % len(NON_IMAGE_EXTS)]
        elif kind == "tiny":
            dims = _dims(rng, (80, 250), (0.7, 1.4))
        elif kind == "extreme_aspect":
            dims = _dims(rng, (1200, 2400), (3.5, 5.0) if i % 2 == 0 else (0.2, 0.28))
        elif kind == CORRUPT_KIND:
            file_ext = "jpg"
        plans.append(PostPlan(
            id=post_id, kind=kind, look=look, width=dims[0], height=dims[1], file_ext=file_ext,
            rating=rating, has_image=rating == "s" and file_ext in IMAGE_EXTS,
            background=pick_background(rng),
            corruption=CORRUPTIONS[i % len(CORRUPTIONS)] if kind == CORRUPT_KIND else "",
            grey_jpeg=look == "scan" and rng.random() < 0.25,
        ))
    return plans
