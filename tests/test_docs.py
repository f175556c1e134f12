"""The README and docs/development.md describe the code as it is: a short front page whose
"where things are" table and tree name only files that exist, links that resolve, and a
full tree that names every module of the library (a new module must be added to it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TREE_DOC = ROOT / "docs" / "development.md"


def expand(path: str) -> list[str]:
    """`a/{b,c}.py` -> [`a/b.py`, `a/c.py`]."""
    m = re.search(r"\{([^}]*)\}", path)
    if not m:
        return [path]
    return [e for alt in m.group(1).split(",") for e in expand(path[:m.start()] + alt + path[m.end():])]


def table_paths(text: str) -> list[str]:
    """Paths in the second column of the README's "where things are" table; a bare name
    after the first path of a cell lives in that path's folder."""
    out = []
    for row in re.findall(r"^\| [^|]+ \| (.+) \|$", text, re.MULTILINE):
        folder = ""
        for code in re.findall(r"`([^`]+)`", row):
            if "/" not in code and folder:
                code = folder + code
            folder = code.rsplit("/", 1)[0] + "/" if "/" in code else folder
            out += expand(code)
    return out


def tree_names(text: str) -> set[str]:
    """What a ```-block tree names: files (words ending in .py, .html, .yaml) anywhere in it,
    folders (words ending in /) before a line's two-space gap to its comment."""
    names = set()
    for block in re.findall(r"```\n(pipeline/.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            names |= set(re.findall(r"[\w.]+\.(?:py|html|yaml)\b", line))
            names |= set(re.findall(r"(?<![\w/])\w+/", line.strip().split("  ")[0]))
    return names


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert "make repro" in text and "make test" in text  # the two commands


def test_readme_where_things_are_names_real_files():
    paths = table_paths(README.read_text(encoding="utf-8"))
    assert len(paths) >= 15
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"the README's table names files that do not exist: {missing}"


def test_links_in_readme_and_docs_resolve():
    broken = []
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_full_tree_names_every_module_and_nothing_else():
    mentioned = tree_names(TREE_DOC.read_text(encoding="utf-8"))
    modules = {p.name for p in (ROOT / "pipeline").rglob("*.py") if p.name != "__init__.py"}
    modules |= {p.name for p in (ROOT / "pipeline").rglob("*.html")}
    assert not modules - mentioned, f"modules missing from docs/development.md's tree: {sorted(modules - mentioned)}"
    everything = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts} | \
        {p.name + "/" for p in ROOT.rglob("*") if p.is_dir() and ".venv" not in p.parts}
    assert not mentioned - everything, f"the tree names what does not exist: {sorted(mentioned - everything)}"


def test_helpers_read_what_they_should():
    assert expand("a/{b,c}.py") == ["a/b.py", "a/c.py"]
    assert table_paths("| x | `p/a.py`, `b.py` |\n") == ["p/a.py", "p/b.py"]
    assert tree_names("```\npipeline/\n  a.py b.py   two modules\n```") >= {"pipeline/", "a.py", "b.py"}
