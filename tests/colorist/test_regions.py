"""Regions on drawn-here line art: closed outlines hold, a gap in an outline stops a hint at its
narrowest point, a wide passage does not, screentone is inside a region, and a black fill is
a region of its own."""

import numpy as np
import pytest

from pipeline.colorist.hints import SPREAD_MARK, encode_hints
from pipeline.colorist.ink import separate
from pipeline.colorist.regions import basins, regions, under_walls, walls


def same(labels, a, b) -> bool:
    return labels[a] == labels[b] != 0


def page(h=120, w=160):
    return np.full((h, w), 255, np.uint8)


def test_a_closed_outline_holds_and_a_line_is_never_crossed():
    p = page()
    p[:, 80:82] = 0
    labels, n = regions(p)
    assert n == 2 and not same(labels, (60, 40), (60, 120)) and (labels[:, 80:82] == 0).all()


def test_a_gap_in_an_outline_stops_the_region_at_its_narrowest_point():
    """A 40 x 40 box (a strand of hair) whose right side has a 6-px gap onto the page: the
    box and the page are two regions; the cut is at the gap."""
    p = page()
    p[40:82, 40:42] = 0  # left
    p[40:42, 40:82] = 0  # top
    p[80:82, 40:82] = 0  # bottom
    p[40:57, 80:82] = 0  # right, open between y = 57 and 63
    p[63:82, 80:82] = 0
    labels, _ = regions(p)
    assert not same(labels, (60, 60), (60, 120)) and not same(labels, (60, 60), (10, 10))
    assert same(labels, (10, 10), (60, 120))  # outside is one region, around the box
    inside = labels == labels[60, 60]
    assert not inside[:, 84:].any()  # nothing of the box's region past the gap


def test_a_wide_passage_is_one_region():
    """Two 40 x 40 rooms joined by a 30-px-wide corridor (a sleeve narrowing at the wrist)."""
    shape = np.zeros((60, 150), bool)
    shape[10:50, 10:50] = shape[10:50, 100:140] = shape[15:45, 50:100] = True
    labels, n = basins(~shape)
    assert n == 1 and same(labels, (30, 30), (30, 120))
    shape[15:45, 50:100] = False
    shape[27:33, 50:100] = True  # the corridor only 6 px wide: a gap, two rooms
    labels, n = basins(~shape)
    assert n == 2 and not same(labels, (30, 30), (30, 120))


def test_a_passage_wider_than_any_gap_is_open_paper():
    """Two skies 200 px deep joined above a head by a 40-px opening: one sky, though the
    opening is narrow for their depth; 20 px is still a gap."""
    for opening, regions_expected in ((40, 1), (20, 2)):
        shape = np.zeros((220, 500), bool)
        shape[10:210, 10:210] = shape[10:210, 290:490] = True
        shape[100:100 + opening, 210:290] = True
        assert basins(~shape)[1] == regions_expected, opening


def test_screentone_is_inside_a_region_and_a_fill_is_its_own():
    p = page()
    p[:, 80:82] = 0
    p[2:60:4, 2:78:4] = 0  # a dot tone over the upper left (1-px dots, pitch 4)
    p[2:60:4, 3:78:4] = 0
    p[80:110, 100:140] = 0  # a solid black fill on the right
    sep = separate(p)
    assert sep.tone[30, 40] and not sep.tone[100, 40] and sep.fill[95, 120] and not sep.line[30, 40]
    labels, _ = regions(p, sep)
    assert same(labels, (30, 41), (100, 40))  # the tone does not split the left region
    assert not same(labels, (95, 120), (40, 120))  # the fill is a region of its own
    ids = np.full(p.shape, -1)
    ids[94:97, 119:122] = 0  # a dot on the fill
    enc = encode_hints(p, ids, np.array([[200, 40, 40]], np.uint8), labels)
    spread = enc[..., 3] >= SPREAD_MARK
    assert spread[85, 105] and spread[105, 135] and not spread[40, 120] and not spread[100, 40]


def test_a_fill_is_walled_off_from_light_tone_but_one_with_tone_it_fades_into():
    # a night sky (solid black) above toned hair drawn against it with no outline: a hint
    # on the hair must not flood the sky; a sky darkening through dense tone is one area
    def sky_over(dark: bool) -> np.ndarray:
        p = page()
        p[:50] = 0
        if dark:  # dense tone: ink with a paper hole every 2 px (shading 0.25)
            p[50:] = 0
            p[50::2, ::2] = 255
        else:  # light tone: 2-px dots at pitch 4 (shading 0.88)
            p[52::4, 2::4] = p[53::4, 2::4] = 0
        return p

    for dark in (False, True):
        p = sky_over(dark)
        sep = separate(p)
        assert sep.fill[20, 80] and sep.tone[90, 80] and not sep.fill[90, 80], dark
        labels, _ = regions(p, sep)
        assert same(labels, (20, 80), (90, 80)) == dark, dark


def test_basins_of_nothing_and_under_walls():
    assert basins(np.ones((5, 5), bool)) == (pytest.approx(np.zeros((5, 5))), 0)
    wall = np.zeros((4, 6), bool)
    wall[:, 3] = True
    values = np.zeros((4, 6, 3), np.uint8)
    values[:, :3] = 10
    values[:, 4:] = 200
    under = under_walls(values, wall)
    assert set(np.unique(under[:, 3])) <= {10, 200} and (under[:, :3] == 10).all()
    assert walls(np.full((8, 8), 255, np.uint8)).sum() == 0


def test_inside_edges_stops_a_halo_at_the_line_and_keeps_the_rest():
    """A color spilled 3 px across a line (a halo on the paper beside a figure) is replaced
    by its own area's color from farther in; pixels deeper than the reach, the walls, and an
    area too thin to have a deep pixel keep what they had; no pixel takes another area's."""
    from pipeline.colorist.regions import HALO_REACH, inside_edges

    scan = np.full((60, 80), 255, np.uint8)
    scan[:, 40:42] = 0  # a line: a left and a right area
    scan[:, 70:72] = 0  # a second line: a 2-px strip beyond it (72..73) is too thin to have a deep pixel
    labels, n = regions(scan)
    assert n == 3
    red, blue, green = (200, 40, 40), (40, 80, 200), (40, 160, 60)
    colors = np.zeros((60, 80, 3), np.uint8)
    colors[:, :41] = red
    colors[:, 41:] = blue
    colors[:, 42:45] = red  # the halo: 3 px of red across the line on the blue side
    colors[10, 20] = green  # a detail deep inside the red area
    colors[:, 72:] = green  # the thin strip
    out = inside_edges(colors, labels)
    right = labels == labels[30, 55]
    assert (out[right] == blue).all()  # the halo is gone: blue from the line on
    left = labels == labels[30, 20]
    left[10, 20] = False
    assert (out[left] == red).all()
    assert (out[10, 20] == green).all()  # deeper than the reach: kept
    assert (out[labels == 0] == colors[labels == 0]).all()  # the walls: the ink covers them
    assert (out[:, 72:] == green).all()  # no deep pixel in the strip: kept
    assert HALO_REACH >= 3  # the halo drawn here is within reach
    flat = np.full((20, 20), 255, np.uint8)
    assert np.array_equal(inside_edges(colors[:20, :20], regions(flat)[0]), colors[:20, :20])  # no wall: as is
