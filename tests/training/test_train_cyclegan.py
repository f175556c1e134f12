"""The train_cyclegan and make_pairs stages as a user runs them: SIGKILL + re-run resumes
to the same model; pairs line up with the colored shards."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import kill_at_checkpoint, rerun_resumes, same_weights

pytestmark = pytest.mark.slow  # `make test` runs them; `-m 'not slow'` skips them

ROOT = Path(__file__).resolve().parents[2]

PARAMS = """
lr: 0.001
seed: 3
cyclegan:
  steps: 60
  batch_size: 2
  crop: 0
  generator_width: 4
  n_down: 1
  n_res: 1
  disc_width: 4
  groups: 2
  log_every: 5
  sample_every: 30
  checkpoint_every: 5
  device: cpu
  eval_batch: 8
"""


@pytest.fixture()
def project(tmp_path):
    rng = np.random.default_rng(0)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    arrays = {
        "color-train-00000": rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8),
        "scan-train-00000": rng.integers(0, 256, (12, 32, 32, 1), dtype=np.uint8),
        "color-holdout-00000": rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
        "color-holdout-gt-00000": rng.integers(0, 256, (5, 32, 32, 1), dtype=np.uint8),
    }
    for name, arr in arrays.items():
        np.save(prepared / f"{name}.npy", arr)
    pq.write_table(pa.table({"id": [1]}), prepared / "index.parquet")
    (tmp_path / "params.yaml").write_text(PARAMS)
    return tmp_path


def stage_cmd(model: str, ckpt: str, live: str) -> list[str]:
    return [sys.executable, "-m", "stages.train_cyclegan", "--prepared", "prepared", "--model", model,
            "--metrics", f"{model}.json", "--live", live, "--checkpoints", ckpt]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                OMP_NUM_THREADS="1")


def test_sigkill_then_rerun_resumes_to_the_same_model(project):
    subprocess.run(stage_cmd("straight.pt", "ck1", "live1"), cwd=project, env=env(), check=True, timeout=600,
                   capture_output=True)
    proc = subprocess.Popen(stage_cmd("resumed.pt", "ck2", "live2"), cwd=project, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt = project / "ck2" / "last.pt"
    kill_at_checkpoint(proc, ckpt)
    assert not (project / "resumed.pt").exists()
    rerun_resumes(stage_cmd("resumed.pt", "ck2", "live2"), project, env(), project / "live2")
    assert same_weights(project / "straight.pt", project / "resumed.pt")
    assert not ckpt.exists()  # cleared once the model is published
    # the loss curves are those of the uninterrupted run, restored from beside the checkpoint
    for tsv in (project / "live1" / "plots" / "metrics").rglob("*.tsv"):
        if tsv.name != "images_per_s.tsv":
            assert (project / "live2" / tsv.relative_to(project / "live1")).read_text() == tsv.read_text(), tsv
    metrics = (project / "resumed.pt.json").read_text()
    assert "scangen_ssim" in metrics and "greyscale_ssim" in metrics


def test_make_pairs_aligns_with_color_shards(project):
    subprocess.run(stage_cmd("m.pt", "ck", "live"), cwd=project, env=env(), check=True, timeout=600,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "stages.make_pairs", "--model", "m.pt", "--prepared", "prepared",
                    "--out", "pairs", "--metrics", "pairs.json"], cwd=project, env=env(), check=True, timeout=600)
    from pipeline.batched import generate_scans
    from pipeline.data.pairs import load_pairs
    from pipeline.models.scan_generator import load_scan_generator
    from pipeline.runtime import Runtime

    scans, colors = load_pairs(project / "prepared", project / "pairs", "train")
    assert scans.shape == (12, 32, 32, 1) and colors.shape == (12, 32, 32, 3)
    model = load_scan_generator(project / "m.pt")
    again = generate_scans(model, colors[3:5], Runtime(device=torch.device("cpu")))
    assert np.array_equal(again, scans[3:5])  # row i of the pairs is scangen(color row i)
    assert not list((project / "pairs").glob("*gt*"))
