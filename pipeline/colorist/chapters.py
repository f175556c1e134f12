"""Whole chapters for `onepunch colorize`: a folder of pages or a `.cbz` archive in, the
same pages in the same order out (a folder, or a `.cbz` for a `.cbz`).

- Pages are taken in natural order (`page2` before `page10`), nested folders included;
  archive junk (non-images, `__MACOSX/`, hidden files) is skipped and counted.
- Output pages are named `NNNN-<stem>.png` (NNNN: the page's place), so every reader shows
  them in the chapter's order whatever it sorts by.
- Pages that are already colored are copied through as they are, unless asked otherwise.
- Resumable: each finished page is written atomically into the chapter's work folder (the
  output folder itself, or `.NAME.cbz.partial/` beside a `.cbz`) with a manifest of the
  settings; a re-run with the same settings skips finished pages, one with other settings
  starts over. The `.cbz` appears, whole, only when every page is done.
- An unreadable page is named and skipped; the rest finish (and are packed) and the
  result says so.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from pipeline.digests import json_digest
from pipeline.folders import IMAGE_SUFFIXES, is_junk, natural_key

ARCHIVE_SUFFIXES = (".cbz", ".zip")
MANIFEST = ".onepunch-chapter.json"
MAX_ENTRY_BYTES = 512 * 1024 * 1024  # one page inside an archive; larger is refused, not read


def is_chapter(path: Path) -> bool:
    return path.is_dir() or (path.is_file() and path.suffix.lower() in ARCHIVE_SUFFIXES)


@dataclass
class Page:
    name: str  # path inside the chapter, '/'-separated
    read: Callable[[], bytes]


def list_pages(chapter: Path, exclude: Path | None = None) -> tuple[list[Page], list[str]]:
    """(pages in natural order, skipped entries) of a folder or an archive; `exclude`: a
    folder inside it not to read (the chapter's own output, when written into it)."""
    skipped: list[str] = []
    pages: list[Page] = []
    if chapter.is_dir():
        excluded = exclude.resolve() if exclude is not None else None
        for p in chapter.rglob("*"):
            rel = PurePosixPath(p.relative_to(chapter).as_posix())
            if p.is_dir() or rel.name == MANIFEST:
                continue
            if excluded is not None and excluded in p.resolve().parents:
                continue
            if is_junk(rel) or p.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(str(rel))
                continue
            pages.append(Page(str(rel), p.read_bytes))
    else:
        try:
            archive = zipfile.ZipFile(chapter)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{chapter}: not a readable .cbz/.zip archive ({exc})") from None
        for info in archive.infolist():
            rel = PurePosixPath(info.filename)
            if info.is_dir():
                continue
            if is_junk(rel) or rel.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(info.filename)
                continue
            pages.append(Page(info.filename, _entry_reader(archive, info)))
    pages.sort(key=lambda pg: natural_key(pg.name))
    return pages, sorted(skipped, key=natural_key)


def _entry_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        if info.file_size > MAX_ENTRY_BYTES:
            raise ValueError(f"{info.file_size} bytes uncompressed, more than a page may be ({MAX_ENTRY_BYTES})")
        with archive.open(info) as f:
            return f.read(MAX_ENTRY_BYTES + 1)
    return read


def chapter_output(chapter: Path, out_dir: Path | None) -> Path:
    """NAME.color/ for a folder, NAME.color.cbz for an archive; beside it or in out_dir."""
    folder = out_dir if out_dir is not None else chapter.parent
    if chapter.is_dir():
        return folder / f"{chapter.name}.color"
    return folder / f"{chapter.stem}.color.cbz"


@dataclass
class ChapterResult:
    source: Path
    output: Path | None = None
    done: list[str] = field(default_factory=list)  # pages colorized this run
    resumed: list[str] = field(default_factory=list)  # pages finished by an earlier run
    copied: list[str] = field(default_factory=list)  # already colored, passed through
    failed: dict[str, str] = field(default_factory=dict)  # page -> why
    skipped: list[str] = field(default_factory=list)  # not pages (junk, non-images)
    error: str | None = None  # what failed (failed pages, or the chapter as a whole)
    seconds: float = 0.0

    @property
    def note(self) -> str:
        parts = [f"{len(self.done)} colorized"]
        if self.copied:
            parts.append(f"{len(self.copied)} already colored, copied")
        if self.resumed:
            parts.append(f"{len(self.resumed)} finished earlier")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} non-page entries skipped")
        pages = len(self.done) + len(self.copied)
        if self.seconds and pages:
            parts.append(f"{pages / self.seconds:.2f} pages/s")
        return ", ".join(parts)


def output_name(index: int, total: int, page: str, suffix: str = ".png") -> str:
    digits = max(4, len(str(total)))
    return f"{index + 1:0{digits}d}-{PurePosixPath(page).stem}{suffix}"


def colorize_chapter(chapter: Path, output: Path, convert, is_colored_page, settings: dict,
                     copy_colored: bool = True, progress: bool = True, max_pixels: int = 200_000_000,
                     max_aspect: float = 1000, batch: int = 1, convert_batch=None) -> ChapterResult:
    """Colorize every page of a chapter into `output` (folder, or .cbz), resumably.

    convert: PIL RGB page -> PIL image to save; is_colored_page: PIL -> bool. With batch > 1
    and convert_batch (list of pages -> list of images), pages go through it `batch` at a
    time (a GPU's batching); a batch that fails is redone page by page, so the failing page
    is the one named.
    """
    from tqdm import tqdm

    from pipeline.files import atomic_path, remove_leftovers, write_json
    from pipeline.imaging import DecodeError, decode_image

    t0 = time.perf_counter()
    res = ChapterResult(chapter, output)
    try:
        pages, res.skipped = list_pages(chapter, exclude=output)
    except ValueError as exc:
        res.output, res.error = None, str(exc)
        return res
    if not pages:
        res.output, res.error = None, f"no pages (images) in it; skipped {len(res.skipped)} other entries"
        return res
    as_cbz = output.suffix.lower() == ".cbz"
    work = output.with_name(f".{output.name}.partial") if as_cbz else output
    key = json_digest({**settings, "copy_colored": copy_colored, "pages": [p.name for p in pages]})
    manifest_path = work / MANIFEST
    manifest = _read_manifest(manifest_path)
    if manifest.get("key") != key:  # other settings (or a first run): start over
        for name in manifest.get("written", []):
            if isinstance(name, str) and PurePosixPath(name).name == name and name not in ("", ".", ".."):
                (work / name).unlink(missing_ok=True)  # only our own page files, never a path
        manifest = {"key": key, "written": []}
    work.mkdir(parents=True, exist_ok=True)
    finished = set(manifest["written"])

    def record(name: str) -> None:
        manifest["written"].append(name)
        finished.add(name)
        write_json(manifest_path, manifest)  # after the page: a page on disk is always whole

    def fail(page: Page, exc: Exception) -> None:
        res.failed[page.name] = f"{exc.reason}: {exc.detail}" if isinstance(exc, DecodeError) else str(exc)

    pending: list[tuple[Page, str, object]] = []  # decoded pages waiting for a batch

    def flush() -> None:
        outs = None
        if len(pending) > 1 and convert_batch is not None:
            try:
                outs = convert_batch([img for _, _, img in pending])
            except (OSError, ValueError, RuntimeError):
                outs = None  # redone one by one below, naming the page that fails
        for k, (page, name, img) in enumerate(pending):
            try:
                out = outs[k] if outs is not None else convert(img)
                remove_leftovers(work, name)  # a killed earlier run's temporary file
                with atomic_path(work / name) as tmp:
                    out.save(tmp, format="PNG", compress_level=3)
            except (OSError, ValueError) as exc:
                fail(page, exc)
                continue
            res.done.append(page.name)
            record(name)
        pending.clear()

    bar = tqdm(list(enumerate(pages)), desc=chapter.name, unit="page", disable=not progress)
    for i, page in bar:
        as_png = output_name(i, len(pages), page.name)
        as_copy = output_name(i, len(pages), page.name, PurePosixPath(page.name).suffix.lower())
        if any(n in finished and (work / n).is_file() for n in (as_png, as_copy)):
            res.resumed.append(page.name)
            continue
        try:
            data = page.read()
            img = decode_image(data, max_pixels=max_pixels, name=page.name, max_aspect=max_aspect)
            if copy_colored and is_colored_page(img):
                with atomic_path(work / as_copy) as tmp:
                    tmp.write_bytes(data)
                res.copied.append(page.name)
                record(as_copy)
                continue
        except (DecodeError, OSError, ValueError, zipfile.BadZipFile) as exc:
            fail(page, exc)
            continue
        pending.append((page, as_png, img))
        if len(pending) >= max(1, batch):
            flush()
    flush()
    bar.close()
    if as_cbz:  # the pages that could be done, in order; a failed page is named in the result
        _pack(work, manifest["written"], output)
        shutil.rmtree(work)
    if res.failed:
        res.error = "; ".join(f"page {name}: {why}" for name, why in res.failed.items())
    res.seconds = round(time.perf_counter() - t0, 2)
    return res


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and isinstance(data.get("written"), list)
    return data if ok else {}


def _pack(work: Path, names: list[str], output: Path) -> None:
    """The finished pages, in chapter order, into a .cbz written atomically (stored: PNG and
    JPEG are compressed already)."""
    from pipeline.files import atomic_path

    with atomic_path(output) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for name in sorted(names, key=natural_key):
                z.write(work / name, arcname=name)
