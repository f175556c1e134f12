"""The layered file `--layers` writes: read back with psd-tools, layer names, order, blend
modes, visibility, and a composite equal to the PNG."""

import numpy as np
import pytest
from PIL import Image

from pipeline.colorist.ink import compose_page
from pipeline.colorist.psd import LAYER_NAMES, flats, write_psd

psd_tools = pytest.importorskip("psd_tools", reason="psd-tools is a project dependency; install with `make setup`")


def page(h=48, w=64):
    rng = np.random.default_rng(0)
    ink = np.full((h, w), 255, np.uint8)
    ink[:, 30:32] = 0
    ink[10:12, :] = 90
    ink[41::3, 41::3] = 40  # screentone: a regular dot screen
    ink[44, 44] = ink[45, 45] = 200  # two dots of lighter ink
    colors = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    return colors, ink


def drawn_page(h=96, w=120):
    """A stroke, a black fill and a dot tone, over a random color layer."""
    rng = np.random.default_rng(0)
    ink = np.full((h, w), 255, np.uint8)
    ink[:, 60:62] = 0
    ink[10:12, :] = 90
    ink[20:40, 5:40] = 0  # a black fill
    for y in range(55, 90, 4):
        for x in range(70, 115, 4):
            ink[y:y + 2, x:x + 2] = 30  # screentone
    colors = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    return colors, ink


@pytest.mark.parametrize("tone", ["descreen", "keep"])
def test_psd_layers_read_back_in_a_colorists_order(tmp_path, tone):
    from psd_tools import PSDImage
    from psd_tools.constants import BlendMode

    colors, ink = drawn_page()
    write_psd(tmp_path / "p.psd", Image.fromarray(colors), Image.fromarray(ink), tone=tone)
    psd = PSDImage.open(tmp_path / "p.psd")
    assert psd.size == (120, 96)
    layers = list(psd)[::-1]  # psd-tools lists bottom first; the file's top layer first here
    assert tuple(layer.name for layer in layers) == LAYER_NAMES
    ink_layer, fill_layer, tone_layer, color_layer, flat_layer = layers
    assert ink_layer.blend_mode == tone_layer.blend_mode == BlendMode.MULTIPLY
    assert color_layer.blend_mode == fill_layer.blend_mode == BlendMode.NORMAL
    assert all(layer.visible for layer in layers[:4]) and not flat_layer.visible

    def alpha(layer):
        return np.asarray(layer.composite(viewport=psd.viewbox).convert("RGBA"))[..., 3]

    assert (alpha(ink_layer)[:, 60:62] == 255).all() and (alpha(ink_layer)[ink == 255] == 0).all()
    assert (alpha(fill_layer)[22:38, 7:38] == 255).all() and (alpha(fill_layer)[ink == 255] == 0).all()
    toned = alpha(tone_layer)[60:85, 75:110]
    assert (toned == 255).mean() > 0.9 if tone == "descreen" else (toned == 0).all()
    composite = np.asarray(psd.composite(force=True).convert("RGB")).astype(int)
    png = compose_page(colors, ink, tone=tone).astype(int)
    assert np.abs(composite - png).max() <= 2  # psd-tools rounds down, the PNG to nearest
    assert np.abs(composite - png).mean() < 0.6


def test_without_ink_the_composite_is_the_color_layer(tmp_path):
    from psd_tools import PSDImage

    colors, ink = drawn_page()
    write_psd(tmp_path / "p.psd", Image.fromarray(colors), Image.fromarray(ink), ink_visible=False)
    psd = PSDImage.open(tmp_path / "p.psd")
    assert [layer.visible for layer in list(psd)[::-1]] == [False, False, False, True, False]
    assert np.array_equal(np.asarray(psd.composite(force=True).convert("RGB")), colors)


def test_flats_are_one_color_per_closed_region():
    colors, ink = page()
    flat = flats(colors, ink)
    left, right = flat[14:40, :30].reshape(-1, 3), flat[14:40, 32:40].reshape(-1, 3)
    assert len(np.unique(left, axis=0)) == 1 and len(np.unique(right, axis=0)) == 1
    from pipeline.colorist.regions import regions

    lines = regions(ink)[0] == 0
    assert lines[:, 30:32].all() and not lines[45, 45]  # outlines are lines, screentone dots are not
    assert np.array_equal(flat[lines], colors[lines])  # line pixels keep the color layer
    assert len(np.unique(flat[41:, 41:].reshape(-1, 3), axis=0)) == 1  # the toned corner is one flat
