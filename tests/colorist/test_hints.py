"""Hint channels: sampling from a target, spreading over closed regions, the encoding."""

import numpy as np
import pytest

from pipeline.colorist.hints import HINT_MARK, SPREAD_MARK, encode_hints, sample_hints
from pipeline.colorist.regions import regions
from pipeline.models.colorizer import HINT_CHANNELS, NO_COLOR
from pipeline.training.hint_sampler import HintSampler, training_hints


def two_rooms(h=32, w=48):
    """A white page split by a vertical black line at x = 24: two closed regions."""
    scan = np.full((h, w), 255, np.uint8)
    scan[:, 23:25] = 0
    return scan


def test_regions_are_split_by_ink():
    labels, n = regions(two_rooms())
    assert n == 2
    assert labels[:, 23:25].max() == 0  # ink belongs to no region
    assert labels[0, 0] != labels[0, -1]


def test_screentone_dots_are_inside_the_region_they_tone():
    scan = two_rooms()
    scan[::3, 2:20:3] = 0  # a dot screen over most of the left room
    labels, n = regions(scan)
    assert n == 2  # the dots split nothing
    assert labels[1, 2] == labels[0, 0] != 0  # a pixel between the dots belongs to the room
    ids = np.full(scan.shape, -1, np.int32)
    ids[16, 21] = 0
    enc = encode_hints(scan, ids, np.array([[10, 200, 10]], np.uint8))
    assert (enc[:, :23, 3] > 0).all()  # the whole toned room, dots included


def test_a_hint_fills_its_region_and_stops_at_the_line():
    scan = two_rooms()
    ids = np.full(scan.shape, -1, np.int32)
    ids[10, 5] = 0
    enc = encode_hints(scan, ids, np.array([[200, 30, 40]], np.uint8))
    assert enc.shape == (*scan.shape, HINT_CHANNELS)
    left, right = enc[:, :23], enc[:, 25:]
    assert (left[..., :3] == [200, 30, 40]).all()
    assert enc[10, 5, 3] == HINT_MARK and enc[0, 0, 3] == SPREAD_MARK
    assert (right[..., :3] == NO_COLOR).all() and (right[..., 3] == 0).all()  # no bleed across the line
    assert (enc[:, 23:25, 3] == 0).all()


def test_two_hints_in_one_region_blend_smoothly_between_them():
    scan = two_rooms()
    ids = np.full(scan.shape, -1, np.int32)
    ids[16, 1] = 0
    ids[16, 21] = 1
    enc = encode_hints(scan, ids, np.array([[255, 0, 0], [0, 0, 255]], np.uint8))
    red, blue = enc[16, :23, 0].astype(int), enc[16, :23, 2].astype(int)
    assert red[1] == 255 and blue[21] == 255  # each hint keeps its own color
    assert red[2] > 230 and blue[20] > 230  # next to a hint, nearly its color
    assert abs(int(red[11]) - int(blue[11])) < 40  # halfway, an even mix
    assert (np.diff(red[2:21]) <= 0).all() and (np.diff(blue[2:21]) >= 0).all()  # a gradient, no step
    assert (enc[:, 25:, 3] == 0).all()  # and still nothing across the line


def test_no_hints_is_the_empty_encoding():
    scan = two_rooms()
    enc = encode_hints(scan, np.full(scan.shape, -1, np.int32), np.zeros((0, 3), np.uint8))
    assert (enc[..., :3] == NO_COLOR).all() and (enc[..., 3] == 0).all()


def test_sampled_hints_carry_the_target_color_and_avoid_ink():
    scan = two_rooms()
    color = np.zeros((*scan.shape, 3), np.uint8)
    color[:, :24] = (10, 200, 30)
    color[:, 24:] = (220, 220, 0)
    ids, cols = sample_hints(np.random.default_rng(0), scan, color, 6, 1)
    assert len(cols) == 6
    for k, c in enumerate(cols):
        (y,), (x,) = np.nonzero(ids == k)
        assert scan[y, x] == 255
        assert tuple(c) == tuple(color[y, x])


def test_hint_counts_are_geometric_and_sometimes_none():
    scan = np.repeat(two_rooms()[None, ..., None], 400, 0)
    color = np.full((*scan.shape[:3], 3), 90, np.uint8)
    enc, targets = training_hints(np.random.default_rng(1), scan, color, p=0.3, max_hints=8, max_patch=1)
    assert targets is color  # hints from the target ask for nothing else
    counts = (enc[..., 3] == HINT_MARK).reshape(len(enc), -1).sum(1)
    assert 0.22 < (counts == 0).mean() < 0.38  # P(0) = p
    assert counts.max() == 8  # capped
    assert 1.5 < counts.mean() < 2.3  # (1 - p) / p = 2.33 before the cap


def test_hint_sampler_resumes_exactly():
    scan = np.repeat(two_rooms()[None, ..., None], 4, 0)
    color = np.full((*scan.shape[:3], 3), 90, np.uint8)
    a = HintSampler(3, 0.3, 10, 3)
    a(scan, color)
    saved = a.state_dict()
    first = a(scan, color)
    b = HintSampler(99, 0.3, 10, 3)
    b.load_state_dict(saved)
    again = b(scan, color)
    assert np.array_equal(again[0], first[0]) and np.array_equal(again[1], first[1])


def test_recolored_hints_recolor_their_region_of_the_target_keeping_its_shading():
    scan = np.repeat(two_rooms()[None, ..., None], 50, 0)
    color = np.zeros((*scan.shape[:3], 3), np.uint8)
    color[..., :24, :] = (100, 150, 200)
    color[..., 24:, :] = (30, 60, 90)
    color[:, 16:, :24] += 10  # shading in the left room
    enc, targets = training_hints(np.random.default_rng(2), scan, color, p=0.3, max_hints=3, max_patch=1,
                                  recolor=1.0)
    assert targets is not color and np.array_equal(color[:, 0, 0], np.tile([100, 150, 200], (50, 1)))
    changed = 0
    for e, t, c in zip(enc, targets, color):
        hinted = e[..., 3] >= SPREAD_MARK
        assert np.array_equal(t[~hinted], c[~hinted])  # nothing outside the hinted regions moves
        for room in (slice(0, 23), slice(25, 48)):
            r = hinted[:, room]
            if r.all() and len(np.unique(e[:, room][..., :3].reshape(-1, 3), axis=0)) == 1:
                want = e[0, room.start, :3].astype(int)
                got = t[:, room].astype(int)
                base = c[:, room].astype(int)
                # the hint's color plus the room's own shading
                assert np.abs((got - got.mean((0, 1))) - (base - base.mean((0, 1)))).max() <= 1 or \
                    (got == 0).any() or (got == 255).any()
                assert np.abs(got.mean((0, 1)) - want).max() <= 6
                changed += 1
    assert changed > 10


@pytest.mark.parametrize("hints_max", [0, 8])
def test_unet_takes_hint_channels_only_when_trained_with_them(hints_max):
    import torch

    from pipeline.colorist.arrays import colorize_arrays
    from pipeline.config import ColorizerConfig
    from pipeline.models.colorizer import takes_hints
    from pipeline.runtime import setup_runtime
    from pipeline.training.colorizer_step import build_colorizer

    g, _ = build_colorizer(ColorizerConfig(width=4, mults=[1, 2], n_attention=1, groups=2, hints_max=hints_max))
    assert takes_hints(g) == bool(hints_max)
    torch.nn.init.normal_(g.head.weight, std=0.1)  # leave the grey identity so hints can matter
    scans = two_rooms()[None, ..., None]
    rt = setup_runtime("cpu", autotune=False)
    plain = colorize_arrays(g, scans, rt, ink="none")
    assert plain.shape == (1, 32, 48, 3)
    ids = np.full(scans.shape[1:3], -1, np.int32)
    ids[5, 5] = 0
    hints = encode_hints(scans[0, ..., 0], ids, np.array([[255, 0, 0]], np.uint8))[None]
    if hints_max:
        assert not np.array_equal(colorize_arrays(g, scans, rt, ink="none", hints=hints), plain)
    else:
        with pytest.raises(ValueError, match="trained without hints"):
            colorize_arrays(g, scans, rt, hints=hints)
