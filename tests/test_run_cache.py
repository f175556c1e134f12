"""Undoing a mistake costs seconds: every stage's outputs come back from DVC's run-cache.

The issue's sequence with the real `dvc` CLI on a tiny copy of the project: a full
`dvc repro`; the typo `stpes` for `steps` under `cyclegan`; `dvc repro` stops on the params
error (DVC has already removed the stage's outputs: it does so before any command runs);
the typo fixed, `dvc repro` checks the original run's outputs out of the cache instead of
training again. Then, with dvc.lock and every output deleted, each of the nine stages is
restored from the run-cache alone.

Why this needs dvc.yaml's care: DVC saves a run-cache entry only when every `cache: false`
output of a stage is a metric or a plot (dvc/stage/__init__.py, Stage.run: `no_cache_outs`);
those it copies into the cache itself (dvc/stage/cache.py, StageCache._uncached_outs). A
`cache: false` folder under `outs:`, as the DVCLive plots folders once were, turns the
run-cache off for the whole stage, and a restore then finds those outputs in no cache.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from dvc_project import STAGES, dvc, make_repo, ran, run
from ruamel.yaml import YAML

pytestmark = pytest.mark.slow

CACHED_MSG = "Stage '{}' is cached - skipping run, checking out outputs"
TRAIN_CYCLEGAN_OUTS = ["models/scan_generator.pt", "metrics/cyclegan.json", "dvclive/cyclegan/metrics.json",
                       "dvclive/cyclegan/plots"]


def snapshot(root: Path, paths: list[str]) -> dict[str, bytes]:
    """Bytes of every file at or under `paths` (a folder: all its files)."""
    found: dict[str, bytes] = {}
    for rel in paths:
        p = root / rel
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            found[f.relative_to(root).as_posix()] = f.read_bytes()
    return found


def lock_outs(root: Path) -> list[str]:
    """Every output path dvc.lock records, all stages."""
    lock = YAML(typ="safe").load((root / "dvc.lock").read_text())
    return sorted({o["path"] for st in lock["stages"].values() for o in st.get("outs", [])})


def cached(output: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run, checking out outputs", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("runcache"))
    first = dvc("repro", cwd=path)
    assert ran(first.stdout) == set(STAGES)
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-qm", "repro"], path)
    return path


def test_params_typo_then_fix_restores_the_model_from_the_run_cache(project):
    path = project
    before = snapshot(path, TRAIN_CYCLEGAN_OUTS)
    assert "models/scan_generator.pt" in before
    # training is bit-reproducible, so the model's bytes alone cannot tell a restore from a retrain;
    # DVCLive's images/s curve can: throughput differs every run
    assert "dvclive/cyclegan/plots/metrics/images_per_s.tsv" in before
    params = path / "params.yaml"
    good = params.read_text()
    typo = re.sub(r"^(cyclegan:\n(?:(?:  .*|#.*|)\n)*?  )steps:", r"\1stpes:", good, count=1, flags=re.MULTILINE)
    assert typo != good and "  stpes:" in typo
    params.write_text(typo)

    res = dvc("repro", cwd=path, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "cyclegan.stpes" in out  # the params error, naming the key
    assert ran(res.stdout) == {"train_cyclegan"}
    # DVC removed the stage's outputs before its command ran (stage/__init__.py, Stage.run)
    assert not (path / "models" / "scan_generator.pt").exists()

    params.write_text(good)
    t0 = time.monotonic()
    res = dvc("repro", cwd=path)
    seconds = time.monotonic() - t0
    out = res.stdout + res.stderr
    assert CACHED_MSG.format("train_cyclegan") in out, out
    assert ran(out) == set(), f"stages ran again instead of restoring:\n{out}"
    after = snapshot(path, TRAIN_CYCLEGAN_OUTS)
    assert after.keys() == before.keys()
    changed = sorted(k for k in before if before[k] != after[k])
    assert not changed, f"not the original run's bytes: {changed}"
    # the git-tracked (cache: false) metrics and curves are back exactly, dvc.lock untouched
    assert run(["git", "status", "--porcelain"], path).stdout == ""
    assert "up to date" in dvc("status", cwd=path).stdout
    print(f"restored in {seconds:.1f} s")


def test_every_stage_restores_from_the_run_cache_alone(project):
    path = project
    run(["git", "checkout", "--", "params.yaml"], path)
    runs = [p for p in (path / ".dvc" / "cache" / "runs").glob("*/*/*") if p.is_file()]
    assert len(runs) >= len(STAGES), f"{len(runs)} run-cache entries for {len(STAGES)} stages"
    outs = lock_outs(path)
    before = snapshot(path, outs)
    (path / "dvc.lock").unlink()
    for rel in outs:
        p = path / rel
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()

    res = dvc("repro", cwd=path)
    out = res.stdout + res.stderr
    assert ran(out) == set(), f"stages ran again instead of restoring:\n{out}"
    assert cached(out) == set(STAGES), out
    after = snapshot(path, outs)
    assert after == before
    assert run(["git", "status", "--porcelain"], path).stdout == ""  # dvc.lock and the tracked files as committed
