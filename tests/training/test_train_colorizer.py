"""The colorizer's training pieces: pair sampling, the cGAN step, progressive sizes."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import smooth

from pipeline.config import ColorizerConfig
from pipeline.pixels import greyscale_u8
from pipeline.runtime import Runtime
from pipeline.training.colorizer_step import colorizer_step, current_size, make_state
from pipeline.training.samplers import PairSampler

CPU = Runtime(device=torch.device("cpu"))
TINY = ColorizerConfig(steps=40, batch_size=2, crop=0, hints_max=0, width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=4,
                       flip=False, rotate_deg=0.0, shift=0.0,
                       composite_l1=False)  # greyscale scans: their grey is no ink (the composite's own test is below)


def test_pair_sampler_keeps_pairs_together():
    scans = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    colors = np.repeat(scans, 3, axis=3)
    s, c = PairSampler(scans, colors, 4, seed=0).next()
    assert torch.equal(s[..., 0], c[..., 0])


@pytest.mark.slow
def test_colorizer_learns_one_batch():
    colors = smooth(2, 3)
    scans = greyscale_u8(colors)
    cfg = replace(TINY, lambda_l1=100.0)
    state = make_state(cfg, 5e-3, CPU, scans, colors, seed=0)
    first = colorizer_step(state, cfg, CPU)["loss/L1"]
    for _ in range(cfg.steps):
        last = colorizer_step(state, cfg, CPU)["loss/L1"]
    assert last < 0.5 * first


def test_progressive_sizes():
    cfg = replace(TINY, steps=90, progressive_sizes=[16, 32, 64])
    assert [current_size(cfg, s, 64) for s in (0, 29, 30, 60, 89)] == [16, 16, 32, 64, 64]
    assert current_size(TINY, 5, 64) == 64


def test_pair_sampler_crops_both_members_of_a_pair_at_one_window():
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    scans = colors[..., :1].copy()
    sampler = PairSampler(scans, colors, 4, seed=1, crop=16)
    s, c = sampler.next()
    assert s.shape == (4, 16, 16, 1) and c.shape == (4, 16, 16, 3)
    assert torch.equal(s[..., 0], c[..., 0])  # the same window of each pair
    windows = {(bytes(c[i].numpy()),) for i in range(4)}
    assert len(windows) == 4
    # every crop is a window of some training image
    for crop in c.numpy():
        assert any((colors[k, y:y + 16, x:x + 16] == crop).all()
                   for k in range(6) for y in range(25) for x in range(33))
    state = sampler.state_dict()  # exact resume: the same next batch, windows included
    a = sampler.next()
    sampler.load_state_dict(state)
    b = sampler.next()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="crop 64 is larger than the 40x48 images"):
        PairSampler(scans, colors, 4, seed=1, crop=64)


def test_crops_under_ddp_split_one_global_batch():
    from pipeline.training.samplers import BatchSampler

    arr = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 1), dtype=np.uint8)
    whole = BatchSampler(arr, 4, 3, crop=16).next()
    r0, r1 = (BatchSampler(arr, 2, 3, rank=r, world_size=2, crop=16).next() for r in (0, 1))
    assert sorted(map(bytes, torch.cat([r0, r1]).numpy())) == sorted(map(bytes, whole.numpy()))


def test_prefetched_batches_and_checkpoints_are_the_bare_samplers():
    """The prefetcher reads one batch ahead on a thread; the batches, and what a checkpoint
    taken between any two steps resumes to, are those of the bare sampler."""
    from pipeline.training.samplers import BatchSampler, Prefetcher, read_ahead

    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (9, 24, 24, 3), dtype=np.uint8)
    bare = PairSampler(colors[..., :1].copy(), colors, 3, seed=4, crop=16)
    ahead = Prefetcher(PairSampler(colors[..., :1].copy(), colors, 3, seed=4, crop=16))
    expected = [bare.next() for _ in range(5)]
    got = [ahead.next() for _ in range(2)]
    state = ahead.state_dict()  # taken while batch 3 is already in flight
    got += [ahead.next() for _ in range(3)]
    assert all(torch.equal(a, b) for x, y in zip(expected, got) for a, b in zip(x, y))
    resumed = Prefetcher(PairSampler(colors[..., :1].copy(), colors, 3, seed=99, crop=16))
    resumed.next()  # a batch of its own in flight, dropped by the load
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(resumed.next(), expected[2]))
    plain, bare_one = Prefetcher(BatchSampler(colors, 4, seed=1)), BatchSampler(colors, 4, seed=1)
    assert torch.equal(plain.next(), bare_one.next())
    plain.close()  # as `fit` ends: the worker stopped, the batch in flight dropped and its draw undone
    assert torch.equal(plain.state_dict()["generator"], bare_one.generator.get_state())
    assert torch.equal(plain.next(), bare_one.next())  # a closed prefetcher goes on where it was
    # the stages read ahead on CUDA only: on the CPU a reading thread competes for the step's cores
    assert read_ahead(bare, torch.device("cpu")) is bare
    assert isinstance(read_ahead(bare, torch.device("cuda")), Prefetcher)


@pytest.mark.parametrize("variant", [
    {"gan_loss": "hinge"},
    {"disc_spectral_norm": True},
    {"lambda_fm": 10.0},
    {"gan_loss": "hinge", "disc_spectral_norm": True, "lambda_fm": 10.0, "crop": 32},
])
def test_gan_balance_options_train(variant):
    colors = smooth(4, 3, size=48)
    cfg = replace(TINY, **variant)
    state = make_state(cfg, 2e-3, CPU, greyscale_u8(colors), colors, seed=0)
    logs = [colorizer_step(state, cfg, CPU) for _ in range(3)]
    assert all(np.isfinite(v) for log in logs for v in log.values())
    assert ("loss/FM" in logs[0]) == (cfg.lambda_fm > 0)
    assert logs[-1]["size"] == (cfg.crop or 48)
    if cfg.disc_spectral_norm:  # every D convolution has spectral norm about 1
        d = state.models["D"]
        for m in d.modules():
            if isinstance(m, torch.nn.Conv2d) and hasattr(m, "parametrizations"):
                w = m.weight.detach().flatten(1)
                assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=0.15)


@pytest.mark.slow
def test_composite_l1_learns_the_colors_that_compose_into_the_target():
    """With composite_l1 the L1 is taken on the output multiplied by the scan's composite
    factor: under a scan of grey 128 the model paints about twice as light as the target, so
    that the composed page matches it; with the bare L1 it paints the target itself."""
    from pipeline.training.colorizer_step import composite_factors

    colors = (smooth(2, 3, size=32).astype(np.float32) * 0.4).astype(np.uint8)  # dark targets, 0..102
    scans = np.full((2, 32, 32, 1), 128, np.uint8)
    scan = torch.from_numpy(scans).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(composite_factors(scan), torch.full((2, 1, 32, 32), 128 / 255))
    painted = {}
    for composite in (True, False):
        cfg = replace(TINY, composite_l1=composite, lambda_l1=100.0)
        state = make_state(cfg, 5e-3, CPU, scans, colors, seed=0)
        for _ in range(60):
            colorizer_step(state, cfg, CPU)
        with torch.no_grad():
            painted[composite] = (state.models["G"](scan).mean().item() + 1) * 127.5  # the bare layer, 0..255
    assert painted[True] == pytest.approx(colors.mean() * 255 / 128, rel=0.15)
    assert painted[False] == pytest.approx(colors.mean(), rel=0.15)


def test_hinge_and_lsgan_losses():
    from pipeline.training.losses import d_loss, g_adv_loss

    real, fake = torch.full((2, 1, 3, 3), 2.0), torch.full((2, 1, 3, 3), -2.0)
    assert d_loss("hinge", real, fake).item() == 0.0  # both beyond the margin
    assert d_loss("hinge", fake, real).item() == pytest.approx(3.0)
    assert g_adv_loss("hinge", fake).item() == pytest.approx(2.0)
    assert d_loss("lsgan", torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)).item() == 0.0
    assert g_adv_loss("lsgan", torch.zeros(1, 1, 2, 2)).item() == 1.0


def test_rgb_to_lab_is_scikit_images_and_differentiable_at_black_and_white():
    from skimage.color import rgb2lab

    from pipeline.training.losses import rgb_to_lab

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 2, 3]]
    got = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - rgb2lab(rgb)).max() < 1e-3
    x = torch.tensor([0.0, 1.0, 0.5]).reshape(1, 3, 1, 1).repeat(1, 1, 2, 2).requires_grad_(True)
    rgb_to_lab(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_lab_l1_weighs_an_error_as_delta_e_does():
    """Errors of one RGB L1 size, spread differently over the channels: the RGB L1 sees them
    all alike; the Lab L1 (`colorizer.l1_space: lab`) ranks them as ΔE2000 does."""
    from scipy.stats import spearmanr
    from skimage.color import deltaE_ciede2000, rgb2lab

    from pipeline.training.losses import l1_loss

    rng = np.random.default_rng(0)
    target = rng.uniform(0.2, 0.8, (200, 3))
    pred = target + rng.dirichlet([1, 1, 1], 200) * rng.choice([-1, 1], (200, 3)) * 0.15
    delta_e = deltaE_ciede2000(rgb2lab(target[None]), rgb2lab(pred[None]))[0]
    as_input = lambda a: torch.tensor(a * 2 - 1, dtype=torch.float32)[:, :, None, None]  # noqa: E731
    losses = {space: np.array([l1_loss(as_input(pred[i:i + 1]), as_input(target[i:i + 1]), space).item()
                               for i in range(200)]) for space in ("rgb", "lab")}
    assert np.ptp(losses["rgb"]) < 1e-6  # one size for the RGB L1
    assert spearmanr(losses["lab"], delta_e).statistic > 0.5


def test_delta_e_2000_is_scikit_images_and_matches_sharmas_published_pairs():
    """The loss of `l1_space: de2000` is the evaluation's CIEDE2000 (scikit-image's
    `deltaE_ciede2000`), per pixel, and the published test pairs of Sharma, Wu & Dalal
    (2005) come out at their table's values."""
    from skimage.color import deltaE_ciede2000

    from pipeline.training.losses import delta_e_2000, rgb_to_lab

    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 32, 32)), rng.random((2, 3, 32, 32))
    b[:, :, :8] = (a[:, :, :8] + rng.normal(0, 0.01, (2, 3, 8, 32))).clip(0, 1)  # near pairs
    lab_a, lab_b = rgb_to_lab(torch.tensor(a)), rgb_to_lab(torch.tensor(b))
    ours = delta_e_2000(lab_a, lab_b).numpy()
    ref = deltaE_ciede2000(lab_a.permute(0, 2, 3, 1).double().numpy(), lab_b.permute(0, 2, 3, 1).double().numpy())
    assert ours.shape == (2, 32, 32) and np.abs(ours - ref).max() < 1e-3
    sharma = [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
              ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0000),
              ((50, 2.5, 0), (58, 24, 15), 19.4535),
              ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
              ((50, 0, 0), (50, -1, 2), 2.3669)]  # a grey against a colour
    as_lab = lambda v: torch.tensor(v, dtype=torch.float64).reshape(1, 3, 1, 1)  # noqa: E731
    for x, y, want in sharma:
        assert delta_e_2000(as_lab(x), as_lab(y)).item() == pytest.approx(want, abs=1e-3)


def test_delta_e_2000_loss_has_a_finite_gradient_on_equal_and_grey_colors_and_descends():
    """Where the output already equals the target, and on greys (no hue), the gradient is
    finite; gradient steps on it bring an output to its target's colour."""
    from pipeline.training.losses import l1_loss

    target = torch.tensor([[0.8, -0.6, 0.1], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]).T.reshape(1, 3, 3, 1)
    x = target.clone().requires_grad_(True)
    l1_loss(x, target, "de2000").backward()
    assert torch.isfinite(x.grad).all()
    x = torch.zeros_like(target).requires_grad_(True)  # mid grey everywhere
    opt = torch.optim.Adam([x], lr=0.05)
    first = l1_loss(x, target, "de2000").item()
    for _ in range(150):
        opt.zero_grad()
        loss = l1_loss(x, target, "de2000")
        loss.backward()
        opt.step()
    assert torch.isfinite(x).all() and loss.item() < 0.1 * first


@pytest.mark.parametrize("space", ["rgb", "lab", "de2000"])
def test_colorizer_step_takes_its_l1_in_the_configured_space(space):
    import copy

    from pipeline.training.losses import l1_loss

    colors = smooth(1, 3)
    scans = greyscale_u8(colors)
    cfg = replace(TINY, batch_size=1, l1_space=space)
    state = make_state(cfg, 2e-3, CPU, scans, colors, seed=0)
    g_before = copy.deepcopy(state.models["G"])
    logged = colorizer_step(state, cfg, CPU)["loss/L1"]
    as_input = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        fake = g_before(as_input(scans))
    assert logged == pytest.approx(l1_loss(fake, as_input(colors), space).item(), rel=1e-4)
    other = {"rgb": "lab", "lab": "rgb", "de2000": "rgb"}[space]
    assert logged != pytest.approx(l1_loss(fake, as_input(colors), other).item(), rel=1e-2)


def test_ema_publishes_the_running_average_of_g_and_resumes_it():
    """`colorizer.ema`: after each step the published network is decay·average + (1 −
    decay)·G (the first step copies G); a checkpoint carries the average, so a resumed run
    goes on averaging where it stopped; off, G itself is published."""
    import copy

    from pipeline.training.colorizer_step import published_generator

    colors = smooth(2, 3)
    scans = greyscale_u8(colors)
    off = make_state(TINY, 2e-3, CPU, scans, colors, seed=0)
    assert "G_ema" not in off.models and published_generator(off) is off.models["G"]

    cfg = replace(TINY, ema=0.9)
    state = make_state(cfg, 2e-3, CPU, scans, colors, seed=0)
    colorizer_step(state, cfg, CPU)
    w1 = copy.deepcopy(state.models["G"].state_dict())
    assert all(torch.equal(published_generator(state).state_dict()[k], w1[k]) for k in w1)  # the first: a copy
    colorizer_step(state, cfg, CPU)
    w2 = state.models["G"].state_dict()
    avg = published_generator(state).state_dict()
    moved = [k for k in w2 if w2[k].is_floating_point() and not torch.equal(w1[k], w2[k])]
    assert moved  # G trained, and the average lags behind it
    for k in moved:
        assert torch.allclose(avg[k], 0.9 * w1[k] + 0.1 * w2[k], atol=1e-6)
        assert not torch.allclose(avg[k], w2[k])

    saved = copy.deepcopy(state.state_dict())
    resumed = make_state(cfg, 2e-3, CPU, scans, colors, seed=0)
    resumed.load_state_dict(saved)
    assert resumed.models["G_ema"].n_averaged.item() == 2
    rng = torch.get_rng_state()
    colorizer_step(state, cfg, CPU)
    torch.set_rng_state(rng)  # the two runs share the global stream: both steps start from it
    colorizer_step(resumed, cfg, CPU)
    for k, v in published_generator(state).state_dict().items():
        assert torch.equal(published_generator(resumed).state_dict()[k], v)
