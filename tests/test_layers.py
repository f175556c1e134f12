"""Imports point one way: base <- models <- data, colorist <- evaluation <- training <- stages, cli.

- base: config and its validation, files, digests, device/runtime, pixels, image decoding,
  folder listing, batched inference: what every layer needs and that needs none of them;
- models: the networks, their inputs and their published files, nothing else;
- data: the data stages (sources, metadata, selection, images, pairs, the synthetic data);
- colorist: everything a user's page goes through (whole-page inference, tiling, ink, hints
  and regions, hint files, PSD, chapters, batch files, serve);
- evaluation: the measures and the evaluate stage; it measures pages composed and hinted
  exactly as the colorist composes and hints them, so it may use the colorist;
- training: both GAN stages; the colorizer trains on the colorist's hint encoding (it must
  learn the input it is given) and training may use the evaluation's measures;
- stages/ and pipeline/cli.py drive everything.

A module below never imports one above it: editing the colorist's chapter reader cannot
re-run the data stages, and editing hint spreading cannot retrain the CycleGAN (the DVC
stage deps follow the imports, tests/test_stage_deps.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BASE = ("config", "validation", "files", "digests", "runtime", "pixels", "imaging", "folders", "batched")
PACKAGES = ("models", "data", "colorist", "evaluation", "training")
ALLOWED = {
    "base": {"base"},
    "models": {"base", "models"},
    "data": {"base", "models", "data"},
    "colorist": {"base", "models", "colorist"},
    "evaluation": {"base", "models", "data", "colorist", "evaluation"},
    "training": {"base", "models", "data", "colorist", "evaluation", "training"},
    "driver": {"base", "models", "data", "colorist", "evaluation", "training", "driver"},
}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (`pipeline.colorist.page` -> colorist); None: unknown."""
    parts = module.split(".")
    if parts[0] == "stages" or module == "pipeline.cli":
        return "driver"
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    if parts[1] in PACKAGES:
        return parts[1]
    return "base" if parts[1] in BASE else None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path):
    """(line, imported module) for every `pipeline`/`stages` import in a file, function-local
    ones and relative ones included."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [base]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in ("pipeline", "stages"):
                yield node.lineno, target


def violations(root: Path) -> list[str]:
    out = []
    for path in sorted([*root.glob("pipeline/**/*.py"), *root.glob("stages/*.py")]):
        name = module_name(path, root)
        if name in ("pipeline", "stages"):
            continue
        own = layer_of(name)
        rel = path.relative_to(root)
        if own is None:
            out.append(f"{rel}: in no layer; add it to BASE or put it in one of {', '.join(PACKAGES)}")
            continue
        for line, target in imports(path, root):
            theirs = layer_of(target)
            if theirs is not None and theirs not in ALLOWED[own]:
                out.append(f"{rel}:{line} imports {target} ({theirs}); {own} may import only "
                           f"{', '.join(sorted(ALLOWED[own]))}")
    return out


def test_imports_point_one_way():
    found = violations(ROOT)
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_every_layer_is_reachable_only_from_above():
    """The table itself is a one-way order: no two layers may import each other."""
    for a, allowed in ALLOWED.items():
        for b in allowed - {a}:
            assert a not in ALLOWED[b], f"{a} and {b} may import each other"


@pytest.mark.parametrize("source, message", [
    ("from pipeline.colorist.chapters import natural_key\n",
     "pipeline/data/reader.py:1 imports pipeline.colorist.chapters (colorist); data may import only base, data, models"),
    ("def f():\n    from ..training import loop\n",
     "pipeline/data/reader.py:2 imports pipeline.training (training); data may import only base, data, models"),
])
def test_an_upward_import_is_named_with_its_line(tmp_path, source, message):
    (tmp_path / "pipeline" / "data").mkdir(parents=True)
    (tmp_path / "pipeline" / "data" / "reader.py").write_text(source)
    (tmp_path / "pipeline" / "data" / "fine.py").write_text("from pipeline.models.colorizer import takes_hints\n")
    assert violations(tmp_path) == [message]


def test_a_module_outside_every_layer_is_named(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "helpers.py").write_text("")
    assert violations(tmp_path) == [("pipeline/helpers.py: in no layer; add it to BASE or put it in one of "
                                     "models, data, colorist, evaluation, training")]
