"""The CUDA path: bf16 autocast + channels_last training, resume, publishing and inference
on a GPU, checked against the CPU fp32 path.

Every test here needs a CUDA device; on a machine without one (CI) they are skipped.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.batched import generate_scans
from pipeline.colorist.page import colorize_image
from pipeline.config import ColorizerConfig, CycleGANConfig, load_params
from pipeline.models.colorizer import load_colorizer, publish_colorizer
from pipeline.models.scan_generator import load_scan_generator, publish_scan_generator
from pipeline.runtime import Runtime, setup_runtime, unwrap
from pipeline.training.checkpoints import Checkpointer
from pipeline.training.colorizer_step import colorizer_step
from pipeline.training.colorizer_step import make_state as make_colorizer_state
from pipeline.training.cyclegan_step import cyclegan_step, make_state
from pipeline.training.loop import fit
from pipeline.training.metric_logger import MetricLogger

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible to torch)")

ROOT = Path(__file__).resolve().parents[2]
CPU = Runtime(device=torch.device("cpu"))
TINY = CycleGANConfig(steps=6, batch_size=2, crop=0, generator_width=8, n_down=1, n_res=1, disc_width=8, groups=2,
                      log_every=2, checkpoint_every=2, sample_every=100)
TINY_C = ColorizerConfig(steps=6, batch_size=2, crop=0, hints_max=0, width=8, mults=[1, 2], n_attention=1, groups=2, disc_width=8,
                         log_every=2, checkpoint_every=2, sample_every=100)


@pytest.fixture(scope="module")
def cuda():
    return setup_runtime("cuda")


def data(n=10, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
            rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8))


def weights(state):
    return {f"{n}.{k}": v.detach().float().cpu().clone()
            for n, m in state.models.items() for k, v in unwrap(m).state_dict().items()}


def test_runtime_is_bf16_channels_last_on_cuda(cuda):
    assert cuda.device.type == "cuda" and cuda.amp_dtype == torch.bfloat16 and cuda.channels_last
    assert setup_runtime("auto").device.type == "cuda"


@pytest.mark.parametrize("model", ["cyclegan", "colorizer"])
def test_steps_on_cuda_train_every_parameter_in_fp32_master_weights(cuda, model):
    color, scan = data()
    if model == "cyclegan":
        state, step = make_state(TINY, 1e-3, cuda, color, scan, seed=0), cyclegan_step
        cfg = TINY
    else:
        state, step = make_colorizer_state(TINY_C, 1e-3, cuda, scan, color, seed=0), colorizer_step
        cfg = TINY_C
    before = weights(state)
    for _ in range(3):
        losses = step(state, cfg, cuda)
        assert all(np.isfinite(v) for v in losses.values()), losses
    after = weights(state)
    for name, m in state.models.items():
        for k, p in m.named_parameters():
            assert p.device.type == "cuda" and p.dtype == torch.float32, (name, k)
            if p.dim() == 4:
                assert p.is_contiguous(memory_format=torch.channels_last), (name, k)
            # attention gammas start at 0 and may stay tiny, but every tensor must move
            assert not torch.equal(before[f"{name}.{k}"], after[f"{name}.{k}"]), f"{name}.{k} never updated"


def test_first_step_on_cuda_fp32_matches_cpu(cuda):
    """Same seed, same data, same step: the device changes nothing but rounding."""
    cfg = replace(TINY, cycle_noise=0.0)  # randn_like draws from the device's own generator
    fp32_cuda = Runtime(device=cuda.device, channels_last=True)
    color, scan = data()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        a = cyclegan_step(make_state(cfg, 2e-4, CPU, color, scan, seed=0), cfg, CPU)
        b = cyclegan_step(make_state(cfg, 2e-4, fp32_cuda, color, scan, seed=0), cfg, fp32_cuda)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-4), k


def test_bf16_step_stays_close_to_fp32(cuda):
    cfg = replace(TINY, cycle_noise=0.0)
    color, scan = data()
    fp32 = Runtime(device=cuda.device)
    a = cyclegan_step(make_state(cfg, 2e-4, fp32, color, scan, seed=0), cfg, fp32)
    b = cyclegan_step(make_state(cfg, 2e-4, cuda, color, scan, seed=0), cfg, cuda)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=0.03, abs=2e-3), k


def test_resume_on_cuda_continues_the_run(cuda, tmp_path):
    color, scan = data()
    # image pools full by the checkpoint: the resumed pools' images (loaded on the CPU) must
    # come back on the GPU when returned (a mixed-device concat crashed that resume)
    cfg = loop = replace(TINY, pool_size=2)

    def run(ckpt, stop_after=None):
        state = make_state(cfg, 1e-3, cuda, color, scan, seed=0)
        return fit(state, lambda st: cyclegan_step(st, cfg, cuda), loop, cuda, MetricLogger(None),
                   Checkpointer(tmp_path / ckpt, "fp"), progress=False, stop_after=stop_after)

    straight = run("a")
    assert run("b", stop_after=3).step == 3
    resumed = run("b")
    assert resumed.step == straight.step == TINY.steps
    a, b = weights(straight), weights(resumed)
    init = weights(make_state(cfg, 1e-3, cuda, color, scan, seed=0))
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    moved = torch.cat([(a[k] - init[k]).abs().flatten() for k in a])
    # Not bit-identical on CUDA: cuDNN's kernels (autotuned per process, atomics in some
    # backward passes) round differently, and Adam turns any change in a near-zero gradient
    # into an update of up to ±lr (seen: max 2.2e-3 at lr 1e-3). A resume that lost state
    # (RNG, optimiser moments, sampler) moves every weight differently, so judge the
    # typical weight: the median difference must be far below the median distance trained.
    assert diff.median() < 0.05 * moved.median(), (diff.median().item(), moved.median().item())


def test_models_trained_on_cuda_publish_and_run_on_cpu(cuda, tmp_path):
    color, scan = data()
    state = make_state(TINY, 1e-3, cuda, color, scan, seed=0)
    for _ in range(2):
        cyclegan_step(state, TINY, cuda)
    publish_scan_generator(state.models["G_scan"], tmp_path / "s.pt", image_size=32, steps=2)
    on_cpu = generate_scans(load_scan_generator(tmp_path / "s.pt", "cpu"), color, CPU)
    on_gpu = generate_scans(state.models["G_scan"], color, cuda)  # bf16 autocast, as make_pairs runs it
    diff = np.abs(on_cpu.astype(int) - on_gpu.astype(int))
    assert diff.mean() < 2.0 and diff.max() <= 16, (diff.mean(), diff.max())

    cstate = make_colorizer_state(TINY_C, 1e-3, cuda, scan, color, seed=0)
    colorizer_step(cstate, TINY_C, cuda)
    publish_colorizer(cstate.models["G"], tmp_path / "c.pt", image_size=32, steps=1, variant="scangen")
    from PIL import Image

    page = Image.fromarray(np.random.default_rng(1).integers(0, 256, (70, 50), dtype=np.uint8)).convert("RGB")
    outs = [np.asarray(colorize_image(load_colorizer(tmp_path / "c.pt", dev), None, page, 32, torch.device(dev),
                                      "scan"), dtype=int) for dev in ("cpu", "cuda")]
    assert outs[0].shape == outs[1].shape == (70, 50, 3)
    assert np.abs(outs[0] - outs[1]).mean() < 1.0


class Killed(Exception):
    """What a kill after step 8 looks like to the stage: it stops, with its checkpoint."""


def test_scan_stage_runs_on_cuda_and_resumes(tmp_path, monkeypatch):
    """The stage function itself with device: cuda, interrupted and re-run."""
    from pipeline.training import gan_stage
    from pipeline.training.train_cyclegan import train_scan_generator

    real_fit = gan_stage.fit

    def fit_killed_at_8(*args, **kwargs):
        real_fit(*args, **kwargs, stop_after=8)
        raise Killed

    rng = np.random.default_rng(0)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for name, shape in {"color-train-00000": (12, 32, 32, 3), "scan-train-00000": (12, 32, 32, 1),
                        "color-holdout-00000": (5, 32, 32, 3), "color-holdout-gt-00000": (5, 32, 32, 1)}.items():
        np.save(prepared / f"{name}.npy", rng.integers(0, 256, shape, dtype=np.uint8))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1]}), prepared / "index.parquet")
    (tmp_path / "params.yaml").write_text(
        "lr: 0.001\nseed: 3\ncyclegan:\n  steps: 20\n  batch_size: 2\n  crop: 0\n  generator_width: 4\n  n_down: 1\n"
        "  n_res: 1\n  disc_width: 4\n  groups: 2\n  log_every: 5\n  sample_every: 10\n  checkpoint_every: 5\n"
        "  device: cuda\n  eval_batch: 8\n")
    params = load_params(tmp_path / "params.yaml")
    args = (params, prepared, tmp_path / "scan.pt", tmp_path / "live", tmp_path / "ckpt")
    monkeypatch.setattr(gan_stage, "fit", fit_killed_at_8)
    with pytest.raises(Killed):
        train_scan_generator(*args)
    assert Checkpointer(tmp_path / "ckpt", "x").path.exists() and not (tmp_path / "scan.pt").exists()
    monkeypatch.setattr(gan_stage, "fit", real_fit)
    metrics = train_scan_generator(*args)
    assert metrics["steps"] == 20 and 0 < metrics["scangen_l1"] < 1
    assert torch.load(tmp_path / "scan.pt", weights_only=True)["trained_steps"] == 20
    assert not (tmp_path / "ckpt" / "last.pt").exists()


def _two_steps(which: str, rt: Runtime, compile_mode: str = "none") -> dict:
    color, scan = data()
    if which == "cyclegan":
        cfg = replace(TINY, batch_size=4, pool_size=0, flip=False, rotate_deg=0.0, shift=0.0, cycle_noise=0.0,
                      compile=compile_mode)
        state, step = make_state(cfg, 1e-3, rt, color, scan, seed=0), cyclegan_step
    else:
        cfg = replace(TINY_C, batch_size=4, flip=False, rotate_deg=0.0, shift=0.0, compile=compile_mode)
        state, step = make_colorizer_state(cfg, 1e-3, rt, scan, color, seed=0), colorizer_step
    for _ in range(2):
        step(state, cfg, rt)
    return state


@pytest.mark.parametrize("which", ["cyclegan", "colorizer"])
def test_ddp_with_one_nccl_process_matches_the_bare_networks(cuda, which):
    """The DDP path on NCCL (a 1-rank group): wrapped networks, the weights of the bare ones
    after 2 bf16 steps (within bf16 noise: the all-reduce divides by the world size in fp32)."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    bare = weights(_two_steps(which, cuda))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            device_id=cuda.device)
    try:
        state = _two_steps(which, cuda)
        assert all(isinstance(m, DistributedDataParallel) for m in state.models.values())
        ddp = weights(state)
    finally:
        dist.destroy_process_group()
    for k in bare:
        assert torch.allclose(ddp[k], bare[k], atol=2e-3, rtol=1e-2), k


@pytest.mark.parametrize("which", ["cyclegan", "colorizer"])
def test_the_compiled_step_on_cuda_stays_close_to_eager(cuda, which):
    """`compile: max-autotune-no-cudagraphs` (what the GPU configs use) on CUDA in bf16: the
    weights after 2 steps within bf16 noise of eager."""
    eager = weights(_two_steps(which, cuda))
    state = _two_steps(which, cuda, "max-autotune-no-cudagraphs")
    assert all(type(m).__name__ == "OptimizedModule" for m in state.models.values())
    compiled = weights(state)
    for k in eager:
        assert torch.allclose(compiled[k], eager[k], atol=2e-3, rtol=1e-2), k


def test_cuda_training_reads_batches_ahead_into_pinned_memory(cuda):
    """On CUDA the samplers prefetch into page-locked memory (asynchronous copies to the
    GPU) and hand out the bare sampler's batches."""
    from pipeline.training.samplers import BatchSampler, PairSampler, Prefetcher

    colors = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    state = make_colorizer_state(TINY_C, 2e-4, cuda, colors[..., :1].copy(), colors, seed=0)
    pairs = state.stateful["pairs"]
    assert isinstance(pairs, Prefetcher) and pairs.pin
    scans, cols = pairs.next()
    assert scans.is_pinned() and cols.is_pinned()
    bare = PairSampler(colors[..., :1].copy(), colors, TINY_C.batch_size, seed=1)
    assert all(torch.equal(a, b) for a, b in zip((scans, cols), bare.next()))
    scan_state = make_state(TINY, 2e-4, cuda, colors, colors[..., :1].copy(), seed=0)
    assert scan_state.stateful["color"].next().is_pinned()
    assert torch.equal(Prefetcher(BatchSampler(colors, 2, seed=3), pin=True).next(), BatchSampler(colors, 2, seed=3).next())
