"""The synthetic art's learnable structure: color priors, recurring characters, manga inking,
and the oracle ceiling the benchmark reports."""

from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.data.synthetic.palettes import (
    HAIR,
    INK_LEVELS,
    ink_level,
    ink_tone,
    lightness,
    make_cast,
    oracle_fill,
    random_look,
)
from pipeline.data.synthetic.scene_images import (
    render_color,
    render_materials,
    render_oracle,
    render_scan,
    xy_points,
)
from pipeline.data.synthetic.scenes import make_scene


def test_lightness_and_ink_levels_follow_the_manga_convention():
    assert lightness((0, 0, 0)) == pytest.approx(0, abs=1e-6)
    assert lightness((255, 255, 255)) == pytest.approx(100, abs=1e-3)
    assert lightness((119, 119, 119)) == pytest.approx(50, abs=0.5)  # sRGB 119 is L* 50
    assert ink_level((20, 20, 30)) == "black"  # black hair, navy blazers
    assert ink_level((60, 110, 200)) == "dense"  # blue hair
    assert ink_level((240, 150, 60)) == "light"  # orange hair
    assert ink_level((255, 228, 212)) == "white"  # skin
    assert [ink_tone(level, "dots") for level in INK_LEVELS] == ["none", "dots", "dots_dense", "black"]
    assert [ink_tone(level, "hatch") for level in INK_LEVELS] == ["none", "hatch", "crosshatch", "black"]


def test_hair_colors_follow_the_danbooru_like_frequencies():
    rng = np.random.default_rng(0)
    counts = Counter(random_look(rng).hair for _ in range(3000))
    total = sum(w for _, w in HAIR.values())
    for name in ("brown", "black", "blonde", "aqua"):
        expected = HAIR[name][1] / total
        assert counts[name] / 3000 == pytest.approx(expected, abs=0.03), name
    assert counts["brown"] > counts["blue"] > counts["aqua"]


def test_a_cast_is_fixed_by_its_seed_and_its_characters_keep_their_colors():
    cast = make_cast(5, 4)
    assert cast == make_cast(5, 4) and cast != make_cast(6, 4)
    assert [c.name for c in cast] == ["character_1", "character_2", "character_3", "character_4"]
    hair_of: dict[str, set] = {}
    for seed in range(40):
        scene = make_scene(np.random.default_rng(seed), 160, 200, cast)
        names = [t for t in scene.tags if t.startswith("character_")]
        if len(names) != 1 or "2girls" in scene.tags:
            continue
        hair = {tuple(np.round(r.color, 3)) for r in scene.regions if r.material == "hair"}
        hair_of.setdefault(names[0], set()).update(hair)
    assert len(hair_of) >= 3  # most pictures show a cast member
    for name, colors in hair_of.items():
        look = cast[int(name.split("_")[1]) - 1]
        assert colors == {tuple(np.round(look.color("hair"), 3))}, name


def _region_mean(scan: Image.Image, region) -> float:
    mask = Image.new("L", scan.size, 0)
    ImageDraw.Draw(mask).polygon(xy_points(region.outline), fill=255)
    m = np.asarray(mask) > 0
    return float(np.asarray(scan, np.float32)[m].mean()) if m.sum() > 50 else float("nan")


def test_the_scan_carries_each_colors_lightness():
    """Dark colors are inked dark, light colors left white: the scan's ink over a region
    falls with the region's lightness, in both domains' scenes."""
    dark, light = [], []
    for seed in range(12):
        scene = make_scene(np.random.default_rng(seed), 256, 256, make_cast(1, 6))
        scan = render_scan(scene)
        for r in scene.regions:
            if r.material in ("hair", "cloth", "object") and r.tone in ("black", "none"):
                (dark if r.tone == "black" else light).append(_region_mean(scan, r))
            assert r.tone in ("none", "dots", "dots_dense", "hatch", "crosshatch", "black")
            level = ink_level(r.color)
            if r.material == "pupil":
                assert r.tone == "black"
            elif r.material in ("hair", "cloth"):  # never darker than its color; at most one level lighter
                inked = {"none": 0, "dots": 1, "hatch": 1, "dots_dense": 2, "crosshatch": 2, "black": 3}[r.tone]
                assert INK_LEVELS.index(level) - 1 <= inked <= INK_LEVELS.index(level)
    dark, light = [v for v in dark if v == v], [v for v in light if v == v]
    assert dark and light
    assert np.mean(dark) < 90 and np.mean(light) > 160  # (regions also hold their outlines, strokes, overlaps)


def test_colors_come_from_the_scene_not_the_renderers_rng():
    scene = make_scene(np.random.default_rng(3), 128, 160, make_cast(2, 4))
    a = np.asarray(render_color(scene, None, np.random.default_rng(1), "white"), np.float32)
    b = np.asarray(render_color(scene, None, np.random.default_rng(2), "white"), np.float32)
    # another colorist's shading and line color, the same base colors: most pixels agree
    assert (np.abs(a - b).max(-1) < 12).mean() > 0.6


def test_the_oracle_is_flat_material_means_with_the_scan_multiplied_over():
    scene = make_scene(np.random.default_rng(4), 128, 128, make_cast(2, 4))
    scan = render_scan(scene)
    oracle = np.asarray(render_oracle(scene, scan), np.int16)
    grey = np.asarray(render_oracle(scene, scan, grey=True), np.int16)
    s = np.asarray(scan, np.int16)
    assert (oracle <= s[..., None]).all() and (grey <= s[..., None]).all()  # the ink comes through
    assert np.abs(grey - grey.mean(-1, keepdims=True)).max() <= 1  # no color in the floor
    assert (oracle.max(-1) - oracle.min(-1)).mean() > 5  # color in the ceiling
    skin, hair_black = oracle_fill("skin", "none"), oracle_fill("hair", "black")
    assert skin[0] > skin[2] + 15 and lightness(skin) > 80  # warm and light
    assert lightness(hair_black) < 30
    with pytest.raises(KeyError):
        oracle_fill("hair", "sparkles")


def test_the_material_map_holds_each_regions_material_where_the_scan_draws_it(tmp_path):
    from pipeline.data.materials import CODE, MATERIALS, group_masks
    from pipeline.imaging import prepare_labels

    scene = make_scene(np.random.default_rng(5), 120, 160, make_cast(2, 4))
    codes = np.asarray(render_materials(scene))
    assert codes.shape == (160, 120) and set(np.unique(codes)) <= set(range(len(MATERIALS)))
    drawn = {CODE[r.material] for r in scene.regions}
    assert set(np.unique(codes)) - {CODE["backdrop"]} <= drawn and CODE["skin"] in set(np.unique(codes))
    # the last region drawn is on top: its inside holds its code
    top = scene.regions[-1]
    mask = Image.new("L", (120, 160), 0)
    ImageDraw.Draw(mask).polygon(xy_points(top.outline), fill=1)
    assert (codes[np.asarray(mask) > 0] == CODE[top.material]).all()
    # packed at another size the codes stay codes (nearest, padded with "outside")
    path = tmp_path / "m.png"
    render_materials(scene).save(path)
    small = prepare_labels(path, size=64, fit="pad", max_pixels=10**6)
    assert small.shape == (64, 64) and set(np.unique(small)) <= set(np.unique(codes)) | {CODE["outside"]}
    assert (small[:, :8] == CODE["outside"]).all()  # the padding left and right of a tall picture
    masks = group_masks(codes)
    assert masks["skin"].any() and not (masks["hair"] & masks["skin"]).any()
    with pytest.raises(ValueError, match="material code 200"):
        group_masks(np.array([[200]], np.uint8))


def test_a_manga_page_of_panels_with_its_truth():
    from pipeline.data.synthetic.pages import panel_boxes, render_page

    scan, color = render_page(3, (512, 724))
    assert scan.mode == "L" and color.mode == "RGB" and scan.size == color.size == (512, 724)
    again, _ = render_page(3, (512, 724))
    assert np.array_equal(np.asarray(scan), np.asarray(again))
    s, c = np.asarray(scan), np.asarray(color, np.int16)
    assert 0.03 < (s < 128).mean() < 0.5  # ink on white paper
    assert (c.max(-1) - c.min(-1)).mean() > 15  # colored
    boxes = panel_boxes(np.random.default_rng(0), 512, 724)
    assert len(boxes) >= 3 and all(0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 724 for x0, y0, x1, y1 in boxes)
    for a, b in zip(boxes, boxes[1:]):  # panels do not overlap
        assert a[3] <= b[1] or a[2] <= b[0] or b[2] <= a[0]


def test_synthetic_page_cli(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["synthetic-page", str(tmp_path / "p.png"), "--truth", str(tmp_path / "t.png"),
                              "--width", "300", "--height", "400", "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "p.png").size == (300, 400) and Image.open(tmp_path / "t.png").mode == "RGB"
    res = runner.invoke(app, ["synthetic-page", str(tmp_path / "p.jpg")])
    assert res.exit_code == 2 and "give a .png file name" in res.output
    res = runner.invoke(app, ["synthetic-page", str(tmp_path / "q.png"), "--width", "10"])
    assert res.exit_code == 2 and "between 256 and 8192" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "t.png"]
