"""The hint measures: quality against the number of hints, obedience and bleed, checked on
colorizers whose behaviour is known (one paints exactly the hint fill, one smears hints
across lines, one ignores them)."""

import numpy as np
import torch
from torch import nn

from pipeline.colorist.regions import HALO_REACH
from pipeline.evaluation.hint_sweep import bleed, first_n, hint_sweep, nested_hints, opposite_color
from pipeline.models.colorizer import HINT_CHANNELS
from pipeline.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))


class _Config:
    in_channels = 1 + HINT_CHANNELS


class FillColorizer(nn.Module):
    """Paints the spread hint colors, grey scan elsewhere (what the hint skip starts as);
    smear > 0 also blurs the hint colors over `smear` pixels, across lines."""

    def __init__(self, smear: int = 0, obey: bool = True):
        super().__init__()
        self.config = _Config()
        self.smear, self.obey = smear, obey

    def forward(self, x):
        grey = x[:, :1].expand(-1, 3, -1, -1)
        if not self.obey:
            return grey
        painted = (x[:, 4:5] > -0.5).float()
        color = x[:, 1:4] * painted
        if self.smear:
            k = 2 * self.smear + 1
            color = nn.functional.avg_pool2d(color, k, 1, self.smear, count_include_pad=False)
            painted = nn.functional.avg_pool2d(painted, k, 1, self.smear, count_include_pad=False)
            color = color / painted.clamp(min=1e-6)
        return torch.where(painted > 0, color, grey)


def rooms(n=6, size=48):
    """Scans with a cross of ink (four closed rooms) and colors with one flat color per room."""
    rng = np.random.default_rng(0)
    scans = np.full((n, size, size, 1), 255, np.uint8)
    scans[:, size // 2 - 1:size // 2 + 1] = 0
    scans[:, :, size // 2 - 1:size // 2 + 1] = 0
    colors = np.zeros((n, size, size, 3), np.uint8)
    h = size // 2
    for i in range(n):
        for y0, x0 in ((0, 0), (0, h), (h, 0), (h, h)):
            colors[i, y0:y0 + h, x0:x0 + h] = rng.integers(0, 256, 3)
    colors[scans[..., 0] == 0] = 0
    return scans, colors


def test_nested_hints_keep_the_smaller_sets():
    scans, colors = rooms()
    hints = nested_hints(0, scans, colors, 10)
    five, ten = first_n(hints[0], 5), first_n(hints[0], 10)
    assert set(np.unique(five[0][five[0] >= 0])) == set(range(5))
    assert (((ten[0] >= 0) & (ten[0] < 5)) == (five[0] >= 0)).all()  # the 10 hold the 5 where they are


def test_a_colorizer_that_fills_hints_obeys_them_and_improves_with_more():
    scans, colors = rooms()
    rows, shown = hint_sweep(FillColorizer(), scans, colors, CPU, counts=(0, 1, 10))
    assert [r["hints"] for r in rows] == [0, 1, 10]
    assert rows[2]["delta_e"] < rows[1]["delta_e"] < rows[0]["delta_e"]
    assert rows[2]["obedience_delta_e"] < 1.0  # flat rooms: the fill is the hint
    ignoring, _ = hint_sweep(FillColorizer(obey=False), scans, colors, CPU, counts=(0, 10))
    assert ignoring[1]["obedience_delta_e"] > 10 and ignoring[1]["delta_e"] == ignoring[0]["delta_e"]
    assert shown[10].shape == colors.shape


def test_bleed_is_zero_for_a_fill_and_large_for_a_smear():
    scans, colors = rooms()
    clean = bleed(FillColorizer(), scans, colors, CPU)
    smeared = bleed(FillColorizer(smear=HALO_REACH + 6), scans, colors, CPU)
    assert clean["images"] == smeared["images"] == len(scans)
    assert clean["ring_delta_e"] < 0.01 and clean["inside_delta_e"] > 5
    assert clean["obedience_delta_e"] < 1.0  # the contrary color, exactly, inside
    assert smeared["ring_delta_e"] > 5


def test_a_smear_within_the_halo_reach_is_stopped_at_the_line():
    """The colors near an outline come from farther inside its area (`inside_edges`, as
    `onepunch colorize` composes a page): a network that smears a hint's color up to
    HALO_REACH px across the line bleeds nothing; measured on its raw colors, it would."""
    scans, colors = rooms()
    assert bleed(FillColorizer(smear=HALO_REACH), scans, colors, CPU)["ring_delta_e"] < 0.01
    assert bleed(FillColorizer(smear=HALO_REACH), scans, colors, CPU, edges=False)["ring_delta_e"] > 5


def test_opposite_color_is_far_from_the_color():
    from pipeline.evaluation.metrics import delta_e

    for rgb in ([200, 40, 40], [40, 40, 200], [128, 128, 128], [250, 240, 200]):
        opp = opposite_color(np.array(rgb, np.uint8))
        assert delta_e(opp[None, None, None], np.array(rgb, np.uint8)[None, None, None])[0] > 25
