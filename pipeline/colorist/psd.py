"""The layered file `onepunch colorize --layers` writes beside the PNG: a PSD (psd-tools)
that Krita, GIMP and Photoshop open, laid out as a colorist lays out a page:

1. "Ink" (top): the page's strokes in multiply mode, opaque where there is ink and
   transparent on the paper, so painting underneath never touches the lines;
2. "Fills": the black fills in a dark shade of their color (black where they have none);
3. "Tone": the screentone descreened into shading, in multiply mode (with `--tone keep`,
   the dots stay in the ink layer and this layer is empty);
4. "Colors": the color layer, normal mode;
5. "Flats" (hidden): each region of the line art in one flat color (the median of the color
   layer over it), the layer a colorist selects regions from with a magic wand.

These are `pipeline.colorist.ink.page_layers`; composed, they are the PNG `colorize`
writes, within a grey level or two: the PNG's integer arithmetic rounds to nearest,
psd-tools' compositor rounds down (read back in the tests).

A PSD holds at most 30,000 px a side (Photoshop's PSB format goes further; psd-tools does
not write it): a longer page, a webtoon strip, is refused before any layer is computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

LAYER_NAMES = ("Ink", "Fills", "Tone", "Colors", "Flats")  # top to bottom
PSD_MAX_SIDE = 30_000  # px, the PSD format's limit on either side


def psd_too_large(size: tuple[int, int]) -> str | None:
    """Why a page of `size` (width, height) cannot be a PSD, or None when it can."""
    w, h = size
    if max(w, h) <= PSD_MAX_SIDE:
        return None
    return f"the page is {w}x{h} and PSD is limited to {PSD_MAX_SIDE:,} px a side (PSB is not supported)"


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


class PsdTooLarge(ValueError):
    """A page over PSD's size limit: no PSD is written (the PNG beside it stands)."""


def write_psd(path: Path, colors: Image.Image, line_art: Image.Image, ink_visible: bool = True,
              tone: str = "descreen") -> None:
    """Write the layered file atomically (ink, fills and tone hidden when the PNG was written
    without them: `--ink none`). A page too large for a PSD raises ValueError naming it and
    the limit (`psd_too_large`), before any work: PsdTooLarge, a ValueError."""
    too_large = psd_too_large(colors.size)
    if too_large:
        raise PsdTooLarge(f"{Path(path).name} not written: {too_large}")
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer
    from psd_tools.constants import BlendMode

    from pipeline.colorist.ink import page_layers
    from pipeline.files import atomic_path

    rgb = np.asarray(colors.convert("RGB"))
    ink = np.asarray(line_art.convert("L"))
    layers = page_layers(rgb, ink, tone=tone)
    psd = PSDImage.new("RGB", colors.size)

    def add(name: str, pixels: np.ndarray, mode: str, blend=None, visible: bool = True) -> None:
        layer = PixelLayer.frompil(Image.fromarray(pixels, mode), psd, name)
        if blend is not None:
            layer.blend_mode = blend
        layer.visible = visible
        psd.append(layer)

    add("Flats", flats(rgb, ink), "RGB", visible=False)
    add("Colors", layers.colors if ink_visible else rgb, "RGB")  # --ink none: the layer the PNG is

    def grey_rgba(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A multiply layer: the grey where `mask` says, transparent elsewhere (multiplying by
        white is no change, so the paper is left out too)."""
        out = np.repeat(grey[..., None], 4, -1)
        out[..., 3] = np.where(mask & (grey < 255), 255, 0)
        return out

    add("Tone", grey_rgba(layers.shading, layers.shading_mask), "RGBA", BlendMode.MULTIPLY, ink_visible)
    fills = np.concatenate([layers.fills, np.where(layers.fill_mask, 255, 0).astype(np.uint8)[..., None]], -1)
    add("Fills", fills, "RGBA", visible=ink_visible)
    add("Ink", grey_rgba(layers.ink, layers.ink_mask), "RGBA", BlendMode.MULTIPLY, ink_visible)
    with atomic_path(path) as tmp:
        psd.save(tmp)
