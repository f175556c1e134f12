"""Shared training infrastructure: exact resume, data parallelism, checkpoints, publishing."""

import os
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import ColorizerConfig, CycleGANConfig
from pipeline.models.scan_generator import load_scan_generator, publish_scan_generator
from pipeline.runtime import Runtime, unwrap
from pipeline.training.augment import RandomAffine
from pipeline.training.checkpoints import Checkpointer, CheckpointError
from pipeline.training.colorizer_step import colorizer_step
from pipeline.training.colorizer_step import make_state as colorizer_state
from pipeline.training.cyclegan_step import build_cyclegan, cyclegan_step, make_state
from pipeline.training.image_pool import ImagePool
from pipeline.training.loop import fit
from pipeline.training.metric_logger import MetricLogger
from pipeline.training.optim import linear_decay
from pipeline.training.samplers import BatchSampler, Prefetcher

CPU = Runtime(device=torch.device("cpu"))
TINY = CycleGANConfig(steps=6, batch_size=2, crop=0, generator_width=4, n_down=1, n_res=1, disc_width=4, groups=2,
                      log_every=2, checkpoint_every=2, sample_every=100)


def data(n=10, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8))


def weights(state):
    return {f"{name}.{k}": v.clone() for name, m in state.models.items() for k, v in unwrap(m).state_dict().items()}


def run(tmp: Path, cfg=TINY, stop_after=None, ckpt="ckpt", fp="fp", prefetch=False):
    color, scan = data()
    state = make_state(cfg, 2e-4, CPU, color, scan, seed=0)
    if prefetch:  # as on CUDA: the samplers read one batch ahead on a thread
        state.stateful = {k: Prefetcher(v) if isinstance(v, BatchSampler) else v for k, v in state.stateful.items()}
    return fit(state, lambda st: cyclegan_step(st, cfg, CPU), cfg, CPU, MetricLogger(None),
               Checkpointer(tmp / ckpt, fp), progress=False, stop_after=stop_after)


@pytest.mark.parametrize("prefetch", [False, True])
def test_resume_is_exact(tmp_path, prefetch):
    """Killed and re-run, training ends with the uninterrupted run's weights; with batches
    read ahead on a thread (CUDA's way) too, against the bare samplers' uninterrupted run."""
    straight = run(tmp_path, ckpt="a")
    # interrupted after 3 steps (between checkpoints: the last one is at step 2 ... plus the stop)
    half = run(tmp_path, ckpt="b", stop_after=3, prefetch=prefetch)
    assert half.step == 3
    resumed = run(tmp_path, ckpt="b", prefetch=prefetch)
    assert resumed.step == straight.step == 6
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the optimiser and lr schedule continued too
    assert resumed.optimizers["G"].param_groups[0]["lr"] == straight.optimizers["G"].param_groups[0]["lr"]


def curves(live: Path) -> dict[str, str]:
    """DVCLive's metric files, except the wall-clock throughput."""
    return {str(p.relative_to(live)): p.read_text() for p in sorted((live / "plots" / "metrics").rglob("*.tsv"))
            if p.name != "images_per_s.tsv"}


def test_resumed_run_keeps_its_loss_curves(tmp_path):
    """DVC deletes the DVCLive folder before re-running a stage; the curves must survive."""
    import shutil

    def go(live, ckpt, stop_after=None):
        color, scan = data()
        state = make_state(TINY, 2e-4, CPU, color, scan, seed=0)
        logger = MetricLogger(tmp_path / live)
        try:
            return fit(state, lambda st: cyclegan_step(st, TINY, CPU), TINY, CPU, logger,
                       Checkpointer(tmp_path / ckpt, "fp"), progress=False, stop_after=stop_after)
        finally:
            logger.close()

    go("a", "ca")
    go("b", "cb", stop_after=3)
    snapshot = Checkpointer(tmp_path / "cb", "fp").live_snapshot
    # a snapshot newer than its checkpoint (killed between the two writes): row 4 must go
    with open(snapshot / "plots" / "metrics" / "loss" / "cycle.tsv", "a") as f:
        f.write("4\t123.0\n")
    shutil.rmtree(tmp_path / "b")  # what DVC does before it re-runs the stage
    go("b", "cb")
    full = curves(tmp_path / "a")
    assert full and curves(tmp_path / "b") == full
    assert [ln.split("\t")[0] for ln in full["plots/metrics/loss/cycle.tsv"].splitlines()] == ["step", "2", "4", "6"]
    Checkpointer(tmp_path / "cb", "fp").clear()
    assert not snapshot.exists()


def test_changed_params_start_fresh_and_bad_checkpoint_is_clear(tmp_path):
    run(tmp_path, ckpt="c", stop_after=3, fp="one")
    assert Checkpointer(tmp_path / "c", "two").load() is None  # other params: fresh start
    assert Checkpointer(tmp_path / "c", "one").load()["step"] == 3
    (tmp_path / "c" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="delete it"):
        Checkpointer(tmp_path / "c", "one").load()


@pytest.mark.slow
def test_training_reduces_cycle_loss_on_one_batch(tmp_path):
    cfg = replace(TINY, steps=80, lambda_cycle=10.0, lambda_identity=0.0, cycle_noise=0.0, flip=False, rotate_deg=0.0, shift=0.0,
                  generator_skip=False)
    # smooth images (upsampled 4x4 noise): learnable by a tiny network in a few steps
    rng = np.random.default_rng(0)
    low = torch.from_numpy(rng.random((2, 4, 4, 4), dtype=np.float32)).permute(0, 3, 1, 2)
    up = torch.nn.functional.interpolate(low, size=32, mode="bilinear").permute(0, 2, 3, 1)
    color = (up[..., :3] * 255).round().to(torch.uint8).numpy()
    scan = (up[..., 3:] * 255).round().to(torch.uint8).numpy()
    state = make_state(cfg, 2e-3, CPU, color, scan, seed=1)
    first = cyclegan_step(state, cfg, CPU)["loss/cycle"]
    for _ in range(cfg.steps):
        last = cyclegan_step(state, cfg, CPU)["loss/cycle"]
    assert last < 0.6 * first


def test_published_model_loads_weights_only_and_matches(tmp_path):
    color, scan = data()
    state = make_state(TINY, 2e-4, CPU, color, scan, seed=0)
    g = state.models["G_scan"]
    path = tmp_path / "scan_generator.pt"
    publish_scan_generator(g, path, image_size=16, steps=0)
    blob = torch.load(path, weights_only=True)
    assert blob["config"]["in_channels"] == 3 and blob["config"]["out_channels"] == 1
    loaded = load_scan_generator(path)
    x = torch.rand(2, 3, 20, 24) * 2 - 1
    g.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), g(x), atol=1e-6)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable model"):
        load_scan_generator(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="dvc pull"):
        load_scan_generator(tmp_path / "missing.pt")


def test_sampler_pool_and_augment_resume_exactly():
    arr = np.arange(20 * 4 * 4 * 1, dtype=np.uint8).reshape(20, 4, 4, 1)
    s = BatchSampler(arr, 4, seed=3)
    s.next()
    saved = s.state_dict()
    a = s.next()
    s.load_state_dict(saved)
    assert torch.equal(a, s.next())
    # ranks split one global batch
    r0, r1 = BatchSampler(arr, 2, 3, rank=0, world_size=2), BatchSampler(arr, 2, 3, rank=1, world_size=2)
    whole = BatchSampler(arr, 4, 3)
    assert sorted(np.concatenate([r0.draw()[0], r1.draw()[0]])) == sorted(whole.draw()[0])

    pool = ImagePool(3, seed=1)
    imgs = [torch.full((2, 1, 2, 2), float(i)) for i in range(5)]
    for x in imgs[:3]:
        pool.query(x)
    saved = pool.state_dict()
    out = pool.query(imgs[3])
    pool.load_state_dict(saved)
    assert torch.equal(out, pool.query(imgs[3]))
    assert len(pool.images) == 3
    # resumed in a fresh process the stored images are the checkpoint's (CPU) tensors: a
    # batch on another device (as on a GPU) gets them moved, never a mixed-device concat
    fresh = ImagePool(3, seed=1)
    fresh.load_state_dict(saved)
    moved = fresh.query(imgs[3].to("meta"))
    assert moved.device.type == "meta" and moved.shape == imgs[3].shape


def test_the_binary_loss_pushes_generated_scans_to_ink_or_paper():
    """`cyclegan.lambda_binary`: with the loss on, a few steps leave G_scan's scans nearer
    ink or paper (mean 1 - |x| lower) than the same steps without it; off, none is logged."""
    from pipeline.pixels import to_model_input

    color, scan = data()
    x = to_model_input(torch.from_numpy(color), CPU.device, CPU.memory_format)

    def greyness(lam: float) -> tuple[float, dict]:
        cfg = replace(TINY, lambda_binary=lam)
        state = make_state(cfg, 1e-2, CPU, color, scan, seed=0)
        logs = [cyclegan_step(state, cfg, CPU) for _ in range(6)]
        with torch.no_grad():
            return (1 - unwrap(state.models["G_scan"])(x).abs()).mean().item(), logs[-1]

    (off, logs_off), (on, logs_on) = greyness(0.0), greyness(20.0)
    assert "loss/binary" not in logs_off and logs_on["loss/binary"] >= 0
    assert on < 0.8 * off, (on, off)


def test_the_highpass_view_is_d_scans_alone_and_trains():
    """`cyclegan.disc_scan_highpass`: D_scan sees the scan and its high-pass view (2 input
    channels), D_color its 3 channels as before; a step with it gives finite losses and moves
    D_scan's weights on the high-pass channel."""
    cfg = replace(TINY, disc_scan_highpass=8.0)
    _, _, d_scan, d_color = build_cyclegan(cfg)
    assert d_scan.config.highpass == 8.0 and d_scan.features[0].conv.in_channels == 2
    assert d_color.config.highpass == 0.0 and d_color.features[0].conv.in_channels == 3
    color, scan = data()
    state = make_state(cfg, 1e-2, CPU, color, scan, seed=0)
    before = unwrap(state.models["D_scan"]).features[0].conv.weight[:, 1].clone()
    logs = cyclegan_step(state, cfg, CPU)
    assert all(np.isfinite(v) for v in logs.values())
    assert not torch.equal(unwrap(state.models["D_scan"]).features[0].conv.weight[:, 1], before)


def test_augment_moves_a_pair_together():
    aug = RandomAffine(flip=True, degrees=10, shift=0.1, seed=0)
    scan = torch.rand(4, 1, 16, 16)
    pair = torch.cat([scan, scan.expand(-1, 3, -1, -1)], 1)
    out = aug(pair)
    assert not torch.allclose(out[:, :1], scan)  # it did transform
    for c in range(1, 4):
        assert torch.allclose(out[:, :1], out[:, c:c + 1], atol=1e-6)


def test_linear_decay():
    f = linear_decay(100, 0.5)
    assert f(0) == f(49) == 1.0 and f(75) == pytest.approx(0.5) and f(100) == 0.0


# --------------------------------------------------------------------------- DDP on gloo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


COLORIZER = ColorizerConfig(steps=6, batch_size=2, crop=0, width=4, mults=[1, 2], n_attention=1, groups=2,
                            disc_width=4, hints_max=0, flip=False, rotate_deg=0.0, shift=0.0)


def _ddp_state(which: str, batch: int, rt: Runtime, compile_mode: str = "none"):
    """A state and its step for `which` network, one rank's share of a global batch: no pool,
    no augmentation and no noise (each rank draws those from its own stream)."""
    color, scan = data()
    if which == "cyclegan":
        cfg = replace(TINY, batch_size=batch, pool_size=0, flip=False, rotate_deg=0.0, shift=0.0, cycle_noise=0.0,
                      compile=compile_mode)
        return make_state(cfg, 1e-3, rt, color, scan, seed=0), lambda st: cyclegan_step(st, cfg, rt)
    # a conditional D with spectral norm and feature matching; the composite L1
    cfg = replace(COLORIZER, batch_size=batch, compile=compile_mode)
    return (colorizer_state(cfg, 1e-3, rt, scan, color, seed=0), lambda st: colorizer_step(st, cfg, rt))


def _ddp_worker(rank: int, world: int, port: int, out: str, which: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from torch.nn.parallel import DistributedDataParallel

    from pipeline.runtime import setup_runtime, teardown_runtime

    rt = setup_runtime("cpu")
    state, step = _ddp_state(which, 2, rt)
    assert all(isinstance(m, DistributedDataParallel) for m in state.models.values())
    for _ in range(3):
        step(state)
    if rank == 0:
        torch.save(weights(state), out)
    teardown_runtime(rt)


@pytest.mark.parametrize("which", ["cyclegan", "colorizer"])
def test_ddp_in_a_one_process_group_matches_the_bare_networks(which):
    """The DDP path in this process (a 1-rank gloo group): wrapped networks, the same weights
    as without DDP after 2 steps; checkpoints and published files hold the bare names."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    bare_state, bare_step = _ddp_state(which, 2, CPU)
    for _ in range(2):
        bare_step(bare_state)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        state, step = _ddp_state(which, 2, CPU)
        assert all(isinstance(m, DistributedDataParallel) for m in state.models.values())
        for _ in range(2):
            step(state)
        saved = state.state_dict()["models"]
    finally:
        dist.destroy_process_group()
    assert not any(k.startswith("module.") for m in saved.values() for k in m)
    ddp, bare = weights(state), weights(bare_state)
    for k in bare:
        assert torch.allclose(ddp[k], bare[k], atol=1e-6), k


@pytest.mark.slow
@pytest.mark.parametrize("which", ["cyclegan", "colorizer"])
def test_data_parallel_on_two_gloo_processes_matches_one_process(tmp_path, which):
    """DDP over 2 processes with 2 images each = one process with the batch of 4, to fp32
    tolerance, after 3 steps of both updates."""
    import torch.multiprocessing as mp

    out = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out, which), nprocs=2, join=True)
    ddp = torch.load(out)
    state, step = _ddp_state(which, 4, CPU)
    first = weights(state)
    for _ in range(3):
        step(state)
    single = weights(state)
    assert ddp.keys() == single.keys()
    assert any(not torch.equal(first[k], single[k]) for k in single)  # it trained
    for k in single:
        assert torch.allclose(ddp[k], single[k], atol=1e-5, rtol=1e-4), k


def _resume_worker(rank: int, world: int, port: int, tmp: str, mode: str) -> None:
    """One rank of a 2-process CycleGAN run with every per-rank stream on (augmentation,
    image pools, cycle noise from the global RNG): straight to 6 steps, stopped at 3, or
    resumed from that checkpoint."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from pipeline.runtime import setup_runtime, teardown_runtime

    rt = setup_runtime("cpu")
    torch.manual_seed(100 + rank)  # each rank its own global stream, as gan_stage seeds them
    cfg = replace(TINY, flip=True, rotate_deg=5.0, shift=0.06, pool_size=4)
    color, scan = data()
    state = make_state(cfg, 1e-3, rt, color, scan, seed=0)
    ckpt = Checkpointer(Path(tmp) / ("straight" if mode == "straight" else "stopped"), "fp")
    state = fit(state, lambda st: cyclegan_step(st, cfg, rt), cfg, rt, MetricLogger(None), ckpt, progress=False,
                stop_after=3 if mode == "half" else None)
    if mode != "half":
        torch.save(weights(state), Path(tmp) / f"{mode}-{rank}.pt")
    teardown_runtime(rt)


@pytest.mark.slow
def test_a_two_process_run_resumes_each_ranks_own_streams(tmp_path):
    """Killed at step 3 and resumed, a 2-process DDP run ends with the uninterrupted run's
    weights: each rank gets back its own augmentation, pool and noise streams (before, every
    rank resumed with rank 0's)."""
    import torch.multiprocessing as mp

    for mode in ("straight", "half", "resumed"):
        mp.spawn(_resume_worker, args=(2, _free_port(), str(tmp_path), mode), nprocs=2, join=True)
    straight, resumed = torch.load(tmp_path / "straight-0.pt"), torch.load(tmp_path / "resumed-0.pt")
    saved = torch.load(tmp_path / "stopped" / "last.pt", weights_only=False)
    assert len(saved["per_rank"]) == 2
    assert not torch.equal(saved["per_rank"][0]["stateful"]["augment"]["generator"],
                           saved["per_rank"][1]["stateful"]["augment"]["generator"])
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    other = torch.load(tmp_path / "resumed-1.pt")
    assert all(torch.equal(other[k], resumed[k]) for k in resumed)  # the ranks agree


@pytest.mark.slow
@pytest.mark.parametrize("which", ["cyclegan", "colorizer"])
def test_the_compiled_step_matches_eager_on_cpu(which):
    """`compile: default` (torch.compile with inductor's C++ backend here): the same weights
    as eager after 2 steps of both updates, to fp32 tolerance; the compiled wrappers train
    the very parameters the optimisers hold."""
    eager_state, eager_step = _ddp_state(which, 4, CPU)
    for _ in range(2):
        eager_step(eager_state)
    state, step = _ddp_state(which, 4, CPU, "default")
    assert all(type(m).__name__ == "OptimizedModule" for m in state.models.values())
    first = weights(state)
    for _ in range(2):
        step(state)
    compiled, eager = weights(state), weights(eager_state)
    assert any(not torch.equal(first[k], compiled[k]) for k in compiled)  # it trained
    for k in eager:
        assert torch.allclose(compiled[k], eager[k], atol=1e-5, rtol=1e-4), k
