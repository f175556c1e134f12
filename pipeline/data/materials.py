"""What each pixel of a synthetic color picture is: its material (hair, skin, cloth, ...).

The synthetic source draws every picture from a scene of regions, each of one material
(`pipeline.data.synthetic.scenes.Region.material`); it writes, beside the true scan, a map
of material codes (`root/materials/{id}.png`, 'L', one code per pixel), which the images
stage packs row-aligned with the color holdout (`color-holdout-materials-*.npy`). The
evaluation reports ΔE2000 per group of materials from it: where a colorizer recognises
what it paints (a character's hair, a sky) and where it only reads the ink.
"""

from __future__ import annotations

import numpy as np

# code = index; "outside" is the white padding around a picture (not the picture)
MATERIALS = ("outside", "backdrop", "skin", "hair", "cloth", "eye", "iris", "pupil", "shine", "object", "ground",
             "accent")
CODE = {name: code for code, name in enumerate(MATERIALS)}
# the rows the evaluation reports: a group's ΔE is over all its pixels in the holdout
GROUPS = {
    "hair": ("hair",),
    "skin": ("skin",),
    "cloth": ("cloth", "accent"),  # garments, bows, hats
    "eyes": ("eye", "iris", "pupil", "shine"),
    "objects": ("object",),  # balls, stars, props
    "ground": ("ground",),
    "backdrop": ("backdrop",),  # sky, walls, pastel or plain paper behind the scene
}


def group_masks(codes: np.ndarray) -> dict[str, np.ndarray]:
    """bool masks, shaped like `codes` (uint8 material codes), one per group of GROUPS."""
    codes = np.asarray(codes)
    if codes.size and int(codes.max()) >= len(MATERIALS):
        raise ValueError(f"material code {int(codes.max())} unknown (codes 0..{len(MATERIALS) - 1})")
    return {group: np.isin(codes, [CODE[m] for m in names]) for group, names in GROUPS.items()}
