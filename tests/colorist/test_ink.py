"""Ink, fills and tone, separated and composed: strokes stay pixel-exact, a colored black fill
becomes a dark shade of its color, screentone becomes the shading of the color beneath it
(or stays as dots with tone="keep")."""

import numpy as np
import pytest
from skimage.color import rgb2lab

from pipeline.colorist.ink import (
    FILL_LIGHTNESS,
    compose_page,
    composite_factor,
    dark_shade,
    ink_multiply,
    separate,
)

BLUE = (40, 80, 200)


def drawn_page():
    """160 x 200: a 2-px stroke, a 30 x 40 black fill, and a 50 % dot tone (2x2 dots, pitch 4)."""
    p = np.full((160, 200), 255, np.uint8)
    p[:, 100:102] = 0  # a stroke
    p[20:50, 20:60] = 0  # a black fill
    for y in range(80, 140, 4):
        for x in range(10, 90, 4):
            p[y:y + 2, x:x + 2] = 20  # tone dots
    return p


def test_separate_tells_strokes_fills_and_tone_apart():
    p = drawn_page()
    sep = separate(p)
    assert sep.line[:, 100:102].all() and not sep.line[20:50, 20:60].any() and not sep.line[82:138, 12:88].any()
    assert sep.fill[20:50, 20:60].all() and not sep.fill[:, 100:102].any() and not sep.fill[80:140, 10:90].any()
    assert sep.tone[90:130, 20:80].all() and not sep.tone[:, 100:102].any() and not sep.tone[20:50, 20:60].any()
    # descreened: the tone's mean level (a quarter of each 4 x 4 cell is a dot of 20)
    level = (3 * 255 + 20) / 4 / 255
    assert abs(float(sep.shading[100:120, 30:70].mean()) - level) < 0.03 and sep.shading[100:120, 30:70].std() < 0.03
    assert (sep.shading[~sep.tone] == 1).all()
    blank = separate(np.full((40, 40), 255, np.uint8))
    assert not (blank.line.any() or blank.fill.any() or blank.tone.any())


def test_lettering_and_lone_specks_are_strokes_not_tone():
    """On a page-sized scan (1500 px: specks up to 30 px may be tone dots) a lettered "I", a
    period and an eye's highlight are as small as dots but alone: strokes, kept pixel-exact,
    never descreened away; a light tone of such dots beside them stays tone."""
    p = np.full((300, 1500), 255, np.uint8)
    for k, x in enumerate(range(100, 400, 30)):  # a line of lettering: big letters, "I"s, a period
        if k % 3 == 1:
            p[100:112, x + 4:x + 6] = 0  # "I": 2 x 12 = 24 px
        else:
            p[100:114, x:x + 10] = 0
            p[102:112, x + 2:x + 8] = 255  # a hollow letter, 88 px
    p[110:113, 420:423] = 0  # the period
    p[200:203, 700:703] = 0  # a highlight's outline, far from everything
    for y in range(100, 220, 6):  # light tone: 2 x 2 dots on a 6-px pitch
        for x in range(1000, 1120, 6):
            p[y:y + 2, x:x + 2] = 0
    sep = separate(p)
    text = p[:, :800] < 128
    assert not sep.tone[:, :800].any() and sep.line[:, :800][text].all()
    assert sep.tone[110:210, 1010:1110].all()
    out = compose_page(np.full((300, 1500, 3), BLUE, np.uint8), p, sep)
    assert (out[:, :800][text] == 0).all()  # the lettering keeps its ink under a colored layer


def test_compose_keeps_strokes_shades_fills_and_descreens_tone():
    p = drawn_page()
    sep = separate(p)
    layer = np.full((*p.shape, 3), BLUE, np.uint8)
    out = compose_page(layer, p, sep)
    assert np.array_equal(out[:, 100:102], ink_multiply(layer, p)[:, 100:102])  # strokes pixel-exact
    fill_lab = rgb2lab(out[25:45, 25:55])
    assert np.allclose(fill_lab[..., 0], FILL_LIGHTNESS, atol=1) and np.hypot(fill_lab[..., 1], fill_lab[..., 2]).min() > 20
    toned = out[100:120, 30:70].astype(float)
    assert toned.std(axis=(0, 1)).max() < 3  # no dots left
    assert np.allclose(toned.mean(axis=(0, 1)), np.array(BLUE) * sep.shading[100:120, 30:70].mean(), atol=3)
    kept = compose_page(layer, p, sep, tone="keep")
    assert np.array_equal(kept[80:140], ink_multiply(layer, p)[80:140])  # the dots as drawn
    grey = compose_page(np.full_like(layer, 200), p, sep)  # a layer with no color: the page as drawn
    assert (grey[25:45, 25:55] == 0).all()  # the fill stays black
    assert np.array_equal(grey[80:140], ink_multiply(np.full_like(layer, 200), p)[80:140])  # the dots stay
    with pytest.raises(ValueError, match="tone 'halftone': allowed values are descreen, keep"):
        compose_page(layer, p, sep, tone="halftone")


def test_composite_factor_is_what_compose_multiplies_a_colored_layer_by():
    """The colorizer's training composes its output with composite_factor: for a clearly
    colored layer it must be compose_page's own multiplication, strokes, paper and tone
    alike, and 1 on the fills (which take a shade of the color instead)."""
    p = drawn_page()
    p[140:150, 120:180] = 180  # a grey wash on the paper: multiplied as it is
    sep = separate(p)
    layer = np.full((*p.shape, 3), BLUE, np.uint8)
    factor = composite_factor(p, sep)
    out = compose_page(layer, p, sep).astype(float)
    predicted = layer * factor[..., None]
    assert np.abs(out - predicted)[~sep.fill].max() <= 1.0
    assert (factor[sep.fill] == 1).all() and factor[:, 100:102].max() == 0 and factor[5, 5] == 1
    assert np.allclose(factor[140:150, 120:180], 180 / 255) and 0.6 < factor[100:120, 30:70].mean() < 0.9
    assert np.array_equal(factor, composite_factor(p))  # separates the page itself when not given


def test_dark_shade_keeps_hue_at_fill_lightness():
    shade = dark_shade(np.array([[200, 40, 40], [40, 80, 200]], np.uint8))
    lab_in, lab_out = rgb2lab(np.array([[200, 40, 40], [40, 80, 200]], np.uint8)[None]), rgb2lab(shade[None])
    assert np.allclose(lab_out[..., 0], FILL_LIGHTNESS, atol=0.6)
    hue_in = np.arctan2(lab_in[..., 2], lab_in[..., 1])
    hue_out = np.arctan2(lab_out[..., 2], lab_out[..., 1])
    assert np.abs(hue_in - hue_out).max() < 0.25


def test_a_dense_tone_whose_dots_touch_is_tone_and_its_outline_a_stroke():
    """A dark tone drawn as a mesh (2-px dots on a 3-px pitch, touching diagonally: one ink
    component) inside a 4-px outline: the mesh is tone, descreened; the outline a stroke."""
    p = np.full((120, 120), 255, np.uint8)
    for y in range(20, 100, 3):
        for x in range(20 + (y // 3) % 2, 100, 3):
            p[y:y + 2, x:x + 2] = 0
    p[16:20, 16:104] = p[100:104, 16:104] = p[16:104, 16:20] = p[16:104, 100:104] = 0  # the outline
    sep = separate(p)
    assert sep.tone[40:80, 40:80].all() and not sep.line[40:80, 40:80].any()
    assert sep.line[17, 30:90].all() and sep.line[30:90, 17].all()
    layer = np.full((*p.shape, 3), BLUE, np.uint8)
    out = compose_page(layer, p, sep)[40:80, 40:80].astype(float)
    assert out.std(axis=(0, 1)).max() < 4  # the mesh averaged into shading


def _figure_over_tone(outline: int) -> np.ndarray:
    """160 x 160: a 50 % dot tone (2 x 2 dots, pitch 4) over the page, and on it a white
    figure (a 60 x 80 box of paper) drawn with a 1-px outline of grey `outline`, lighter
    (170, paper at the ink threshold) every third pixel: at the ink threshold it comes
    apart into pieces as small as the dots (2 px; at this page size specks up to 4 px may be
    dots), as a thin pencil line on a real page does."""
    p = np.full((160, 160), 255, np.uint8)
    for y in range(0, 160, 4):
        for x in range(0, 160, 4):
            p[y:y + 2, x:x + 2] = 30
    p[40:120, 50:110] = 255  # the figure's inside: paper
    yy, xx = np.mgrid[:160, :160]
    across = ((yy == 39) | (yy == 120)) & (xx >= 49) & (xx <= 110)
    down = ((xx == 49) | (xx == 110)) & (yy >= 39) & (yy <= 120)
    gaps = (across & (xx % 3 == 0)) | (down & (yy % 3 == 0))  # every third pixel along it
    p[across | down] = outline
    p[gaps] = 170
    return p


def test_a_thin_outline_drawn_over_tone_is_line_kept_as_drawn_and_the_tone_around_descreened():
    """A figure's thin outline on a toned background (docs/colorist.md): its pieces are no
    bigger than the tone's dots, but it is a ridge and the dots are blobs, so it is line,
    multiplied pixel-exact over a colored layer, while the tone beside it is descreened
    into flat shading with no line found in it."""
    p = _figure_over_tone(outline=60)
    sep = separate(p)
    drawn = (p == 60)
    # half the drawn pixels (0.51): where its lighter pixels fall beside a row of dots the
    # ridge breaks into runs under RIDGE_MIN_PX; none of it without the ridges (below)
    assert sep.line[drawn].mean() > 0.4
    assert not sep.line[4:30, 4:156].any() and sep.tone[4:30, 4:156].all()  # the tone: no line in it
    out = compose_page(np.full((*p.shape, 3), BLUE, np.uint8), p, sep).astype(int)
    blue_times_ink = np.rint(np.array(BLUE) * 60 / 255)
    kept = np.abs(out[drawn & sep.line] - blue_times_ink).max(axis=1) <= 1
    assert kept.mean() > 0.99  # as drawn over the color
    assert out[8:28, 8:152].std(axis=(0, 1)).max() < 4  # the tone: flat shading


def test_without_the_ridges_a_broken_outline_over_tone_would_be_taken_for_dots(monkeypatch):
    """What the ridge test adds: without it the same outline's pieces are tone dots,
    descreened into the shading (the ghost figures of docs/colorist.md)."""
    import pipeline.colorist.ink as ink

    p = _figure_over_tone(outline=60)
    monkeypatch.setattr(ink, "_ridges", lambda scan, where: np.zeros(scan.shape, bool))
    assert separate(p).line[p == 60].mean() < 0.05


def test_strokes_found_over_tone_are_kept_as_drawn_but_are_no_walls_for_hints():
    """A ridge over tone may be hatching as well as an outline: kept as drawn in the
    composite, but a hint's area is bounded as before it was found (a hatched floor is one
    area, not a strip between two hatches)."""
    from pipeline.colorist.regions import walls

    p = _figure_over_tone(outline=60)
    sep = separate(p)
    assert sep.ridge is not None and sep.ridge.any() and not (sep.ridge & ~sep.line).any()
    wall = walls(p, sep)
    assert not (wall & sep.ridge).any()
    assert (wall & sep.line & ~sep.ridge).sum() == (sep.line & ~sep.ridge).sum()  # every other stroke is a wall


def test_the_ridge_scales_give_frangis_vesselness_at_sigma_1_and_1_5_bit_for_bit():
    """σ = 1 is passed one float step above 1 so that scikit-image filters it with its 8-σ
    kernel (13 taps) instead of its 100-σ one (143): the vesselness must be the very same."""
    from skimage.filters import frangi

    from pipeline.colorist.ink import RIDGE_GAMMA, RIDGE_SIGMAS

    assert RIDGE_SIGMAS[0] > 1.0 and RIDGE_SIGMAS[0] - 1.0 < 1e-12 and RIDGE_SIGMAS[1] == 1.5
    for page in (_figure_over_tone(outline=60), drawn_page()):
        scan = page.astype(np.float32) / 255
        fast = frangi(scan, sigmas=RIDGE_SIGMAS, black_ridges=True, gamma=RIDGE_GAMMA)
        plain = frangi(scan, sigmas=(1.0, 1.5), black_ridges=True, gamma=RIDGE_GAMMA)
        assert fast.max() > 0.5  # ridges were found: the comparison is not of two empty maps
        np.testing.assert_array_equal(fast, plain)


def test_a_pages_separation_is_remembered_read_only_and_forgotten_after_a_few_pages():
    """`separation` serves the regions, the composite and the layers of one page from one
    `separate`: the same result for the same pixels, read-only, recomputed once other
    pages have pushed it out."""
    import pipeline.colorist.ink as ink

    page = drawn_page()
    first = ink.separation(page)
    assert ink.separation(page.copy()) is first  # by the pixels, not the array object
    assert np.array_equal(first.line, separate(page).line) and np.array_equal(first.shading, separate(page).shading)
    with pytest.raises(ValueError):
        first.line[0, 0] = True
    other = page.copy()
    other[0, 0] = 0
    assert ink.separation(other) is not first  # one pixel differs: another page
    for k in range(ink.CACHED_PAGES):
        blank = np.full((20, 20 + k), 255, np.uint8)
        ink.separation(blank)
    assert ink.separation(page) is not first  # pushed out, computed again
