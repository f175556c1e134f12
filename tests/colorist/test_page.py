"""Full-resolution inference: tiling with blended overlaps, the ink composite, line fidelity."""

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.colorist.ink import compose_page, ink_multiply, separate
from pipeline.colorist.page import colorize_image, scan_image
from pipeline.colorist.tiling import run_tiled
from pipeline.evaluation.metrics import line_fidelity
from pipeline.imaging import shrink_to_fit as working_size
from pipeline.models.colorizer import AttentionUNet, UNetConfig


def blur(x: torch.Tensor) -> torch.Tensor:
    """A local operator: 5x5 box blur (what a tile must reproduce away from its borders)."""
    return torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)


def test_tiled_equals_whole_for_a_local_operator():
    x = torch.rand(1, 2, 300, 470)
    whole = blur(x)
    tiled = run_tiled(blur, x, 2, tile=128, overlap=32, whole_limit=0)
    assert tiled.shape == whole.shape
    # tile borders see zero padding, but carry little weight on the ramps: no seam shows
    assert (tiled - whole).abs().max() < 0.05
    assert (tiled - whole).abs().mean() < 2e-3
    assert torch.equal(run_tiled(blur, x, 2, whole_limit=300 * 470), whole)  # small pages run whole


def test_tiles_cover_every_pixel_once_blended_to_one():
    x = torch.ones(1, 1, 257, 129)
    assert torch.allclose(run_tiled(lambda t: t, x, 1, tile=64, overlap=16, whole_limit=0), x)


def test_working_size_never_enlarges():
    assert working_size(1024, 1448, None) == (1024, 1448)
    assert working_size(1024, 1448, 2000) == (1024, 1448)
    assert working_size(2048, 2896, 1448) == (1024, 1448)


def test_ink_multiply_keeps_every_line_at_least_as_dark():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (2, 20, 30, 3), dtype=np.uint8)
    ink = rng.integers(0, 256, (2, 20, 30, 1), dtype=np.uint8)
    out = ink_multiply(color, ink)
    assert (out <= ink).all() and (out <= color).all()
    assert (ink_multiply(color, np.full_like(ink, 255)) == color).all()  # white paper leaves colors alone
    assert (ink_multiply(color, np.zeros_like(ink)) == 0).all()  # solid ink stays black
    assert (line_fidelity(ink, out) == 1.0).all()
    assert line_fidelity(ink, np.full_like(color, 255)).max() < 1.0 or (ink >= 90).all()


@pytest.fixture(scope="module")
def colorizer():
    torch.manual_seed(0)
    g = AttentionUNet(UNetConfig(in_channels=1, out_channels=3, width=4, mults=(1, 2), n_attention=1, groups=2))
    torch.nn.init.normal_(g.head.weight, std=0.03)  # not the identity at init: colors that depend on context
    return g.eval()


def page(w=300, h=420) -> Image.Image:
    a = np.full((h, w), 255, np.uint8)
    a[:, ::37] = 0  # 1-px ink lines
    a[60:90, 40:200] = 30  # a solid black area
    return Image.fromarray(a).convert("RGB")


def test_colorize_runs_at_the_pages_resolution_and_keeps_its_ink(colorizer):
    img = page()
    out = colorize_image(colorizer, None, img, None, torch.device("cpu"), "scan")
    assert out.size == img.size and out.mode == "RGB"
    scan = np.asarray(img.convert("L"))[None, ..., None]
    o = np.asarray(out)
    sep = separate(scan[0, ..., 0])
    assert sep.fill[70, 100] and not sep.fill[:, 37].any() and sep.line[:, 37].all()
    assert (o[~sep.fill] <= scan[0][~sep.fill]).all()  # multiply: no pixel lighter than the page's ink
    assert line_fidelity(scan, o[None], sep.line[None])[0] == 1.0  # the strokes, pixel-exact
    raw = colorize_image(colorizer, None, img, None, torch.device("cpu"), "scan", ink="none")
    assert np.array_equal(compose_page(np.asarray(raw), scan[0, ..., 0]), o)
    # the black area takes its color's dark shade where the layer has one, else stays as drawn
    from skimage.color import rgb2lab

    layer_lab, out_lab = rgb2lab(np.asarray(raw)[sep.fill]), rgb2lab(o[sep.fill])
    colored = np.hypot(layer_lab[:, 1], layer_lab[:, 2]) >= 6
    assert colored.any() and np.abs(out_lab[colored, 0] - 28).max() < 1.5
    assert np.array_equal(o[sep.fill][~colored], ink_multiply(np.asarray(raw), scan[0])[sep.fill][~colored])
    with pytest.raises(ValueError, match="ink 'screen'"):
        colorize_image(colorizer, None, img, None, torch.device("cpu"), "scan", ink="screen")


def test_large_pages_are_tiled_without_seams(colorizer, monkeypatch):
    """The same page through tiles and whole: equal but for small differences spread out,
    not a step along a tile border."""
    import pipeline.colorist.tiling as inf

    img = page(260, 300)
    whole = np.asarray(colorize_image(colorizer, None, img, None, torch.device("cpu"), "scan", ink="none"),
                       np.float32)
    monkeypatch.setattr(inf, "WHOLE_LIMIT", 0)
    monkeypatch.setattr(inf, "TILE", 160)
    monkeypatch.setattr(inf, "TILE_OVERLAP", 48)
    tiled = np.asarray(colorize_image(colorizer, None, img, None, torch.device("cpu"), "scan", ink="none"),
                       np.float32)
    diff = np.abs(tiled - whole)
    assert diff.max() > 0, "the page did not go through tiles"
    assert diff.mean() < 6
    # no seam: the difference across the tile border (x = 112..160) is no larger than inside a tile
    assert diff[:, 112:160].mean() < 3 * diff[:, :60].mean() + 2


def test_scan_image_runs_at_full_resolution():
    from pipeline.config import CycleGANConfig
    from pipeline.training.cyclegan_step import build_cyclegan

    torch.manual_seed(0)
    g = build_cyclegan(CycleGANConfig(generator_width=4, n_down=1, n_res=1, groups=2))[0].eval()
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (130, 90, 3), dtype=np.uint8))
    out = scan_image(g, img, None, torch.device("cpu"))
    assert out.size == (90, 130) and out.mode == "L"
    small = scan_image(g, img, 65, torch.device("cpu"))  # shrunk to 65 on the long side and back
    assert small.size == (90, 130)


def test_bf16_inference_stays_within_two_grey_levels_of_fp32(colorizer):
    from pipeline.runtime import resolve_precision

    img = page(200, 240)
    cpu = torch.device("cpu")
    fp32 = np.asarray(colorize_image(colorizer, None, img, None, cpu, "scan", ink="none", precision="fp32"),
                      np.float32)
    bf16 = np.asarray(colorize_image(colorizer, None, img, None, cpu, "scan", ink="none", precision="bf16"),
                      np.float32)
    assert np.abs(fp32 - bf16).mean() < 1.0 and np.abs(fp32 - bf16).max() <= 8
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", cpu) in ("fp32", "bf16")
    with pytest.raises(ValueError, match="precision 'fp16': allowed values are auto, fp32, bf16"):
        colorize_image(colorizer, None, img, None, cpu, "scan", precision="fp16")
