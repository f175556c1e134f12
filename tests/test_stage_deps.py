"""tools/stage_deps.py: every stage's `deps:` list exactly the code its script may import.

A missing dep leaves `dvc repro` blind to a change in that module (stale outputs); an extra
one re-runs the stage for nothing. The walker itself is tested on a tiny synthetic repo.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool() -> ModuleType:
    """tools/ is not a package: load the script as a module by its path."""
    spec = importlib.util.spec_from_file_location("stage_deps", ROOT / "tools" / "stage_deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


sd = _load_tool()


# --------------------------------------------------------------------------- the real repo


def test_dvc_yaml_deps_match_imports():
    drifted = sd.drift(ROOT / "dvc.yaml", ROOT)
    lines = []
    for stage, (missing, extra) in sorted(drifted.items()):
        lines += [f"  stage {stage}: missing {m} (imported, not in deps)" for m in sorted(missing)]
        lines += [f"  stage {stage}: extra {e} (in deps, not imported)" for e in sorted(extra)]
    assert not drifted, ("dvc.yaml deps differ from what the stage scripts import:\n" + "\n".join(lines)
                         + "\nrun `python tools/stage_deps.py --write` to rewrite them")


HINT_CODE = ("pipeline/colorist/", "pipeline/models/colorizer.py", "pipeline/training/hint_sampler.py",
             "pipeline/training/colorizer_step.py")


def test_stages_depend_only_on_what_they_run():
    """The data stages re-run for no colorist change (a chapter reader, a PSD writer), and the
    CycleGAN is not retrained for a change to hints or the colorizer."""
    deps = sd.expected_deps(ROOT / "dvc.yaml", ROOT)
    for stage in ("source", "metadata", "select", "images"):
        assert not [d for d in deps[stage] if d.startswith("pipeline/colorist/")], stage
    for stage in ("source", "metadata", "select", "images", "train_cyclegan", "make_pairs"):
        assert not [d for d in deps[stage] if d.startswith(HINT_CODE)], stage
    assert "pipeline/colorist/hints.py" in deps["train_colorizer@scangen"]  # the colorizer learns the encoding


def test_package_inits_hold_no_code():
    bad = [p.relative_to(ROOT).as_posix() for p in sd.nontrivial_inits(ROOT)]
    assert not bad, (f"{bad}: package __init__.py files are not tracked as stage deps, so they "
                     "must hold nothing but a docstring; move the code into a module")


# --------------------------------------------------------------------------- a synthetic repo

FILES = {
    "pipeline/__init__.py": '"""The fake pipeline."""\n',
    "pipeline/config.py": "VALUE = 1\n",
    "pipeline/files.py": "def write_json(): ...\n",
    "pipeline/unused.py": "import pipeline.config\n",
    "pipeline/data/__init__.py": "",
    "pipeline/data/metadata.py": """\
        from . import danbooru
        from .select import keep


        def build(): ...
        """,
    "pipeline/data/danbooru.py": "from ..files import write_json\n",
    "pipeline/data/select.py": "def keep(): ...\n",
    "pipeline/models/__init__.py": "",
    "pipeline/models/layers.py": "",
    "pipeline/models/nets/__init__.py": '"""Nested sub-package."""\n',
    "pipeline/models/nets/unet.py": """\
        def build():
            import pipeline.models.layers as layers  # function-local
            return layers
        """,
    "pipeline/training/__init__.py": "",
    "pipeline/training/loop.py": """\
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from pipeline.models.nets import unet  # from package import submodule, inside if

        try:
            from pipeline.config import VALUE
        except ImportError:
            VALUE = 0


        def fit(): ...
        """,
    "stages/__init__.py": "",
    "stages/common.py": "from pipeline import config\n",
    "stages/prep.py": """\
        import json

        from pipeline.data.metadata import build
        from pipeline.files import write_json
        """,
    "stages/train.py": """\
        from pipeline.training.loop import fit


        def main():
            from stages.common import config
        """,
}

PREP = ["stages/prep.py", "pipeline/data/danbooru.py", "pipeline/data/metadata.py", "pipeline/data/select.py",
        "pipeline/files.py"]
TRAIN = ["stages/train.py", "pipeline/config.py", "pipeline/models/layers.py", "pipeline/models/nets/unet.py",
         "pipeline/training/loop.py", "stages/common.py"]

DVC_YAML = """\
# The fake pipeline; this comment must survive --write.
stages:
  prep:
    cmd: python -m stages.prep --out data/prepared
    deps:
{prep}
      - data/raw
    outs:
      - data/prepared
  train:
    foreach:
      a:
        inputs: data/prepared
      b:
        inputs: data/raw
    do:
      cmd: python stages/train.py --variant ${{key}} --inputs ${{item.inputs}}
      deps:
{train}
        - ${{item.inputs}}  # the instance's data
      outs:
        - models/${{key}}.pt
"""


def _dvc_yaml(prep: list[str], train: list[str]) -> str:
    return DVC_YAML.format(prep="\n".join(f"      - {d}" for d in prep),
                           train="\n".join(f"        - {d}" for d in train))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "dvc.yaml").write_text(_dvc_yaml(PREP, TRAIN))
    return tmp_path


def test_stage_scripts_expand_foreach(repo):
    assert sd.stage_scripts(repo / "dvc.yaml") == {"prep": repo / "stages/prep.py",
                                                   "train@a": repo / "stages/train.py",
                                                   "train@b": repo / "stages/train.py"}


def test_imported_modules_are_exact(repo):
    assert sd.imported_modules(repo / "stages/prep.py", repo) == set(PREP[1:])
    assert sd.imported_modules(repo / "stages/train.py", repo) == set(TRAIN[1:])


def test_declared_deps_keep_only_code(repo):
    assert sd.declared_deps(repo / "dvc.yaml") == {"prep": set(PREP), "train@a": set(TRAIN), "train@b": set(TRAIN)}


def test_in_sync_yaml_has_no_drift(repo):
    assert sd.expected_deps(repo / "dvc.yaml", repo)["train@b"] == set(TRAIN)
    assert sd.drift(repo / "dvc.yaml", repo) == {}


def test_removed_dep_is_reported_missing_for_that_stage_only(repo):
    (repo / "dvc.yaml").write_text(_dvc_yaml([d for d in PREP if d != "pipeline/data/select.py"], TRAIN))
    assert sd.drift(repo / "dvc.yaml", repo) == {"prep": ({"pipeline/data/select.py"}, set())}


def test_removed_dep_of_foreach_stage_is_missing_in_every_instance(repo):
    (repo / "dvc.yaml").write_text(_dvc_yaml(PREP, [d for d in TRAIN if d != "pipeline/models/layers.py"]))
    missing = ({"pipeline/models/layers.py"}, set())
    assert sd.drift(repo / "dvc.yaml", repo) == {"train@a": missing, "train@b": missing}


def test_extra_dep_is_reported_extra(repo):
    (repo / "dvc.yaml").write_text(_dvc_yaml(PREP + ["pipeline/unused.py"], TRAIN))
    assert sd.drift(repo / "dvc.yaml", repo) == {"prep": (set(), {"pipeline/unused.py"})}


@pytest.mark.parametrize("line, module", [
    ("from pipeline.nonexistent import x", "pipeline.nonexistent"),
    ("import pipeline.data.gone", "pipeline.data.gone"),
    ("from pipeline.data import gone", "pipeline.data.gone"),  # neither a submodule nor in __init__
    ("from ...too_far import x", "...too_far"),
])
def test_unresolvable_import_names_the_file_and_module(repo, line, module):
    (repo / "pipeline/data/select.py").write_text(f"def keep():\n    {line}\n")
    with pytest.raises(sd.UnresolvedImportError, match=r"select\.py:2: .*" + module.replace(".", r"\.")) as info:
        sd.drift(repo / "dvc.yaml", repo)
    assert info.value.importer == (repo / "pipeline/data/select.py").resolve() and info.value.module == module


def test_nontrivial_inits_flags_code_not_docstrings(repo):
    assert sd.nontrivial_inits(repo) == []
    (repo / "pipeline/models/nets/__init__.py").write_text('"""Doc."""\nfrom .unet import build\n')
    assert sd.nontrivial_inits(repo) == [repo / "pipeline/models/nets/__init__.py"]


def test_report_exits_1_naming_stage_and_module(repo, capsys):
    (repo / "dvc.yaml").write_text(_dvc_yaml(PREP[:-1] + ["pipeline/unused.py"], TRAIN))
    assert sd.main(["--dvc-yaml", str(repo / "dvc.yaml"), "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "stage prep: missing pipeline/files.py (imported, not in deps)" in out
    assert "stage prep: extra pipeline/unused.py (in deps, not imported)" in out
    assert "stage train@a: ok" in out


def _run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "tools/stage_deps.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_write_fixes_drift_and_keeps_comments(repo):
    dvc_yaml = repo / "dvc.yaml"
    # drift in both stages, and code deps out of canonical order
    dvc_yaml.write_text(_dvc_yaml(["pipeline/unused.py", "stages/prep.py", "pipeline/files.py"],
                                  ["pipeline/config.py", "stages/train.py"]))
    assert set(sd.drift(dvc_yaml, repo)) == {"prep", "train@a", "train@b"}

    done = _run_tool("--dvc-yaml", str(dvc_yaml), "--root", str(repo), "--write")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rewrote deps of: prep, train" in done.stdout
    assert sd.drift(dvc_yaml, repo) == {}
    # script first, modules sorted, data deps after; comments and the rest untouched
    assert dvc_yaml.read_text() == _dvc_yaml(PREP, TRAIN)
    assert sd.write_deps(dvc_yaml, repo) == []  # idempotent


def test_namespace_package_and_init_names(repo):
    (repo / "pipeline/ns").mkdir()  # no __init__.py: a namespace package
    (repo / "pipeline/ns/mod.py").write_text("")
    (repo / "pipeline/data/__init__.py").write_text('"""Doc."""\nNAME = 1\n')
    (repo / "stages/prep.py").write_text("from pipeline.ns import mod\nfrom pipeline.data import NAME\n")
    assert sd.imported_modules(repo / "stages/prep.py", repo) == {"pipeline/ns/mod.py"}
