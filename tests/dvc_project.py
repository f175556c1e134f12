"""A tiny copy of the project as a throwaway git + DVC repository, for the tests that drive
the real `dvc` CLI (test_dvc_e2e.py, test_run_cache.py): the git-tracked files, params
shrunk to a few dozen synthetic posts and tens of training steps at 32 px.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SKIP_TOP = {"dvclive", "metrics", "eval", "docs", "benchmarks", "tests", "data", "models"}

TINY = {
    ("source", "synthetic"): {"n_color": 20, "n_scan": 20, "n_distractors": 16, "n_shards": 2},
    ("images",): {"size": 32, "shard_images": 64, "workers": 1},
    ("select",): {"holdout_fraction": 0.2},
    ("cyclegan",): {"steps": 12, "batch_size": 2, "crop": 24, "generator_width": 4, "n_down": 1, "n_res": 1,
                    "disc_width": 4, "groups": 2, "log_every": 4, "sample_every": 6, "checkpoint_every": 6,
                    "device": "cpu", "eval_batch": 16},
    ("colorizer",): {"steps": 12, "batch_size": 2, "crop": 24, "width": 4, "mults": [1, 2], "n_attention": 1,
                     "groups": 2, "disc_width": 4, "log_every": 4, "sample_every": 6, "checkpoint_every": 6,
                     "device": "cpu", "eval_batch": 16},
}


def env() -> dict:
    e = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1",
             GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t.invalid", GIT_COMMITTER_NAME="t",
             GIT_COMMITTER_EMAIL="t@t.invalid", DVC_NO_ANALYTICS="1", PYTHONPATH="")
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, check=False, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], cwd, check)


def make_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not files:  # not a git checkout: nothing to copy from
        pytest.skip("the test copies the project's git-tracked files; run it from a git checkout")
    for f in files:
        top = f.split("/")[0]
        if top in SKIP_TOP and not f.endswith(".gitkeep") and not f.startswith(("data/own/", "models/init/")):
            continue
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    yaml = YAML()
    params = yaml.load((dest / "params.yaml").read_text())
    for path, values in TINY.items():
        node = params
        for key in path:
            node = node[key]
        node.update(values)
    with open(dest / "params.yaml", "w") as f:
        yaml.dump(params, f)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "tiny pipeline"], dest)
    return dest


STAGES = ["source", "metadata", "select", "images", "train_cyclegan", "make_pairs", "train_colorizer@scangen",
          "train_colorizer@greyscale", "evaluate"]


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))
