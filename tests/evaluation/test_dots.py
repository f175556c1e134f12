"""The colorist's-dots protocol on a drawn-here page: where the dots go, and what the measures
say of a perfect, a flooded and an ignored colorization."""

import numpy as np

from pipeline.evaluation.dots import as_points, colorist_dots, hint_measures, like_color_areas

RED, BLUE, WHITE = (200, 40, 40), (40, 60, 190), (255, 255, 255)


def pair():
    """A 60x90 page: a vertical ink line at x = 30; left of it a red square on white paper,
    right of it a blue area; a tiny (under 64 px) green speck."""
    line_art = np.full((60, 90), 255, np.uint8)
    line_art[:, 30] = 0
    coloring = np.full((60, 90, 3), 255, np.uint8)
    coloring[10:40, 5:25] = RED  # 20 x 30: the red square
    coloring[:, 31:] = BLUE
    coloring[50:55, 5:10] = (0, 200, 0)  # 25 px: too small for a dot
    coloring[:, 30] = 0
    return line_art, coloring


def test_dots_go_in_the_largest_colored_areas_at_their_most_interior_pixel():
    line_art, coloring = pair()
    dots = colorist_dots(line_art, coloring, 5)
    assert [d.color for d in dots] == [BLUE, RED]  # paper and the speck get none; largest first
    blue, red = dots
    assert 40 <= blue.x <= 80 and 20 <= blue.y <= 40  # the middle of the 59x60 blue area
    assert red.x in (14, 15) and 19 <= red.y <= 30  # 10 px from every edge of the 20 x 30 square
    assert colorist_dots(line_art, coloring, 1) == [blue] and colorist_dots(line_art, coloring, 0) == []
    assert as_points([red]) == [{"x": red.x, "y": red.y, "color": "#c82828"}]
    areas, n = like_color_areas(line_art, coloring)
    assert areas[red.y, red.x] != areas[blue.y, blue.x] and areas[0, 30] == 0 and n >= 4


def test_measures_tell_a_perfect_a_flooded_and_an_ignored_colorization_apart():
    line_art, coloring = pair()
    dots = colorist_dots(line_art, coloring, 5)
    areas, _ = like_color_areas(line_art, coloring)
    perfect = hint_measures(coloring, coloring, line_art, dots, areas)
    assert perfect["delta_e"] == 0 and perfect["gross_errors"] == 0 and perfect["tinted_paper"] == 0
    assert perfect["obedience_delta_e"] < 1e-6

    flooded = coloring.copy()
    flooded[:, :30][(coloring[:, :30] == WHITE).all(-1)] = RED  # the red dot floods the white paper
    m = hint_measures(flooded, coloring, line_art, dots, areas)
    white = (coloring == WHITE).all(-1)
    assert m["tinted_paper"] == white[:, :30].sum() / white.sum() == 1.0
    assert m["gross_errors"] > 0.2 and m["obedience_delta_e"] < 1e-6

    ignored = np.repeat(line_art[..., None], 3, -1)  # the page as drawn: no color at all
    m = hint_measures(ignored, coloring, line_art, dots, areas)
    assert m["tinted_paper"] == 0 and m["obedience_delta_e"] > 40 and m["delta_e"] > 20
