"""The layered file `onepunch colorize --layers` writes beside the PNG: a PSD (psd-tools)
that Krita, GIMP and Photoshop open, laid out as a colorist lays out a page:

1. "Ink" (top): the page's line art in multiply mode, opaque where there is ink and
   transparent on the paper, so painting underneath never touches the lines;
2. "Colors": the colorizer's color layer, normal mode;
3. "Flats" (hidden): each closed region of the line art in one flat color (the median of the
   color layer over it), the layer a colorist selects regions from with a magic wand.

The composite (ink multiplied over the colors) is the PNG `colorize` writes, within one
grey level: the PNG's integer multiply rounds to nearest, psd-tools' compositor rounds
down (read back in the tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

LAYER_NAMES = ("Ink", "Colors", "Flats")  # top to bottom


def flats(colors: np.ndarray, line_art: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): every closed region of the line art (H, W) in the median of `colors`
    over it; ink pixels keep the color layer's value."""
    from scipy import ndimage

    from pipeline.colorist.regions import regions

    labels, n = regions(line_art)
    out = colors.copy()
    if n == 0:
        return out
    index = np.arange(1, n + 1)
    for c in range(3):
        med = ndimage.median(colors[..., c], labels, index)
        lut = np.concatenate([[0], np.asarray(med)]).round().astype(np.uint8)
        out[..., c] = np.where(labels > 0, lut[labels], colors[..., c])
    return out


def write_psd(path: Path, colors: Image.Image, line_art: Image.Image, ink_visible: bool = True) -> None:
    """Write the layered file atomically (ink hidden when the PNG was written without it)."""
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer
    from psd_tools.constants import BlendMode

    from pipeline.files import atomic_path

    rgb = np.asarray(colors.convert("RGB"))
    ink = np.asarray(line_art.convert("L"))
    psd = PSDImage.new("RGB", colors.size)
    flat_layer = PixelLayer.frompil(Image.fromarray(flats(rgb, ink), "RGB"), psd, "Flats")
    flat_layer.visible = False
    psd.append(flat_layer)
    psd.append(PixelLayer.frompil(Image.fromarray(rgb, "RGB"), psd, "Colors"))
    # the line art's own grey, opaque on the ink and transparent on the paper (multiply by white
    # is no change)
    ink_rgba = np.repeat(ink[..., None], 4, -1)
    ink_rgba[..., 3] = np.where(ink < 255, 255, 0)
    ink_layer = PixelLayer.frompil(Image.fromarray(ink_rgba, "RGBA"), psd, "Ink")
    ink_layer.blend_mode = BlendMode.MULTIPLY
    ink_layer.visible = ink_visible
    psd.append(ink_layer)
    with atomic_path(path) as tmp:
        psd.save(tmp)
