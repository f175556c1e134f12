"""`ScanStyle`: generated scans re-inked as binary lines + screentone, for the colorizer's inputs."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import smooth

from pipeline.config import ColorizerConfig
from pipeline.runtime import Runtime
from pipeline.training.scan_style import ScanStyle, dot_screen, gaussian_blur, ink_from_coverage


def _grey_scan(b: int = 4, size: int = 48) -> torch.Tensor:
    """(B, 1, H, W) in [-1, 1]: a black frame line, then left to right a flat grey ramp
    (white, light, mid, dark bands): the continuous shading a generated scan carries."""
    x = torch.ones(b, 1, size, size)
    for k, v in enumerate((1.0, 0.78, 0.5, 0.15)):
        x[..., k * size // 4:(k + 1) * size // 4] = v
    x[..., :3, :] = 0.0  # a 3-px stroke along the top
    return x * 2 - 1


def test_restyled_scans_are_binary_ink_with_the_levels_coverage():
    scan = _grey_scan()
    out = ScanStyle(1.0, seed=0, continuous=0.0)(scan)
    assert out.shape == scan.shape
    assert set(out.unique().tolist()) <= {-1.0, 1.0}  # ink or paper, nothing between
    ink = (out < 0).float()[..., 8:, :]  # below the stroke
    q = scan.shape[-1] // 4
    # each band keeps its level's coverage: paper stays paper, the dark band goes black
    coverage = [ink[..., k * q + 3:(k + 1) * q - 3].mean().item() for k in range(4)]
    assert coverage[0] == 0.0
    assert coverage[0] < coverage[1] < coverage[2] < coverage[3]
    assert coverage[1] == pytest.approx(0.18, abs=0.1) and coverage[2] == pytest.approx(0.5, abs=0.15)
    assert coverage[3] > 0.95
    assert (out[..., 0, :] < 0).all()  # the stroke stays solid ink over the white band too
    # a flat fill darker than the solid-ink threshold (0.35-0.5) is inked solid, as manga
    # inks dark colors; one between it and the light tone's edge becomes dense tone
    dark, mid = torch.full((8, 1, 32, 32), 0.3 * 2 - 1), torch.full((8, 1, 32, 32), 0.58 * 2 - 1)
    assert (ScanStyle(1.0, seed=2, continuous=0.0)(dark) < 0).all()
    assert (ScanStyle(1.0, seed=2, continuous=0.0)(mid) < 0).float().mean().item() == pytest.approx(0.5, abs=0.15)


def test_unchosen_samples_pass_through_and_draws_do_not_depend_on_the_choice():
    scan = _grey_scan(6)
    assert torch.equal(ScanStyle(0.0, seed=1)(scan), scan)
    half = ScanStyle(0.5, seed=0)
    out = half(scan)
    same = [torch.equal(out[i], scan[i]) for i in range(6)]
    assert any(same) and not all(same)
    # the generator advances by the same draws whatever p is: a p=0 and a p=1 style
    # seeded alike stay in step, batch after batch
    a, b = ScanStyle(0.0, seed=7), ScanStyle(1.0, seed=7)
    a(scan), b(scan)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


def test_resume_draws_what_an_uninterrupted_run_draws():
    scan = _grey_scan()
    style = ScanStyle(0.7, seed=5)
    style(scan)
    state = style.state_dict()
    nxt = style(scan)
    again = ScanStyle(0.7, seed=99)
    again.load_state_dict(state)
    assert torch.equal(again(scan), nxt)


def test_screen_and_blur_pieces():
    # dots of coverage c cover about c of the paper, whatever the pitch and angle
    d = dot_screen((64, 64), torch.tensor([3.0, 4.5]), torch.tensor([0.3, 1.1]), torch.tensor([[0.2, 0.7]] * 2),
                   torch.device("cpu"))
    for c in (0.18, 0.5):
        share = ink_from_coverage(torch.full_like(d, c), d).float().mean().item()
        assert share == pytest.approx(c, abs=0.06)
    # the blur smooths more at the wider of each sample's widths, keeps the mean about the
    # same (reflect padding) and a flat image flat
    x = torch.rand(2, 1, 20, 20)
    y = gaussian_blur(x, torch.tensor([0.8, 2.0]))
    assert y.shape == x.shape and y[1].std() < y[0].std() < x[0].std()
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.02)
    assert gaussian_blur(torch.rand(1, 1, 8, 8), torch.tensor([2.0])).shape == (1, 1, 8, 8)  # pad < size
    flat = torch.full((2, 1, 12, 12), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([1.0, 1.5])), flat, atol=1e-6)
    with pytest.raises(ValueError, match="p must be a probability"):
        ScanStyle(1.5, seed=0)


def test_the_colorizer_step_trains_on_restyled_scans_and_resumes_exactly():
    """A colorizer run with scan_style checkpointed after a step and resumed in a fresh
    state takes the uninterrupted run's next step: the same losses, the same weights."""
    from pipeline.training.colorizer_step import colorizer_step, make_state
    from pipeline.training.state import rng_state, set_rng_state

    cpu = Runtime(device=torch.device("cpu"))
    cfg = ColorizerConfig(steps=4, batch_size=2, crop=0, hints_max=0, width=4, mults=[1, 2], n_attention=1,
                          groups=2, disc_width=4, composite_l1=True, scan_style=0.5)
    colors = smooth(4, 3, size=32)
    scans = np.ascontiguousarray(colors[..., :1])
    state = make_state(cfg, 2e-3, cpu, scans, colors, seed=0)
    assert "scan_style" not in make_state(replace(cfg, scan_style=0.0), 2e-3, cpu, scans, colors, 0).stateful
    colorizer_step(state, cfg, cpu)
    saved = copy.deepcopy(state.state_dict())  # as written to disk: not the live tensors
    rngs = rng_state()
    expected = colorizer_step(state, cfg, cpu)
    assert all(np.isfinite(v) for v in expected.values())
    resumed = make_state(cfg, 2e-3, cpu, scans, colors, seed=1)
    resumed.load_state_dict(saved)
    set_rng_state(rngs)
    assert colorizer_step(resumed, cfg, cpu) == expected
    for a, b in zip(state.models["G"].parameters(), resumed.models["G"].parameters()):
        assert torch.equal(a, b)
