"""A page's ink, separated and composed as a colorist composes it.

A black-and-white page is three kinds of ink on paper (`separate`):
- **line ink**: strokes, also those drawn over tone (found as ridges, which tone dots are
  not); multiplied over the colors pixel-exact, so every line comes out at least as dark as
  it was drawn;
- **black fills**: solid dark areas wider than a stroke (a black cape, black hair); they
  carry a color, and come out as a dark shade of it (`dark_shade`), not black;
- **tone**: screentone dots (and the paper between them) inside a region; the dots are the
  printer's way of drawing a mid-tone, so they become the shading of the color beneath them
  (descreened: the dots averaged away, `tone="descreen"`), or stay as dots (`tone="keep"`).

`compose_page` puts the page together over a color layer; `ink_multiply` is the plain
composite (the whole page multiplied over the colors), which `tone="keep"` and `--ink` keep.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

INK_MODES = ("multiply", "none")
TONE_MODES = ("descreen", "keep")

INK_LEVEL = 128  # scan pixels darker than this (0..255) are ink
FILL_RADIUS = 3  # pixels: ink that survives an opening with a disk this size is a fill (>= 7 px across)
# tone dots: ink specks of at most this many pixels (at TONE_DOT_PAGE px on the long side;
# scaled with the page's area), where at least TONE_DENSITY of a TONE_WINDOW-px window is dots
TONE_DOT_MAX, TONE_DOT_PAGE = 30, 1500
TONE_DENSITY, TONE_WINDOW = 0.04, 15
# light tone is many dots: at least TONE_MIN_DOTS specks centred in a TONE_COUNT_WINDOW-px
# window; fewer (a lettered "I", a period, a highlight in an eye) are strokes, not tone
TONE_MIN_DOTS, TONE_COUNT_WINDOW = 6, 41
MESH_FLIPS = 0.45  # ink/paper alternations per pixel (across and down) of a dense tone: a stroke gives ~0.15
# a stroke drawn over tone (a figure's outline on a toned background, hatching, the edge of
# a step): where Frangi's vesselness (at these scales, px) exceeds RIDGE_LEVEL and the scan
# is darker than RIDGE_DARK, in thin runs at least RIDGE_MIN_PX long, the tone's
# pixels are line, kept as drawn and not descreened. Tone dots are blobs, which vesselness
# suppresses; a thin line stays one even where the ink threshold breaks it into dot-sized
# pieces; the short ridges a dense mesh of touching dots gives are dropped by length
# σ = 1 is given one float step above 1: scikit-image's Gaussian derivatives reach 100 σ for
# σ ≤ 1 and 8 σ above (`_hessian_matrix_with_gaussian`), so σ = 1 filtered with 143 taps where
# 13 give the same float32 vesselness, bit for bit (tests/colorist/test_ink.py); 2.2x faster
RIDGE_SIGMAS = (float(np.nextafter(1.0, 2.0)), 1.5)
RIDGE_LEVEL, RIDGE_DARK, RIDGE_MIN_PX = 0.15, 200, 8
RIDGE_ELONGATION = 2.0  # a run's extent over the side of a square of its area: a line's, not a patch's
# Frangi's structureness scale γ, fixed: scikit-image's default, half the largest Hessian
# norm in the image, is 0.20-0.23 on every page measured (black ink on white saturates it),
# but would make a crop's ridges depend on what else the crop holds
RIDGE_GAMMA = 0.22
RIDGE_PAD = 12  # px around each toned area the ridges are looked for in (the filters' reach and more)
FILL_LIGHTNESS = 28.0  # CIELAB L* of a black fill's color
COLORED_CHROMA = 6.0  # a color layer less chromatic than this under a fill leaves the fill black
DESCREEN_CHROMA = 12.0  # screentone becomes shading in full where its color is this chromatic


@dataclass(frozen=True)
class Separation:
    """The ink of a page, by kind; bool (H, W) masks, and the tone's shading."""

    line: np.ndarray  # strokes: what a region's walls are made of
    fill: np.ndarray  # solid black areas
    tone: np.ndarray  # toned areas: the dots and the paper between them
    shading: np.ndarray  # float32 (H, W) in [0, 1]: the tone descreened; 1 outside tone
    tone_sigma: float  # the descreening blur (about a dot pitch), pixels
    # the part of `line` found as ridges over tone (hatching or an outline: kept as drawn,
    # but no wall for the hints, as they were no wall before they were found)
    ridge: np.ndarray


# colorizing a page asks for its separation up to three times (the areas its colors keep to,
# the composite, the layered file): `separation` remembers the last few pages'
CACHED_PAGES = 2
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def separation(scan: np.ndarray) -> Separation:
    """`separate(scan)`, remembered for the last CACHED_PAGES pages (by their pixels); its
    arrays are read-only, as one result serves every caller."""
    scan = np.ascontiguousarray(scan, np.uint8)
    key = (scan.shape, hashlib.blake2b(scan.data, digest_size=16).digest())
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    sep = separate(scan)
    for mask in (sep.line, sep.fill, sep.tone, sep.shading, sep.ridge):
        mask.setflags(write=False)
    with _CACHE_LOCK:
        _CACHE[key] = sep
        while len(_CACHE) > CACHED_PAGES:
            _CACHE.popitem(last=False)
    return sep


def _disk(r: int) -> np.ndarray:
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def separate(scan: np.ndarray) -> Separation:
    """Split a uint8 (H, W) page into line ink, black fills and tone (module docstring)."""
    from scipy import ndimage

    scan = np.asarray(scan)
    h, w = scan.shape
    ink = scan < INK_LEVEL
    radius = FILL_RADIUS
    core = ndimage.binary_erosion(ink, _disk(radius), border_value=1)
    fill = ndimage.binary_dilation(core, _disk(radius)) & ink
    specks, n = ndimage.label(ink & ~fill)
    sizes = np.bincount(specks.ravel(), minlength=n + 1)
    if fill.any() and n:  # what the opening shaved off a fill (its corners) is the fill's, not a stroke
        touching = np.zeros(n + 1, bool)
        touching[specks[ndimage.binary_dilation(fill) & (specks > 0)]] = True
        shaved = touching & (sizes <= 2 * (2 * radius + 1) ** 2)
        shaved[0] = False
        fill |= shaved[specks]
        specks[shaved[specks]] = 0
        sizes[shaved] = 0  # those labels are gone
    dot_max = max(4, round(TONE_DOT_MAX * (max(h, w) / TONE_DOT_PAGE) ** 2))
    small = sizes <= dot_max
    small[0] = False
    dots = small[specks]  # light tone: dots apart
    centers = np.zeros((h, w), np.float32)  # one mark per small speck, at its centre
    index = np.flatnonzero(small & (sizes > 0))  # the dots still there (not shaved off a fill)
    if index.size:
        cy, cx = (np.rint(c).astype(int) for c in zip(*ndimage.center_of_mass(dots, specks, index)))
        np.add.at(centers, (cy, cx), 1.0)
    crowd = ndimage.uniform_filter(centers, TONE_COUNT_WINDOW, mode="constant") * TONE_COUNT_WINDOW ** 2
    # dense tone: dots that touch (a mesh), found by how often ink and paper alternate; in it,
    # what an opening with a 3 x 3 square removes is dots, what survives is a stroke
    flips = np.zeros((h, w), np.float32)
    flips[:, 1:] += ink[:, 1:] != ink[:, :-1]
    flips[1:, :] += ink[1:, :] != ink[:-1, :]
    texture = ndimage.uniform_filter(flips, TONE_WINDOW) > MESH_FLIPS
    mesh = texture & ink & ~fill & ~ndimage.binary_opening(ink, np.ones((3, 3), bool))
    tone = ((ndimage.uniform_filter(dots.astype(np.float32), TONE_WINDOW) > TONE_DENSITY)
            & (crowd > TONE_MIN_DOTS - 0.5))
    tone = (tone | texture) & ~fill
    dots = (dots | mesh) & tone
    line = ink & ~fill & ~dots
    ridge = np.zeros((h, w), bool)
    if tone.any():
        ridge = tone & ~line & _ridges(scan, tone)
        line |= ridge
        dots &= ~line
    sigma = 1.0
    shading = np.ones((h, w), np.float32)
    if dots.any():
        pitch = 4.0 / max(float(np.median(ndimage.uniform_filter(flips, TONE_WINDOW)[tone])), 0.1)  # px per dot
        sigma = float(np.clip(0.6 * pitch, 1.0, 6.0))
        shading[tone] = normalized_blur(scan.astype(np.float32) / 255, ~line, sigma)[tone]
    return Separation(line, fill, tone, shading, sigma, ridge)



def _ridges(scan: np.ndarray, where: np.ndarray) -> np.ndarray:
    """bool (H, W): thin dark lines (module constants RIDGE_*), not tone dots (Frangi et
    al. 1998, scikit-image's `frangi`), looked for around the `where` pixels only: in the
    box of each of its areas (grown by RIDGE_PAD px), not over the whole page."""
    from scipy import ndimage
    from skimage.filters import frangi

    out = np.zeros(scan.shape, bool)
    areas, _ = ndimage.label(ndimage.binary_dilation(where, np.ones((3, 3), bool), iterations=RIDGE_PAD))
    for box in ndimage.find_objects(areas):
        box = tuple(slice(max(0, b.start - RIDGE_PAD), b.stop + RIDGE_PAD) for b in box)
        part = scan[box]
        vessel = frangi(part.astype(np.float32) / 255, sigmas=RIDGE_SIGMAS, black_ridges=True, gamma=RIDGE_GAMMA)
        ridges = (vessel > RIDGE_LEVEL) & (part < RIDGE_DARK)
        runs, n = ndimage.label(ridges)  # 4-connected: a mesh's dots touch diagonally
        sizes = np.bincount(runs.ravel(), minlength=n + 1)
        keep = np.zeros(n + 1, bool)
        for k, run in enumerate(ndimage.find_objects(runs), 1):
            extent = max(run[0].stop - run[0].start, run[1].stop - run[1].start)
            # long, and thin: a line, not a patch of a screen that beats with the filter
            keep[k] = extent >= RIDGE_MIN_PX and extent >= RIDGE_ELONGATION * np.sqrt(sizes[k])
        out[box] |= keep[runs]
    return out


def normalized_blur(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `values` (H, W[, C]) over the `valid` pixels only (normalized
    convolution): line ink does not darken the tone it crosses."""
    from scipy import ndimage

    weight = ndimage.gaussian_filter(valid.astype(np.float32), sigma)
    if values.ndim == 3:
        num = np.stack([ndimage.gaussian_filter(values[..., c] * valid, sigma) for c in range(values.shape[-1])], -1)
        return num / np.maximum(weight, 1e-6)[..., None]
    return ndimage.gaussian_filter(values * valid, sigma) / np.maximum(weight, 1e-6)


def dark_shade(rgb_u8: np.ndarray, lightness: float = FILL_LIGHTNESS) -> np.ndarray:
    """The colors (..., 3) uint8 at CIELAB L* = `lightness`, hue kept and chroma kept as far
    as sRGB holds it at that lightness: what a black fill of that color looks like colored."""
    from skimage.color import lab2rgb, lab2xyz, rgb2lab

    xyz_to_linear = np.array([[3.24048134, -1.53715152, -0.49853633],  # sRGB, D65 (skimage's matrix)
                              [-0.96925495, 1.87599, 0.04155593],
                              [0.05564664, -0.20404134, 1.05731107]])
    lab = rgb2lab(np.asarray(rgb_u8, np.uint8).reshape(-1, 1, 3))[:, 0]  # (N, 3)
    lab[:, 0] = lightness
    scale = np.zeros(len(lab))
    for s in np.linspace(0.0, 1.0, 21)[1:]:  # the most chroma that stays in gamut (sRGB before clipping)
        linear = lab2xyz((lab * [1.0, s, s])[:, None])[:, 0] @ xyz_to_linear.T
        scale[((linear >= -1e-4) & (linear <= 1 + 1e-4)).all(1)] = s
    rgb = lab2rgb((lab * np.column_stack([np.ones(len(lab)), scale, scale]))[:, None])[:, 0]
    return np.rint(rgb * 255).astype(np.uint8).reshape(np.shape(rgb_u8))


def ink_multiply(color_u8: np.ndarray, ink_u8: np.ndarray) -> np.ndarray:
    """A colorist's composite: the ink layer (H, W) or (H, W, 1) multiplied over the color
    layer (..., H, W, 3), all uint8. Every output channel is at most the ink's value, so each
    line pixel comes out at least as dark as the page's own ink."""
    ink = ink_u8 if ink_u8.ndim == color_u8.ndim else ink_u8[..., None]
    return ((color_u8.astype(np.uint16) * ink.astype(np.uint16) + 127) // 255).astype(np.uint8)


@dataclass(frozen=True)
class PageLayers:
    """A page as a colorist's layers, top to bottom; composed they are `compose_page`'s page.

    - ink: uint8 (H, W) multiplied over what is below, where `ink_mask` (the strokes, and the
      paper's grey edges; the whole page but its fills with tone="keep");
    - fills: uint8 (H, W, 3) black fills in a dark shade of their color, opaque where `fill_mask`;
    - shading: uint8 (H, W) the descreened tone, multiplied, where `shading_mask`;
    - colors: uint8 (H, W, 3) the color layer (its own dots averaged away under the tone).
    """

    ink: np.ndarray
    ink_mask: np.ndarray
    fills: np.ndarray
    fill_mask: np.ndarray
    shading: np.ndarray
    shading_mask: np.ndarray
    colors: np.ndarray


def page_layers(color: np.ndarray, scan: np.ndarray, sep: Separation | None = None,
                tone: str = "descreen") -> PageLayers:
    """Split a page over a uint8 (H, W, 3) color layer into the layers a colorist keeps."""
    if tone not in TONE_MODES:
        raise ValueError(f"tone {tone!r}: allowed values are {', '.join(TONE_MODES)}")
    color, scan = np.asarray(color, np.uint8), np.asarray(scan, np.uint8)
    sep = sep if sep is not None else separation(scan)
    colors = color.copy()
    shading = np.full(scan.shape, 255, np.uint8)
    toned = sep.tone & ~sep.line if tone == "descreen" else np.zeros(scan.shape, bool)
    if toned.any():
        smooth = normalized_blur(color.astype(np.float32), ~sep.line, sep.tone_sigma)  # dots in the layer too
        # where the layer has no color, the tone stays as drawn (a page left as it is keeps its
        # dots); where it has, they become its shading; in between, both in proportion
        weight = np.clip(_chroma(smooth[toned]) / DESCREEN_CHROMA, 0, 1)[:, None]
        colors[toned] = np.clip(np.rint(weight * smooth[toned] + (1 - weight) * color[toned]), 0, 255)
        grey = weight[:, 0] * sep.shading[toned] + (1 - weight[:, 0]) * scan[toned] / 255
        shading[toned] = np.clip(np.rint(grey * 255), 0, 255).astype(np.uint8)
    fills = np.zeros((*scan.shape, 3), np.uint8)
    fill_mask = sep.fill.copy()
    if fill_mask.any():
        under = color[fill_mask]
        colored = _chroma(under) >= COLORED_CHROMA
        shaded = ink_multiply(under, scan[fill_mask])  # a fill with no color: as drawn
        shaded[colored] = dark_shade(under[colored])
        fills[fill_mask] = shaded
    return PageLayers(ink=scan, ink_mask=~fill_mask & ~toned, fills=fills, fill_mask=fill_mask,
                      shading=shading, shading_mask=toned, colors=colors)


def composite_factor(scan: np.ndarray, sep: Separation | None = None) -> np.ndarray:
    """float32 (H, W): what `compose_page` multiplies a clearly colored layer by, pixel by
    pixel: the scan's ink (strokes, and the paper's grey) / 255, the descreened shading on
    tone; 1 on black fills, which are given a shade of the layer's color instead. The
    colorizer's training composes its output with it, so it learns the colors that compose
    into the page, not colors that the ink and tone darken a second time."""
    scan = np.asarray(scan, np.uint8)
    sep = sep if sep is not None else separate(scan)
    factor = scan.astype(np.float32) / 255
    toned = sep.tone & ~sep.line
    factor[toned] = sep.shading[toned]
    factor[sep.fill] = 1.0
    return factor


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """CIELAB chroma of RGB (N, 3) values in 0..255."""
    from skimage.color import rgb2lab

    lab = rgb2lab(np.clip(np.asarray(rgb, np.float64) / 255, 0, 1).reshape(-1, 1, 3)).reshape(-1, 3)
    return np.hypot(lab[:, 1], lab[:, 2])


def compose_page(color: np.ndarray, scan: np.ndarray, sep: Separation | None = None,
                 tone: str = "descreen") -> np.ndarray:
    """uint8 (H, W, 3) page: line ink multiplied over the color layer pixel-exact, toned
    areas descreened into the shading of their color (`tone="keep"`: the dots multiplied as
    they are), black fills in a dark shade of a clearly colored layer (black where the layer
    has no color: the page as drawn). The same page as `page_layers` stacked."""
    layers = page_layers(color, scan, sep, tone)
    out = ink_multiply(layers.colors, np.where(layers.ink_mask, layers.ink, np.uint8(255)))
    toned = layers.shading_mask
    out[toned] = np.clip(np.rint(layers.colors[toned] * (layers.shading[toned, None] / 255.0)), 0, 255)
    out[layers.fill_mask] = layers.fills[layers.fill_mask]
    return out


def compose(colors: Image.Image, line_art: Image.Image, ink: str, tone: str = "descreen",
            sep: Separation | None = None) -> Image.Image:
    """The page a colorist hands out (`compose_page`), or the color layer as it is (ink "none")."""
    if ink not in INK_MODES:
        raise ValueError(f"ink {ink!r}: allowed values are {', '.join(INK_MODES)}")
    if ink == "none":
        return colors
    return Image.fromarray(compose_page(np.asarray(colors), np.asarray(line_art.convert("L")), sep, tone), "RGB")
