"""Fine-tuning from a published model (`*.init_from`): the weights arrive, a mismatched or
corrupt file is refused by name, the params check, and a killed fine-tune resumes exactly."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import kill_at_checkpoint, rerun_resumes, same_weights

from pipeline.config import (
    ColorizerConfig,
    CycleGANConfig,
    ParamsError,
    params_from_dict,
)
from pipeline.models.colorizer import publish_colorizer
from pipeline.models.scan_generator import publish_scan_generator
from pipeline.runtime import Runtime
from pipeline.training.colorizer_step import build_colorizer, make_state
from pipeline.training.cyclegan_step import build_cyclegan
from pipeline.training.cyclegan_step import make_state as make_cyclegan_state
from pipeline.training.init_from import InitFromError, file_digest

ROOT = Path(__file__).resolve().parents[2]
CPU = Runtime(device=torch.device("cpu"))
TINY = ColorizerConfig(steps=4, batch_size=2, crop=0, width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=4,
                       hints_max=4)
TINY_GAN = CycleGANConfig(steps=4, batch_size=2, crop=0, generator_width=4, n_down=1, n_res=1, disc_width=4, groups=2)
DATA = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


def published_colorizer(path: Path, cfg: ColorizerConfig = TINY, seed: int = 5) -> Path:
    torch.manual_seed(seed)
    publish_colorizer(build_colorizer(cfg)[0], path, image_size=32, steps=7, variant="scangen")
    return path


def test_colorizer_starts_from_the_file_s_weights(tmp_path):
    path = published_colorizer(tmp_path / "released.pt")
    state = make_state(replace(TINY, init_from=str(path)), 1e-3, CPU, DATA[..., :1], DATA, seed=0)
    saved = torch.load(path, weights_only=True)["state_dict"]
    ours = state.models["G"].state_dict()
    assert all(torch.equal(ours[k], saved[k]) for k in saved)
    fresh = make_state(TINY, 1e-3, CPU, DATA[..., :1], DATA, seed=0).models["G"].state_dict()
    assert not all(torch.equal(fresh[k], saved[k]) for k in saved)  # the seed alone would not give these


def test_scan_generator_starts_from_the_file_s_weights(tmp_path):
    torch.manual_seed(9)
    publish_scan_generator(build_cyclegan(TINY_GAN)[0], tmp_path / "scan.pt", image_size=32, steps=3)
    state = make_cyclegan_state(replace(TINY_GAN, init_from=str(tmp_path / "scan.pt")), 1e-3, CPU, DATA,
                                DATA[..., :1], seed=0)
    saved = torch.load(tmp_path / "scan.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(state.models["G_scan"].state_dict()[k], saved[k]) for k in saved)
    bigger = replace(TINY_GAN, generator_width=8, init_from=str(tmp_path / "scan.pt"))
    with pytest.raises(InitFromError, match=r"width: file 4, params 8 \(cyclegan.generator_width\)"):
        make_cyclegan_state(bigger, 1e-3, CPU, DATA, DATA[..., :1], seed=0)


def test_mismatched_architecture_names_every_differing_key(tmp_path):
    path = published_colorizer(tmp_path / "released.pt")
    other = replace(TINY, width=8, hints_max=0, init_from=str(path))
    with pytest.raises(InitFromError) as err:
        make_state(other, 1e-3, CPU, DATA[..., :1], DATA, seed=0)
    message = str(err.value)
    assert "released.pt" in message and "does not match the params" in message
    assert "width: file 4, params 8 (colorizer.width)" in message
    assert "in_channels: file 5, params 1 (colorizer.hints_max" in message
    assert "mults" not in message  # only what differs


@pytest.mark.parametrize("content, expected", [
    (b"not a torch file at all", "not a readable model file"),
    (None, "no colorizer here"),
])
def test_corrupt_or_missing_file_is_refused_by_name(tmp_path, content, expected):
    path = tmp_path / "released.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InitFromError, match=expected) as err:
        make_state(replace(TINY, init_from=str(path)), 1e-3, CPU, DATA[..., :1], DATA, seed=0)
    assert "colorizer.init_from = " in str(err.value) and str(path) in str(err.value)


def test_a_scan_generator_file_is_not_a_colorizer(tmp_path):
    torch.manual_seed(0)
    publish_scan_generator(build_cyclegan(TINY_GAN)[0], tmp_path / "scan.pt", image_size=32, steps=3)
    with pytest.raises(InitFromError, match="not a OnePunchGAN colorizer"):
        make_state(replace(TINY, init_from=str(tmp_path / "scan.pt")), 1e-3, CPU, DATA[..., :1], DATA, seed=0)


@pytest.mark.parametrize("section, value, match", [
    ({"init_from": "released/colorizer.pt"}, "released/colorizer.pt", "under models/init/"),
    ({"init_from": "models/init/../colorizer.pt"}, "models/init/../colorizer.pt", "under models/init/"),
    ({"init_from": "models/init/colorizer.ckpt"}, "models/init/colorizer.ckpt", "under models/init/"),
    ({"steps": 0}, 0, "0 only with init_from"),
])
def test_params_check_init_from_and_steps(section, value, match):
    for name in ("colorizer", "cyclegan"):
        with pytest.raises(ParamsError, match=match) as err:
            params_from_dict({name: section})
        assert f"{name}." in str(err.value) and repr(value) in str(err.value)
    ok = params_from_dict({"colorizer": {"init_from": "models/init/colorizer.pt", "steps": 0}})
    assert ok.colorizer.steps == 0 and ok.colorizer.init_from == "models/init/colorizer.pt"


PARAMS = """
lr: 0.001
seed: 2
colorizer:
  steps: 40
  batch_size: 2
  crop: 24
  width: 4
  mults: [1, 2]
  n_attention: 1
  groups: 2
  disc_width: 4
  hints_max: 4
  log_every: 5
  sample_every: 20
  checkpoint_every: 5
  device: cpu
  eval_batch: 4
  init_from: models/init/colorizer.pt
"""


def stage_cmd(model: str, ckpt: str, live: str) -> list[str]:
    return [sys.executable, "-m", "stages.train_colorizer", "--variant", "greyscale", "--prepared", "prepared",
            "--model", model, "--metrics", f"{model}.json", "--live", live, "--checkpoints", ckpt]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                OMP_NUM_THREADS="1")


def fine_tune_project(tmp_path: Path, params: str, seed: int) -> Path:
    """A stage's working folder: random prepared shards, params.yaml, and a released
    colorizer under models/init/ (returned) for the params to start from."""
    rng = np.random.default_rng(seed)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    np.save(prepared / "color-train-00000.npy", rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    np.save(prepared / "color-holdout-00000.npy", rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    pq.write_table(pa.table({"id": [1]}), prepared / "index.parquet")
    (tmp_path / "params.yaml").write_text(params)
    return published_colorizer(tmp_path / "models" / "init" / "colorizer.pt", replace(TINY, crop=24))


@pytest.mark.slow
def test_sigkill_of_a_fine_tune_then_rerun_resumes_to_the_same_model(tmp_path):
    init = fine_tune_project(tmp_path, PARAMS, seed=0)
    subprocess.run(stage_cmd("straight.pt", "ck1", "live1"), cwd=tmp_path, env=env(), check=True, timeout=600,
                   capture_output=True)
    proc = subprocess.Popen(stage_cmd("resumed.pt", "ck2", "live2"), cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    kill_at_checkpoint(proc, tmp_path / "ck2" / "last.pt")
    rerun_resumes(stage_cmd("resumed.pt", "ck2", "live2"), tmp_path, env(), tmp_path / "live2")
    assert same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt")
    assert not same_weights(tmp_path / "straight.pt", init)  # it trained
    metrics = json.loads((tmp_path / "resumed.pt.json").read_text())["colorizer"]
    assert metrics["init_from"] == "models/init/colorizer.pt" and metrics["init_sha256"] == file_digest(init)
    # a kill, then another file under the same name: the old file's checkpoint is not resumed
    proc = subprocess.Popen(stage_cmd("other.pt", "ck3", "live3"), cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    kill_at_checkpoint(proc, tmp_path / "ck3" / "last.pt")
    published_colorizer(init, replace(TINY, crop=24), seed=6)
    shutil.rmtree(tmp_path / "live3")
    out = subprocess.run(stage_cmd("other.pt", "ck3", "live3"), cwd=tmp_path, env=env(), check=True,
                         timeout=600, capture_output=True, text=True)
    assert "resuming from" not in out.stdout + out.stderr
    assert json.loads((tmp_path / "other.pt.json").read_text())["colorizer"]["init_sha256"] == file_digest(init)


@pytest.mark.slow
def test_steps_0_publishes_the_file_as_it_is(tmp_path):
    """`steps: 0` with init_from (the README's "use it as it is"): the stage publishes the
    released weights unchanged, records where they came from, and draws one sample grid."""
    init = fine_tune_project(tmp_path, PARAMS.replace("  steps: 40\n", "  steps: 0\n"), seed=1)
    subprocess.run(stage_cmd("as_is.pt", "ck", "live"), cwd=tmp_path, env=env(), check=True, timeout=600,
                   capture_output=True)
    assert same_weights(tmp_path / "as_is.pt", init)
    metrics = json.loads((tmp_path / "as_is.pt.json").read_text())["colorizer"]
    assert metrics["steps"] == 0 and metrics["init_sha256"] == file_digest(init)
    assert len(list((tmp_path / "live").rglob("*.png"))) == 1
