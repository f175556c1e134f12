"""Check (or rewrite) the code deps of each DVC stage against what its script imports.

`dvc repro` re-runs a stage only when one of its listed deps changes, so a stage whose
`deps:` miss a `pipeline/` module it imports is silently stale after that module changes,
and a listed module it no longer imports re-runs it for nothing. This tool computes, for
every stage in dvc.yaml, the exact set of code files it may execute -- its `stages/` script
plus every `pipeline/` (or `stages/`) module reachable through `import` statements -- and
compares it with the `pipeline/` and `stages/` entries of the stage's `deps:`.

How imports are found: statically, with `ast`, anywhere in a file (module level, inside
functions, `if`/`try` blocks, `if TYPE_CHECKING:`), so the set over-approximates what one
run imports, never under-approximates it. Dynamic imports (`importlib.import_module`) are
not seen. An import of a `pipeline`/`stages` module that does not resolve to a file is an
error, not a silent skip, because skipping it would under-report deps.

Package `__init__.py` files are not listed as deps (every stage would depend on them); the
rule that keeps this sound is that they hold nothing but an optional docstring, checked by
`nontrivial_inits()` (here and in tests/test_stage_deps.py). Their imports, if any, are
still followed.

Usage (from anywhere; defaults to the dvc.yaml of the repo this file lives in):

    python tools/stage_deps.py            # report; exit 1 on drift
    python tools/stage_deps.py --write    # rewrite the deps: lists of dvc.yaml in place
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Top-level packages whose modules count as code deps; everything else is outside the check.
CODE_PACKAGES: tuple[str, ...] = ("pipeline", "stages")

#: The repository this file belongs to (tools/ sits at its root): the CLI's default.
REPO_ROOT = Path(__file__).resolve().parent.parent

_INTERPOLATION = re.compile(r"\$\{\s*([^}]*?)\s*\}")


class StageDepsError(Exception):
    """dvc.yaml or the code it names cannot be analysed; the message says where and why."""


class UnresolvedImportError(StageDepsError):
    """A `pipeline`/`stages` import that maps to no file: the deps would be incomplete."""

    def __init__(self, importer: Path, lineno: int, module: str, detail: str) -> None:
        self.importer = importer
        self.lineno = lineno
        self.module = module
        super().__init__(f"{importer}:{lineno}: cannot resolve import of {module!r}: {detail}")


# --------------------------------------------------------------------------- dvc.yaml


@dataclass(frozen=True)
class Stage:
    """One runnable stage (a foreach instance counts as one) and where its deps live."""

    name: str  # `train_cyclegan`, or `train_colorizer@scangen` for a foreach instance
    definition: str  # the key under `stages:`; foreach instances share it (and their deps list)
    cmd: str  # with `${key}` / `${item...}` substituted for foreach instances
    deps: tuple[str, ...]  # as written (no substitution)


def _load_safe(dvc_yaml_path: Path) -> Mapping[str, Any]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(Path(dvc_yaml_path).read_text(encoding="utf-8"))
    return data if isinstance(data, Mapping) else {}


def _substitute(text: str, key: str, item: Any) -> str:
    """Expand `${key}`, `${item}` and `${item.a.b}` as DVC does for one foreach instance."""

    def expand(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr == "key":
            return key
        if expr == "item" or expr.startswith("item."):
            value = item
            for part in expr.split(".")[1:]:
                if not isinstance(value, Mapping) or part not in value:
                    return match.group(0)
                value = value[part]
            return str(value)
        return match.group(0)  # a `vars`/params interpolation: left for the caller to notice

    return _INTERPOLATION.sub(expand, text)


def _cmd_text(cmd: Any) -> str:
    return " && ".join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd or "")


def _foreach_instances(name: str, foreach: Any) -> Iterator[tuple[str, Any]]:
    """(key, item) pairs with DVC's naming: dict keys, scalar list values, else list indices."""
    if isinstance(foreach, Mapping):
        yield from ((str(k), v) for k, v in foreach.items())
    elif isinstance(foreach, list):
        scalars = all(isinstance(v, (str, int, float, bool)) for v in foreach)
        for i, value in enumerate(foreach):
            yield (str(value) if scalars else str(i)), value
    else:
        raise StageDepsError(f"stage {name}: foreach {foreach!r} is interpolated; only literal "
                             "dict/list foreach stages can be checked")


def iter_stages(dvc_yaml_path: Path) -> Iterator[Stage]:
    """Every runnable stage of dvc.yaml, foreach stages expanded into their instances."""
    stages = _load_safe(dvc_yaml_path).get("stages") or {}
    for name, body in stages.items():
        body = body or {}
        if "matrix" in body:
            raise StageDepsError(f"stage {name}: matrix stages are not supported by this check")
        if "foreach" in body:
            do = body.get("do") or {}
            for key, item in _foreach_instances(name, body["foreach"]):
                yield Stage(f"{name}@{key}", name, _substitute(_cmd_text(do.get("cmd")), key, item),
                            tuple(_dep_path(d) for d in do.get("deps") or []))
        else:
            yield Stage(name, name, _cmd_text(body.get("cmd")), tuple(_dep_path(d) for d in body.get("deps") or []))


def _dep_path(entry: Any) -> str:
    """A deps entry is a path string; tolerate the `{path: {...}}` mapping form too."""
    if isinstance(entry, Mapping) and len(entry) == 1:
        return str(next(iter(entry)))
    return str(entry)


def script_of(cmd: str, root: Path) -> Path | None:
    """The `stages/` script a command runs (`python -m stages.X` or `python stages/X.py`)."""
    try:
        tokens = shlex.split(cmd)
    except ValueError:
        tokens = cmd.split()
    for i, token in enumerate(tokens):
        module = None
        if "${" in token and (".py" in token or (i and tokens[i - 1] == "-m")):
            raise StageDepsError(f"command {cmd!r}: the script name {token!r} is interpolated; cannot check it")
        if token == "-m" and i + 1 < len(tokens):
            module = tokens[i + 1]
        elif token.startswith("-m") and len(token) > 2:
            module = token[2:]
        if module is not None and module.split(".")[0] in CODE_PACKAGES:
            path = _module_file(root, module)
            if path is None:
                raise StageDepsError(f"command {cmd!r} runs module {module!r}, which has no file under {root}")
            return path
        token = token.removeprefix("./")
        if token.endswith(".py") and token.split("/")[0] in CODE_PACKAGES:
            if not (root / token).is_file():
                raise StageDepsError(f"command {cmd!r} runs {token}, which does not exist under {root}")
            return root / token
    return None


def stage_scripts(dvc_yaml_path: Path, root: Path | None = None) -> dict[str, Path]:
    """Stage name -> the `stages/` script its cmd runs; stages running no such script are left out."""
    root = Path(root) if root is not None else Path(dvc_yaml_path).parent
    scripts = {}
    for stage in iter_stages(dvc_yaml_path):
        try:
            script = script_of(stage.cmd, root)
        except StageDepsError as e:
            raise StageDepsError(f"stage {stage.name}: {e}") from None
        if script is not None:
            scripts[stage.name] = script
    return scripts


def is_code_dep(dep: str) -> bool:
    """True for a deps entry this check owns: a literal path under one of CODE_PACKAGES."""
    dep = dep.removeprefix("./")
    return "${" not in dep and any(dep == p or dep.startswith(p + "/") for p in CODE_PACKAGES)


def declared_deps(dvc_yaml_path: Path) -> dict[str, set[str]]:
    """Stage name -> its deps entries under pipeline/ and stages/ (data paths and `${...}` left out)."""
    return {s.name: {d.removeprefix("./") for d in s.deps if is_code_dep(d)} for s in iter_stages(dvc_yaml_path)}


# --------------------------------------------------------------------------- imports


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.resolve().relative_to(root.resolve()).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_file(root: Path, module: str) -> Path | None:
    """`a.b` -> root/a/b/__init__.py or root/a/b.py (Python's order); None if neither exists."""
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):
        if candidate.is_file():
            return candidate
    return None


def _is_package(root: Path, module: str) -> bool:
    """A regular package, or a namespace package (a directory with no same-named .py beside it)."""
    base = root.joinpath(*module.split("."))
    return (base / "__init__.py").is_file() or (base.is_dir() and not base.with_name(base.name + ".py").is_file())


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """Names a module binds at import time; None when unknowable (`import *`, `__getattr__`)."""
    names: set[str] = set()

    def visit(body: Iterable[ast.stmt]) -> bool:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name == "__getattr__":
                    return False
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        return False
                    names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
                children = [getattr(node, a, []) for a in ("body", "orelse", "finalbody")]
                children += [h.body for h in getattr(node, "handlers", [])]
                if not all(visit(c) for c in children):
                    return False
        return True

    return names if visit(tree.body) else None


@dataclass
class ImportGraph:
    """Resolves and caches the in-package imports of source files under `root`."""

    root: Path
    packages: tuple[str, ...] = CODE_PACKAGES
    _trees: dict[Path, ast.Module] = field(default_factory=dict, init=False, repr=False)
    _edges: dict[Path, set[Path]] = field(default_factory=dict, init=False, repr=False)

    def tree(self, path: Path) -> ast.Module:
        """The parsed source of `path`, parsed once."""
        if path not in self._trees:
            self._trees[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        return self._trees[path]

    def _chain(self, importer: Path, lineno: int, module: str) -> set[Path]:
        """Files executed by importing `module`: each parent package's __init__ and the module."""
        parts = module.split(".")
        files: set[Path] = set()
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            path = _module_file(self.root, name)
            if path is not None:
                files.add(path)
            elif not _is_package(self.root, name):  # a directory alone is a namespace package
                rel = "/".join(parts[:i])
                raise UnresolvedImportError(importer, lineno, module,
                                            f"no {rel}.py or {rel}/__init__.py under {self.root}")
        return files

    def _from_import(self, importer: Path, node: ast.ImportFrom, base: str) -> set[Path]:
        """`from base import a, b`: base's chain, plus `base.a` wherever `a` is a submodule."""
        files = self._chain(importer, node.lineno, base)
        if not _is_package(self.root, base):
            return files  # a plain module: the names are attributes of it
        init = _module_file(self.root, base)
        bound = _top_level_names(self.tree(init)) if init is not None else set()
        for alias in node.names:
            if alias.name == "*":
                continue
            sub = f"{base}.{alias.name}"
            if _module_file(self.root, sub) is not None:
                files |= self._chain(importer, node.lineno, sub)
            elif bound is not None and alias.name not in bound:
                where = f"{init.relative_to(self.root).as_posix()} does not define it" if init else "a namespace package"
                raise UnresolvedImportError(importer, node.lineno, sub,
                                            f"no submodule {sub.replace('.', '/')}.py and {where}")
        return files

    def _relative_base(self, importer: Path, node: ast.ImportFrom) -> str:
        package = _module_name(importer, self.root).split(".")
        if importer.name != "__init__.py":
            package = package[:-1]
        if node.level - 1 >= len(package):
            raise UnresolvedImportError(importer, node.lineno, "." * node.level + (node.module or ""),
                                        "relative import beyond the top-level package")
        base = package[: len(package) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def direct(self, path: Path) -> set[Path]:
        """Files of `packages` that the source file `path` imports anywhere in its body."""
        if path in self._edges:
            return self._edges[path]
        found: set[Path] = set()
        for node in ast.walk(self.tree(path)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in self.packages:
                        found |= self._chain(path, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    found |= self._from_import(path, node, self._relative_base(path, node))
                elif node.module and node.module.split(".")[0] in self.packages:
                    found |= self._from_import(path, node, node.module)
        self._edges[path] = found
        return found

    def closure(self, path: Path) -> set[Path]:
        """Every file reachable from `path` by imports, `path` itself excluded."""
        seen: set[Path] = set()
        todo = [path]
        while todo:
            for dep in self.direct(todo.pop()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen - {path}

    def modules(self, script: Path) -> set[str]:
        """Repo-relative posix paths of the modules `script` may import, __init__.py files left out."""
        return {p.relative_to(self.root).as_posix() for p in self.closure(script) if p.name != "__init__.py"}


def imported_modules(script_path: Path, root: Path) -> set[str]:
    """Repo-relative paths (`pipeline/data/metadata.py`) of all modules a script transitively imports."""
    root = Path(root).resolve()
    return ImportGraph(root).modules(_under(Path(script_path), root))


def _under(path: Path, root: Path) -> Path:
    path = path if path.is_absolute() else root / path
    return path.resolve()


def expected_deps(dvc_yaml_path: Path, root: Path | None = None) -> dict[str, set[str]]:
    """Stage name -> the code deps it should declare: its script plus every module it imports."""
    root = (Path(root) if root is not None else Path(dvc_yaml_path).parent).resolve()
    graph = ImportGraph(root)
    expected = {}
    for stage, script in stage_scripts(dvc_yaml_path, root).items():
        script = _under(script, root)
        expected[stage] = {script.relative_to(root).as_posix()} | graph.modules(script)
    return expected


def drift(dvc_yaml_path: Path, root: Path | None = None) -> dict[str, tuple[set[str], set[str]]]:
    """Stage name -> (missing, extra) code deps, for the stages whose deps differ from their imports."""
    return _compare(expected_deps(dvc_yaml_path, root), declared_deps(dvc_yaml_path))


def _compare(expected: Mapping[str, set[str]], declared: Mapping[str, set[str]]) -> dict[str, tuple[set[str], set[str]]]:
    out = {}
    for stage, want in expected.items():
        have = declared.get(stage, set())
        if want != have:
            out[stage] = (want - have, have - want)
    return out


def nontrivial_inits(root: Path, packages: Iterable[str] = CODE_PACKAGES) -> list[Path]:
    """Package __init__.py files holding anything beyond a docstring: they break the deps rule."""
    bad = []
    for package in packages:
        for init in sorted(Path(root).joinpath(package).rglob("__init__.py")):
            body = ast.parse(init.read_text(encoding="utf-8"), filename=str(init)).body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            if body:
                bad.append(init)
    return bad


# --------------------------------------------------------------------------- --write


def ordered_code_deps(script: str, modules: Iterable[str]) -> list[str]:
    """The canonical deps order: the stage script first, then the modules sorted."""
    return [script] + sorted(set(modules) - {script})


def _guess_mapping_indent(text: str) -> int:
    """Smallest indent of a nested mapping key: ruamel cannot guess it, and dvc.yaml uses 2."""
    indents = [len(line) - len(line.lstrip(" ")) for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith(("#", "-")) and line.startswith(" ")]
    return min(indents, default=2)


def _split_trailing(token: Any) -> tuple[Any, Any]:
    """Split a ruamel item comment into (own end-of-line comment, lines trailing the item).

    ruamel hangs the comment lines that follow a sequence onto its last item, in one token
    starting with that item's own end-of-line comment (or just a newline).
    """
    head, _, tail = token.value.partition("\n")
    own = copy.copy(token) if head else None
    trailing = copy.copy(token) if tail else None
    if own is not None:
        own.value = head + "\n"
    if trailing is not None:
        trailing.value = "\n" + tail
    return own, trailing


def _replace_deps(seq: Any, code: list[str], where: str) -> bool:
    """Rewrite a ruamel CommentedSeq in place: `code` first, then the non-code entries as they were.

    Entries that stay keep their scalar objects (so their quoting) and their end-of-line
    comments; comment lines after the list stay after the list. Returns whether it changed.
    """
    old = list(seq)
    non_code = [e for e in old if not is_code_dep(_dep_path(e))]
    by_value = {str(e).removeprefix("./"): e for e in old if is_code_dep(_dep_path(e))}
    new = [by_value.get(c, c) for c in code] + non_code
    if [str(e) for e in new] == [str(e) for e in old]:
        return False
    comments = {i: c[0] for i, c in seq.ca.items.items() if c and c[0] is not None}
    trailing = None
    if old and len(old) - 1 in comments:
        own, trailing = _split_trailing(comments[len(old) - 1])
        if own is None:
            del comments[len(old) - 1]
        else:
            comments[len(old) - 1] = own
    index_of = {id(e): i for i, e in enumerate(old)}
    kept = {index_of[id(e)] for e in new if id(e) in index_of}
    for j in sorted(set(comments) - kept):
        print(f"{where}: dropped the comment {comments[j].value.strip()!r} of removed dep {old[j]}", file=sys.stderr)
    seq[:] = new
    seq.ca.items.clear()
    for i, entry in enumerate(new):
        j = index_of.get(id(entry))
        if j is not None and j in comments:
            seq.ca.items[i] = [comments[j], None, None, None]
    if trailing is not None and new:
        last = seq.ca.items.get(len(new) - 1)
        if last is None:
            seq.ca.items[len(new) - 1] = [trailing, None, None, None]
        else:
            merged = copy.copy(last[0])
            merged.value = last[0].value + trailing.value.removeprefix("\n")
            last[0] = merged
    return True


def write_deps(dvc_yaml_path: Path, root: Path | None = None) -> list[str]:
    """Rewrite the code deps of every stage in dvc.yaml, round-trip; returns the definitions changed."""
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    dvc_yaml_path = Path(dvc_yaml_path)
    root = (Path(root) if root is not None else dvc_yaml_path.parent).resolve()
    text = dvc_yaml_path.read_text(encoding="utf-8")
    scripts = stage_scripts(dvc_yaml_path, root)
    expected = expected_deps(dvc_yaml_path, root)

    # One deps list per definition: foreach instances must agree on it.
    wanted: dict[str, list[str]] = {}
    for stage in iter_stages(dvc_yaml_path):
        if stage.name not in scripts:
            continue
        script = _under(scripts[stage.name], root).relative_to(root).as_posix()
        code = ordered_code_deps(script, expected[stage.name])
        if wanted.setdefault(stage.definition, code) != code:
            raise StageDepsError(f"stage {stage.definition}: foreach instances import different code "
                                 f"but share one deps list in `do:`; list the union by hand")

    _, seq_indent, offset = load_yaml_guess_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 1 << 20  # never re-wrap long `cmd:` lines
    yaml.indent(mapping=_guess_mapping_indent(text), sequence=seq_indent or 4, offset=offset or 2)
    data = yaml.load(text)
    changed = []
    for definition, code in wanted.items():
        body = data["stages"][definition]
        body = body["do"] if "foreach" in body else body
        if body.get("deps") is None:
            if "deps" not in body and "cmd" in body:  # where a person would put it: after cmd
                body.insert(list(body).index("cmd") + 1, "deps", code)
            else:
                body["deps"] = code
            changed.append(definition)
        elif _replace_deps(body["deps"], code, f"stage {definition}"):
            changed.append(definition)
    if changed:
        out = io.StringIO()
        yaml.dump(data, out)
        dvc_yaml_path.write_text(out.getvalue(), encoding="utf-8")
    return changed


# --------------------------------------------------------------------------- CLI


def report(dvc_yaml_path: Path, root: Path) -> tuple[list[str], bool]:
    """Human-readable lines for every stage, and whether anything needs fixing."""
    lines = []
    problem = False
    expected = expected_deps(dvc_yaml_path, root)
    drifted = _compare(expected, declared_deps(dvc_yaml_path))
    for stage in iter_stages(dvc_yaml_path):
        if stage.name not in expected:
            lines.append(f"stage {stage.name}: runs no {'/'.join(CODE_PACKAGES)} script, not checked")
        elif stage.name in drifted:
            missing, extra = drifted[stage.name]
            lines += [f"stage {stage.name}: missing {m} (imported, not in deps)" for m in sorted(missing)]
            lines += [f"stage {stage.name}: extra {e} (in deps, not imported)" for e in sorted(extra)]
        else:
            lines.append(f"stage {stage.name}: ok ({len(expected[stage.name])} code deps)")
    for init in nontrivial_inits(root):
        problem = True
        lines.append(f"init {init.relative_to(root).as_posix()}: holds code; package __init__.py files "
                     "are not tracked as deps, so keep them to a docstring")
    if drifted:
        problem = True
        lines.append(f"{len(drifted)} stage(s) drifted; `python tools/stage_deps.py --write` rewrites their deps")
    return lines, problem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dvc-yaml", type=Path, default=None,
                    help="the dvc.yaml to check (default: ROOT/dvc.yaml)")
    ap.add_argument("--root", type=Path, default=None,
                    help="the repository root holding pipeline/ and stages/ (default: the dvc.yaml's folder, "
                         "or the repository this tool belongs to)")
    ap.add_argument("--write", action="store_true",
                    help="rewrite the deps: lists in place (comments and formatting kept), then re-check")
    args = ap.parse_args(argv)
    root = (args.root or (args.dvc_yaml.parent if args.dvc_yaml else REPO_ROOT)).resolve()
    dvc_yaml = args.dvc_yaml or root / "dvc.yaml"
    try:
        if args.write:
            changed = write_deps(dvc_yaml, root)
            print(f"rewrote deps of: {', '.join(changed)}" if changed else "deps already match; nothing written")
        lines, problem = report(dvc_yaml, root)
    except (StageDepsError, SyntaxError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
