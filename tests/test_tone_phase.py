"""tools/tone_phase_ceiling.py: the shifted true scan moves the screentone and nothing else."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from tone_phase_ceiling import render_variants

from pipeline.data.synthetic import scene_images
from pipeline.data.synthetic.post_images import render_post
from pipeline.data.synthetic.posts import PostPlan

SEED, CANVAS = 2020, 192


def plan(pid: int) -> PostPlan:
    return PostPlan(id=pid, kind="color", look="color", width=CANVAS, height=CANVAS, file_ext="jpg",
                    rating="s", has_image=True)


def untoned_scan(p: PostPlan) -> np.ndarray:
    """The same true scan with every tone region left white: its lines and solid blacks only."""
    scene, _, _ = render_post(p, SEED, CANVAS, 4)
    original = scene_images._tone_pattern
    scene_images._tone_pattern = lambda kind, box, period, angle: np.zeros((box[3] - box[1], box[2] - box[0]), bool)
    try:
        return np.asarray(scene_images.pad_to_square(scene_images.render_scan(scene), CANVAS))
    finally:
        scene_images._tone_pattern = original


def toned_post() -> tuple[PostPlan, dict]:
    for pid in range(1, 40):
        v = render_variants(plan(pid), SEED, CANVAS, 4, 6, np.random.default_rng(0))
        truth = np.asarray(v["truth"])
        if (truth != untoned_scan(plan(pid))).mean() > 0.02:  # at least 2% of the picture is tone
            return plan(pid), v
    raise AssertionError("no toned picture among the first 39 posts")


def test_shift_moves_only_the_tone():
    p, v = toned_post()
    truth, shifted = np.asarray(v["truth"], np.int16), np.asarray(v["shifted"], np.int16)
    ink_only = untoned_scan(p)
    lines = ink_only < 255
    assert np.array_equal(truth[lines], shifted[lines])  # lines and solid blacks: exact
    assert (truth != shifted).mean() > 0.005  # the tone did move
    # the same tone, elsewhere on its grid: about as many tone dots as before
    dots_truth, dots_shifted = int((truth[~lines] < 128).sum()), int((shifted[~lines] < 128).sum())
    assert dots_truth > 0 and abs(dots_shifted - dots_truth) < 0.15 * dots_truth
    assert abs(float(truth.mean()) - float(shifted.mean())) < 3.0


def test_descreened_is_the_tone_mean_grey():
    p, v = toned_post()
    truth, mean = np.asarray(v["truth"], np.float32), np.asarray(v["descreened"], np.float32)
    lines = untoned_scan(p) < 255
    assert np.array_equal(truth[lines], mean[lines])
    mid = (mean > 20) & (mean < 235)
    assert mid.mean() > 2 * ((truth > 20) & (truth < 235)).mean()  # dots averaged into grey
    assert abs(float(truth.mean()) - float(mean.mean())) < 3.0


def test_post_without_true_scan_is_skipped():
    scan_plan = PostPlan(id=3, kind="scan", look="scan", width=CANVAS, height=CANVAS, file_ext="jpg",
                         rating="s", has_image=True)
    assert render_variants(scan_plan, SEED, CANVAS, 4, 2, np.random.default_rng(0)) == {}
