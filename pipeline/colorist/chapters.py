"""Whole chapters for `onepunch colorize`: a folder of pages or a `.cbz` archive in, the
same pages in the same order out (a folder, or a `.cbz` for a `.cbz`).

- Pages are taken in natural order (`page2` before `page10`), nested folders included;
  archive junk (non-images, `__MACOSX/`, hidden files) is skipped and counted.
- Output pages are named `NNNN-<stem>.png` (NNNN: the page's place), so every reader shows
  them in the chapter's order whatever it sorts by; the stem is made safe as a file and
  archive member name on any system (no separators, `\\` included, nor `:`; long stems
  cut, with a hash of the page's name).
- Pages that are already colored are copied through as they are, unless asked otherwise.
- Resumable: each finished page is written atomically into the chapter's work folder (the
  output folder itself, or `.NAME.cbz.partial/` beside a `.cbz`) with a manifest of the
  settings; a re-run with the same settings skips finished pages, one with other settings
  starts over. Only pages both listed in the manifest and whole on disk count as done, so
  the `.cbz` holds exactly one entry per page. It appears, whole, only when every page is done.
- One run per chapter output at a time: a lock file beside it (`.NAME.lock`, an flock, so a
  killed run's lock is taken over); a second run is refused, naming the holder's PID.
- An unreadable page is named and skipped; the rest finish (and are packed) and the
  result says so. So is a page that is not a regular file (a link to a device, a FIFO)
  or larger than MAX_ENTRY_BYTES, which are never read past that.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.digests import json_digest
from pipeline.folders import IMAGE_SUFFIXES, is_junk, natural_key

ARCHIVE_SUFFIXES = (".cbz", ".zip")
MANIFEST = ".onepunch-chapter.json"
MAX_ENTRY_BYTES = 512 * 1024 * 1024  # one page, in a folder or an archive; larger is refused, not read
# An output page's name, in bytes: 255 is the usual file-name limit, and the temporary
# file it is written through (`files.atomic_path`) adds about 30 to it.
MAX_NAME_BYTES = 160
_UNSAFE_IN_NAMES = re.compile(r'[\x00-\x1f\x7f\\/:*?"<>|]')  # separators and what Windows refuses


def is_chapter(path: Path) -> bool:
    try:
        return path.is_dir() or (path.is_file() and path.suffix.lower() in ARCHIVE_SUFFIXES)
    except OSError:  # e.g. in a folder we may not search: a file, failing by name where it is read
        return False


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
        for p, error in _walk(chapter):
            rel = PurePosixPath(p.relative_to(chapter).as_posix())
            if error is not None:  # a folder we may not list: it fails by name, as a page would
                pages.append(Page(f"{rel}/", _unreadable_folder(error)))
                continue
            if p.is_dir() or rel.name == MANIFEST:
                continue
            if excluded is not None and excluded in p.resolve().parents:
                continue
            if is_junk(rel) or p.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(str(rel))
                continue
            pages.append(Page(str(rel), _file_reader(p)))
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


def _walk(folder: Path) -> Iterator[tuple[Path, OSError | None]]:
    """(path, None) for every file and folder under `folder` (links to folders not
    followed), as `rglob("*")` gives them, and (folder, error) for a sub-folder that cannot
    be listed, which `rglob` would drop silently with its pages. ValueError when `folder`
    itself cannot be listed."""
    errors: list[OSError] = []

    def flush() -> Iterator[tuple[Path, OSError]]:
        while errors:
            err = errors.pop(0)
            if Path(err.filename) == folder:
                raise ValueError(f"{folder}: the chapter folder cannot be read ({err.strerror})")
            yield Path(err.filename), err

    for root, dirs, files in os.walk(folder, onerror=errors.append):
        yield from flush()
        for name in dirs + files:
            yield Path(root) / name, None
    yield from flush()


def _unreadable_folder(error: OSError) -> Callable[[], bytes]:
    def read() -> bytes:
        raise OSError(f"a folder that cannot be read: its pages are missing ({error.strerror})")
    return read


def _entry_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        if info.file_size > MAX_ENTRY_BYTES:
            raise ValueError(_too_large(info.file_size))
        with archive.open(info) as f:
            return _capped(f.read(MAX_ENTRY_BYTES + 1))
    return read


def _file_reader(path: Path) -> Callable[[], bytes]:
    """A page file's bytes: a regular file only (a link to /dev/zero or a FIFO would be read
    forever, or block), at most MAX_ENTRY_BYTES of it."""
    def read() -> bytes:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on the
        # descriptor itself, so the file cannot be swapped between the check and the read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("not a regular file (a device, FIFO or socket); not read")
            if st.st_size > MAX_ENTRY_BYTES:
                raise ValueError(_too_large(st.st_size))
            return _capped(f.read(MAX_ENTRY_BYTES + 1))
    return read


def _too_large(size: int) -> str:
    return f"{size} bytes, more than a page may be ({MAX_ENTRY_BYTES})"


def _capped(data: bytes) -> bytes:
    if len(data) > MAX_ENTRY_BYTES:  # grew past its declared size as it was read
        raise ValueError(_too_large(len(data)))
    return data


def chapter_output(chapter: Path, out_dir: Path | None, n: int = 1) -> Path:
    """NAME.color/ for a folder, NAME.color.cbz for an archive; beside it or in out_dir.
    n > 1: NAME-n.color(.cbz), for a second chapter of the same name in one run."""
    folder = out_dir if out_dir is not None else chapter.parent
    name = (chapter.name if chapter.is_dir() else chapter.stem) + (f"-{n}" if n > 1 else "")
    if chapter.is_dir():
        return folder / f"{name}.color"
    return folder / f"{name}.color.cbz"


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
    renamed: str | None = None  # why the output is not NAME.color(.cbz): another chapter's name

    @property
    def note(self) -> str:
        parts = [self.renamed] if self.renamed else []
        parts.append(f"{len(self.done)} colorized")
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
    """`NNNN-<stem><suffix>`, one path component safe on any system and in any archive
    tool: separators (`/`, `\\`), `:` and control characters become `_` (the NNNN prefix
    rules out `..`, absolute paths and drive letters), and a stem that would make the name
    longer than MAX_NAME_BYTES is cut, with a hash of the page's name to keep it unique."""
    number = f"{index + 1:0{max(4, len(str(total)))}d}"
    stem = PurePosixPath(page).stem.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    stem = _UNSAFE_IN_NAMES.sub("_", stem)
    name = f"{number}-{stem}{suffix}"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    tag = hashlib.sha1(page.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    room = MAX_NAME_BYTES - len(f"{number}-~{tag}{suffix}".encode())
    return f"{number}-{stem.encode()[:room].decode('utf-8', 'ignore')}~{tag}{suffix}"


def lock_path(output: Path) -> Path:
    """The lock file of a chapter's output: one run writes it at a time."""
    return output.with_name(f".{output.name}.lock")


def colorize_chapter(chapter: Path, output: Path, convert, is_colored_page, settings: dict,
                     copy_colored: bool = True, progress: bool = True, max_pixels: int = 200_000_000,
                     max_aspect: float = 1000, batch: int = 1, convert_batch=None) -> ChapterResult:
    """Colorize every page of a chapter into `output` (folder, or .cbz), resumably.

    convert: PIL RGB page -> PIL image to save; is_colored_page: PIL -> bool. With batch > 1
    and convert_batch (list of pages -> list of images), pages go through it `batch` at a
    time (a GPU's batching); a batch that fails is redone page by page, so the failing page
    is the one named.
    """
    from pipeline.files import LockHeld, hold_lock

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
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with hold_lock(lock_path(output)):
            _colorize_pages(pages, res, convert, is_colored_page, settings, copy_colored, progress, max_pixels,
                            max_aspect, batch, convert_batch)
    except LockHeld as exc:
        holder = f"PID {exc.pid}" if exc.pid else "another process"
        res.output, res.error = None, (f"{output} is being written by another onepunch run ({holder}; lock file "
                                       f"{exc.path}); run again when it is done")
    except OSError as exc:  # the output's folder cannot be written
        res.output, res.error = None, f"{output}: {exc}"
    res.seconds = round(time.perf_counter() - t0, 2)
    return res


def _colorize_pages(pages: list[Page], res: ChapterResult, convert, is_colored_page, settings: dict,
                    copy_colored: bool, progress: bool, max_pixels: int, max_aspect: float, batch: int,
                    convert_batch) -> None:
    """colorize_chapter's work, under the chapter's lock: into res."""
    from tqdm import tqdm

    from pipeline.files import atomic_path, remove_leftovers, write_json
    from pipeline.imaging import DecodeError, decode_image

    chapter, output = res.source, res.output
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
    names = [(output_name(i, len(pages), p.name),  # (colorized, copied through as it is)
              output_name(i, len(pages), p.name, PurePosixPath(p.name).suffix.lower())) for i, p in enumerate(pages)]
    # done: what is listed *and* whole on disk (a file deleted, cut short or listed twice by
    # another writer is redone, once); the manifest is rewritten to say exactly that
    listed = {n for n in manifest["written"] if isinstance(n, str)}
    done: dict[int, str] = {}
    for i, pair in enumerate(names):
        whole = [n for n in pair if n in listed and _is_whole(work / n)]
        if whole:
            done[i] = whole[0]
    manifest["written"] = [done[i] for i in sorted(done)]

    def record(i: int, name: str) -> None:
        done[i] = name
        manifest["written"] = [done[k] for k in sorted(done)]
        write_json(manifest_path, manifest)  # after the page: a page on disk is always whole

    def fail(page: Page, exc: Exception) -> None:
        res.failed[page.name] = f"{exc.reason}: {exc.detail}" if isinstance(exc, DecodeError) else str(exc)

    pending: list[tuple[int, Page, str, object]] = []  # decoded pages waiting for a batch

    def flush() -> None:
        outs = None
        if len(pending) > 1 and convert_batch is not None:
            try:
                outs = convert_batch([img for _, _, _, img in pending])
            except (OSError, ValueError, RuntimeError):
                outs = None  # redone one by one below, naming the page that fails
        for k, (i, page, name, img) in enumerate(pending):
            try:
                out = outs[k] if outs is not None else convert(img)
                remove_leftovers(work, name)  # a killed earlier run's temporary file
                with atomic_path(work / name) as tmp:
                    out.save(tmp, format="PNG", compress_level=3)
            except (OSError, ValueError) as exc:
                fail(page, exc)
                continue
            res.done.append(page.name)
            record(i, name)
        pending.clear()

    bar = tqdm(list(enumerate(pages)), desc=chapter.name, unit="page", disable=not progress)
    for i, page in bar:
        as_png, as_copy = names[i]
        if i in done:
            res.resumed.append(page.name)
            continue
        try:
            data = page.read()
            img = decode_image(data, max_pixels=max_pixels, name=page.name, max_aspect=max_aspect)
            if copy_colored and is_colored_page(img):
                with atomic_path(work / as_copy) as tmp:
                    tmp.write_bytes(data)
                res.copied.append(page.name)
                record(i, as_copy)
                continue
        except (DecodeError, OSError, ValueError, zipfile.BadZipFile) as exc:
            fail(page, exc)
            continue
        pending.append((i, page, as_png, img))
        if len(pending) >= max(1, batch):
            flush()
    flush()
    bar.close()
    if as_cbz:  # the pages that could be done, one entry each, in order; a failed page is named in the result
        _pack(work, [done[i] for i in sorted(done)], output)
        shutil.rmtree(work)
    if res.failed:
        res.error = "; ".join(f"page {name}: {why}" for name, why in res.failed.items())


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and isinstance(data.get("written"), list)
    return data if ok else {}


def _is_whole(path: Path) -> bool:
    """A finished page file: a regular file that decodes to its end (PIL's verify)."""
    from PIL import Image

    try:
        if not path.is_file() or path.is_symlink():
            return False
        with Image.open(path) as img:
            img.verify()
    except Exception:  # noqa: BLE001 - whatever Pillow raises for a damaged file: not whole, so redone
        return False
    return True


def _pack(work: Path, names: list[str], output: Path) -> None:
    """The finished pages, in chapter order, into a .cbz written atomically (stored: PNG and
    JPEG are compressed already)."""
    from pipeline.files import atomic_path

    assert len(set(names)) == len(names) and all(PurePosixPath(n).name == n and "\\" not in n for n in names), names
    with atomic_path(output) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for name in sorted(names, key=natural_key):
            z.write(work / name, arcname=name)
