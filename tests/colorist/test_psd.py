"""The layered file `--layers` writes: read back with psd-tools, layer names, order, blend
modes, visibility, and a composite equal to the PNG."""

import numpy as np
import pytest
from PIL import Image

from pipeline.colorist.ink import ink_multiply
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


def test_psd_layers_read_back_in_a_colorists_order(tmp_path):
    from psd_tools import PSDImage
    from psd_tools.constants import BlendMode

    colors, ink = page()
    write_psd(tmp_path / "p.psd", Image.fromarray(colors), Image.fromarray(ink))
    psd = PSDImage.open(tmp_path / "p.psd")
    assert psd.size == (64, 48)
    layers = list(psd)[::-1]  # psd-tools lists bottom first; the file's top layer first here
    assert tuple(layer.name for layer in layers) == LAYER_NAMES
    ink_layer, color_layer, flat_layer = layers
    assert ink_layer.blend_mode == BlendMode.MULTIPLY
    assert color_layer.blend_mode == BlendMode.NORMAL
    assert ink_layer.visible and color_layer.visible and not flat_layer.visible
    alpha = np.asarray(ink_layer.composite(viewport=psd.viewbox).convert("RGBA"))[..., 3]
    assert (alpha[ink == 255] == 0).all() and (alpha[ink < 255] == 255).all()  # transparent paper
    composite = np.asarray(psd.composite(force=True).convert("RGB")).astype(int)
    png = ink_multiply(colors, ink).astype(int)
    assert np.abs(composite - png).max() <= 1  # psd-tools rounds down, the PNG to nearest
    assert np.abs(composite - png).mean() < 0.6


def test_without_ink_the_composite_is_the_color_layer(tmp_path):
    from psd_tools import PSDImage

    colors, ink = page()
    write_psd(tmp_path / "p.psd", Image.fromarray(colors), Image.fromarray(ink), ink_visible=False)
    psd = PSDImage.open(tmp_path / "p.psd")
    assert not list(psd)[-1].visible
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
