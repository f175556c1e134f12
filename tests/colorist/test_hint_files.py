"""Hint files (`onepunch colorize PAGE --hints FILE`): parsing, refusals, and a page
colorized with them (the hint fills its region and stops at the ink)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.colorist.hint_files import (
    HintFileError,
    hints_from_points,
    parse_color,
    read_hints,
    resize_hints,
)
from pipeline.colorist.page import colorize_image
from pipeline.models.colorizer import HINT_CHANNELS, AttentionUNet, UNetConfig


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_json_points_become_dots_with_their_colors(tmp_path):
    f = write_json(tmp_path / "h.json", [{"x": 10, "y": 5, "color": "#ff0000"}, {"x": 30.7, "y": 19, "color": "#0f0"}])
    ids, colors = read_hints(f, (40, 20))
    assert ids.shape == (20, 40)
    assert ids[5, 10] == 0 and ids[19, 30] == 1
    assert colors.tolist() == [[255, 0, 0], [0, 255, 0]]
    assert (ids == 0).sum() == 13  # a radius-2 dot


@pytest.mark.parametrize("data, message", [
    ({"x": 1}, "expected a list"),
    ([{"x": 1, "y": 2}], "point 0"),
    ([{"x": 50, "y": 2, "color": "#ffffff"}], "outside the 40x20 page"),
    ([{"x": -1, "y": 2, "color": "#ffffff"}], "outside"),
    ([{"x": 1, "y": 2, "color": "red"}], "is not '#rrggbb'"),
    ([{"x": 1, "y": 2, "color": "#12345g"}], "is not '#rrggbb'"),
    ([{"x": "1", "y": 2, "color": "#123456"}], "must be numbers"),
    ([{"x": True, "y": 2, "color": "#123456"}], "must be numbers"),
])
def test_bad_json_is_refused_naming_the_file_and_the_problem(tmp_path, data, message):
    f = write_json(tmp_path / "bad.json", data)
    with pytest.raises(HintFileError, match=message) as exc:
        read_hints(f, (40, 20))
    assert "bad.json" in str(exc.value)


POINT_FORM = '{"x": 120, "y": 340, "color": "#d04040"}'
HOSTILE_JSON = [
    # (case, file text, what is wrong, the valid form): each once gave a traceback, or a
    # message without the file's name, or a message holding the whole value
    ("400-digit-int", '[{"x": 1%s, "y": 2, "color": "#123456"}]' % ("0" * 400), "401 digits", POINT_FORM),
    ("5000-digit-int", '[{"x": 1, "y": 1%s, "color": "#123456"}]' % ("0" * 5000), "5001 digits", POINT_FORM),
    ("huge-float", '[{"x": 1e400, "y": 2, "color": "#123456"}]', "x=inf", "must be numbers (finite"),
    ("nan", '[{"x": NaN, "y": 2, "color": "#123456"}]', "x=nan", "must be numbers (finite"),
    ("color-newline", '[{"x": 1, "y": 2, "color": "#fff\\n"}]', r"'#fff\n'", "is not '#rrggbb' (or '#rgb')"),
    ("color-long-newline", '[{"x": 1, "y": 2, "color": "#123456\\n"}]', r"'#123456\n'", "is not '#rrggbb'"),
    ("nested-100000", "[" * 100_000 + "]" * 100_000, "nested too deeply", POINT_FORM),
    ("long-string-point", '["%s"]' % ("x" * 100_000), "point 0", POINT_FORM),
]


@pytest.mark.parametrize("case, text, wrong, form", HOSTILE_JSON, ids=[c[0] for c in HOSTILE_JSON])
def test_hostile_json_is_a_short_value_error_naming_the_file(tmp_path, case, text, wrong, form):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(HintFileError) as exc:
        read_hints(f, (40, 20))
    message = str(exc.value)
    assert message.startswith(f"hint file {f}")
    assert wrong in message and form in message, message
    assert len(message) < 300 + len(str(f))


def test_oversized_json_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from pipeline.colorist import hint_files

    monkeypatch.setattr(hint_files, "MAX_JSON_BYTES", 1000)
    f = write_json(tmp_path / "big.json", [{"x": 1, "y": 2, "color": "#123456"}] * 100)
    with pytest.raises(HintFileError, match="at most 1000") as exc:
        read_hints(f, (40, 20))
    assert str(f) in str(exc.value)


def test_huge_integers_from_an_upload_are_outside_the_page():
    """The web UI parses the JSON itself: a 400-digit integer reaches `hints_from_points`."""
    with pytest.raises(HintFileError, match="outside the 40x20 page") as exc:
        hints_from_points([{"x": 10 ** 400, "y": 2, "color": "#123456"}], (40, 20), "the hints")
    assert "digits" in str(exc.value) and len(str(exc.value)) < 200


def test_not_json_and_missing_files_are_refused(tmp_path):
    (tmp_path / "h.json").write_text("{oops")
    with pytest.raises(HintFileError, match="not JSON"):
        read_hints(tmp_path / "h.json", (4, 4))
    with pytest.raises(HintFileError, match="no such file"):
        read_hints(tmp_path / "none.png", (4, 4))
    (tmp_path / "h.png").write_bytes(b"not a png")
    with pytest.raises(HintFileError, match="not a readable image"):
        read_hints(tmp_path / "h.png", (4, 4))


def test_png_strokes_become_hints_in_their_mean_color(tmp_path):
    layer = np.zeros((20, 40, 4), np.uint8)
    layer[2:4, 2:10] = (200, 10, 10, 255)  # a red stroke
    layer[15, 30:33] = (10, 10, 200, 255)  # a blue dot
    layer[10, 20] = (0, 255, 0, 40)  # too faint to count
    Image.fromarray(layer, "RGBA").save(tmp_path / "h.png")
    ids, colors = read_hints(tmp_path / "h.png", (40, 20))
    assert len(colors) == 2
    assert sorted(map(tuple, colors.tolist())) == [(10, 10, 200), (200, 10, 10)]
    assert ids[10, 20] == -1
    assert (ids >= 0).sum() == 16 + 3


def test_png_that_does_not_fit_the_page_is_refused(tmp_path):
    Image.new("RGBA", (30, 20)).save(tmp_path / "small.png")
    with pytest.raises(HintFileError, match="30x20 but the page is 40x20"):
        read_hints(tmp_path / "small.png", (40, 20))
    Image.new("RGB", (40, 20), "red").save(tmp_path / "opaque.png")
    with pytest.raises(HintFileError, match="no transparency"):
        read_hints(tmp_path / "opaque.png", (40, 20))
    Image.new("RGBA", (40, 20)).save(tmp_path / "empty.png")
    with pytest.raises(HintFileError, match="fully transparent"):
        read_hints(tmp_path / "empty.png", (40, 20))


def test_parse_color_short_and_long():
    assert parse_color("#abc", "x") == (0xAA, 0xBB, 0xCC)
    assert parse_color("#A0b1C2", "x") == (0xA0, 0xB1, 0xC2)
    for bad in ("#fff\n", "#abcdef\n", " #abc", "#abcd", "abc", "#ａｂｃ"):
        with pytest.raises(HintFileError, match="x: color"):
            parse_color(bad, "x")


def test_resizing_hints_never_loses_a_dot():
    ids = np.full((100, 100), -1, np.int32)
    ids[50, 50] = 0  # a single pixel: nearest-neighbour sampling would miss it at 1/4
    ids[10:20, 10:20] = 1
    small = resize_hints(ids, (25, 25))
    assert small.shape == (25, 25)
    assert {0, 1} <= set(np.unique(small).tolist())


def test_a_page_colorized_with_a_hint_fills_that_region_only(tmp_path):
    torch.manual_seed(0)
    # untrained hint colorizer: its output is the hint colors where they spread, grey elsewhere
    g = AttentionUNet(UNetConfig(in_channels=1 + HINT_CHANNELS, out_channels=3, width=4, mults=(1, 2),
                                 n_attention=1, groups=2)).eval()
    page = np.full((64, 96), 255, np.uint8)
    page[:, 47:50] = 0  # two rooms split by a line
    f = write_json(tmp_path / "h.json", [{"x": 20, "y": 30, "color": "#c83232"}])
    hints = read_hints(f, (96, 64))
    out = np.asarray(colorize_image(g, None, Image.fromarray(page).convert("RGB"), None, torch.device("cpu"),
                                    "scan", hints=hints)).astype(int)
    assert np.abs(out[:, :46] - [200, 50, 50]).max() <= 1  # the whole left room, to the line
    assert np.abs(out[:, 51:] - 255).max() <= 1  # the right room stays white paper
    assert (out[:, 47:50] == 0).all()  # the ink, exact
