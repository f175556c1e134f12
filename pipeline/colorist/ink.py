"""The page's own ink over the colors, as a colorist composes: the line art multiplied over
the color layer, pixel-exact, so every line comes out at least as dark as it was drawn.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

INK_MODES = ("multiply", "none")


def ink_multiply(color_u8: np.ndarray, ink_u8: np.ndarray) -> np.ndarray:
    """A colorist's composite: the ink layer (H, W) or (H, W, 1) multiplied over the color
    layer (..., H, W, 3), all uint8. Every output channel is at most the ink's value, so each
    line pixel comes out at least as dark as the page's own ink."""
    ink = ink_u8 if ink_u8.ndim == color_u8.ndim else ink_u8[..., None]
    return ((color_u8.astype(np.uint16) * ink.astype(np.uint16) + 127) // 255).astype(np.uint8)


def compose(colors: Image.Image, line_art: Image.Image, ink: str) -> Image.Image:
    if ink == "none":
        return colors
    return Image.fromarray(ink_multiply(np.asarray(colors), np.asarray(line_art)), mode="RGB")
