"""The regions of a page's line art: the areas its ink closes, where a colorist's bucket fill
(and a hint) stops. Used by hints (`pipeline.colorist.hints`), the flats layer of the PSD
(`pipeline.colorist.psd`) and the evaluation of hints.
"""

from __future__ import annotations

import numpy as np

LINE_LEVEL = 100  # scan pixels darker than this (0..255) are ink: they bound the regions
# ink specks up to this many pixels are screentone dots, not lines (tone dots measure 1-4 px
# in the 256-px images and up to 31 px on a 1024x1448 page; the thinnest closed outline is
# hundreds)
TONE_DOT_MAX = 48


def regions(scan: np.ndarray) -> tuple[np.ndarray, int]:
    """Closed regions of a uint8 (H, W) scan: labels (H, W) int32 (0 on the lines), and their
    count. Screentone dots (ink specks of at most TONE_DOT_MAX pixels, 4-connected) belong to
    the region they tone, not to its outline: a hint on a toned dress fills the dress, not
    the white gaps between two dots."""
    from scipy import ndimage

    ink = np.asarray(scan) < LINE_LEVEL
    specks, n_specks = ndimage.label(ink)
    if n_specks:
        small = np.bincount(specks.ravel(), minlength=n_specks + 1) <= TONE_DOT_MAX
        small[0] = False
        ink &= ~small[specks]
    labels, n = ndimage.label(~ink)
    return labels.astype(np.int32, copy=False), int(n)
