"""Reading the metadata inputs: plain shards, `.gz`, `.xz`, `.bz2` or a `.tar`/`.tar.xz`/
`.tar.gz` archive of shards, streamed (archives are never unpacked to disk) in blocks of
whole lines. A damaged input (truncated, corrupt, not the format its name says) gives the
lines before the damage and is reported with the reason; it never stops the run.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

_TAR_SUFFIXES = (".tar", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2")


def discover_metadata_files(folder: Path, names: list[str] | None = None) -> list[Path]:
    """The metadata inputs in a folder, sorted by name (deterministic order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: metadata folder not found")
    if names:
        paths = [folder / n for n in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"metadata files listed in params not found: {', '.join(missing)}")
        return paths
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    paths = [p for p in paths if not p.name.endswith((".part", ".tmp"))]
    if not paths:
        raise FileNotFoundError(f"{folder}: no metadata files in this folder")
    return paths


@contextmanager
def _open_compressed(path: Path) -> Iterator[BinaryIO]:
    name = path.name.lower()
    if name.endswith(".gz"):
        f = gzip.open(path, "rb")
    elif name.endswith(".xz"):
        f = lzma.open(path, "rb")
    elif name.endswith(".bz2"):
        f = bz2.open(path, "rb")
    else:
        f = open(path, "rb")
    try:
        yield f
    finally:
        f.close()


class DamagedInputError(ValueError):
    """A metadata input is truncated, corrupt, or not the format its name says."""


def _raise_damage(name: str, reason: str) -> None:
    raise DamagedInputError(f"{name}: {reason}; re-download or re-copy the file, or remove it from the inputs")


def iter_metadata_streams(path: Path, on_damage: Callable[[str, str], None] | None = None
                          ) -> Iterator[tuple[str, BinaryIO]]:
    """(name, binary stream) for each JSON-lines file in `path` (a shard or an archive).

    A damaged input (truncated, corrupt, or not the format its name says) is not fatal:
    its stream ends where the damage starts, with every line decoded before it, and
    `on_damage(name, reason)` is called once; without `on_damage`, DamagedInputError.
    """
    path = Path(path)
    report = on_damage or _raise_damage
    if path.name.lower().endswith(_TAR_SUFFIXES):
        yield from _iter_tar_members(path, report)
        return
    with _open_compressed(path) as stream:
        yield path.name, _GuardedStream(stream, path.name, _format(path.name), report)


def _iter_tar_members(path: Path, report: Callable[[str, str], None]) -> Iterator[tuple[str, BinaryIO]]:
    reported: list[str] = []

    def note(name: str, reason: str) -> None:
        reported.append(name)
        report(name, reason)

    members = 0  # read so far: none means the file is no tar archive at all
    try:
        with tarfile.open(path, mode="r|*") as tar:  # streaming: no seeking, no unpacking
            for member in tar:
                members += 1
                if member.isfile() and not Path(member.name).name.startswith("."):
                    stream = tar.extractfile(member)
                    if stream is not None:
                        name = f"{path.name}:{member.name}"
                        yield name, _GuardedStream(stream, name, "tar", note)
    except _DAMAGE_ERRORS as exc:
        if _is_disk_error(exc):
            raise
        if not reported:  # a damaged member also breaks the walk to the next: say it once
            report(path.name, _damage_reason(exc, "tar", members))


# What decoders raise on damaged input: EOFError (truncated), BadGzipFile and bz2's OSError
# (no errno), LZMAError, zlib.error, tarfile.ReadError.
_DAMAGE_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error, tarfile.TarError)
_READ_PIECE = 64 << 10  # bytes per decoder call: at most this much is lost before damage in a tar member


def _is_disk_error(exc: BaseException) -> bool:
    """An OSError with an errno comes from the disk, not from the file's content."""
    return isinstance(exc, OSError) and exc.errno is not None


def _format(name: str) -> str:
    name = name.lower()
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    for suffix, fmt in ((".gz", "gzip"), (".xz", "xz"), (".bz2", "bz2")):
        if name.endswith(suffix):
            return fmt
    return "plain"


def _damage_reason(exc: BaseException, fmt: str, decoded: int) -> str:
    """A decoder's error in words for the metrics: truncated, not that format, or corrupt."""
    what = "archive" if fmt == "tar" else "stream"
    if isinstance(exc, EOFError) or "unexpected end of data" in str(exc):
        return f"truncated {fmt} {what}"
    if not decoded:
        return f"not {'an' if fmt == 'xz' else 'a'} {fmt} file"
    return f"corrupt {fmt} {what} after {decoded} bytes ({exc})"


class _GuardedStream:
    """A stream for iter_blocks on which damage ends the data instead of raising.

    `readinto` fills the whole buffer as a plain read does (block boundaries stay the same),
    one decoder call of at most _READ_PIECE bytes at a time, so when the decoder fails every
    byte decoded before the damage is returned (a plain `readinto` loses what it had read in
    that call); later reads return nothing and `on_damage(name, reason)` is called once.
    """

    def __init__(self, inner: BinaryIO, name: str, fmt: str, on_damage: Callable[[str, str], None]):
        self.inner, self.name, self.fmt, self.on_damage = inner, name, fmt, on_damage
        self.decoded = 0
        self.damage: str | None = None

    def readinto(self, buf) -> int:
        view = memoryview(buf)
        total = 0
        while total < len(view) and self.damage is None:
            try:
                n = self.inner.readinto1(view[total : total + _READ_PIECE])
            except _DAMAGE_ERRORS as exc:
                if _is_disk_error(exc):
                    raise
                self.damage = _damage_reason(exc, self.fmt, self.decoded + total)
                self.on_damage(self.name, self.damage)
                break
            if not n:
                break
            total += n
        self.decoded += total
        return total

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while part := self.read(1 << 20):
                parts.append(part)
            return b"".join(parts)
        buf = bytearray(size)
        return bytes(buf[: self.readinto(buf)])

    def tell(self) -> int:
        return self.inner.tell()


def iter_blocks(stream: BinaryIO, block_bytes: int) -> Iterator[memoryview]:
    """Chunks of whole lines, about `block_bytes` each (a final line may lack a newline).

    One buffer is reused for every block (fresh 32 MB allocations cost page faults), so a
    block is only valid until the next one is requested: parse it before moving on.
    """
    buf = bytearray(block_bytes)
    view = memoryview(buf)
    filled = 0  # bytes carried over from the previous block (a partial line)
    while True:
        if filled == len(buf):  # one line longer than the block: grow
            buf.extend(bytes(len(buf)))
            view = memoryview(buf)
        n = stream.readinto(view[filled:]) if hasattr(stream, "readinto") else _read_into(stream, view, filled)
        if not n:
            break
        end = filled + n
        cut = buf.rfind(b"\n", 0, end)
        if cut < 0:
            filled = end
            continue
        yield view[: cut + 1]
        rest = end - (cut + 1)
        buf[:rest] = buf[cut + 1 : end]
        filled = rest
    if bytes(view[:filled]).strip():
        yield memoryview(bytes(view[:filled]) + b"\n")


def _read_into(stream: BinaryIO, view: memoryview, start: int) -> int:
    data = stream.read(len(view) - start)
    view[start : start + len(data)] = data
    return len(data)


def raw_position(stream: BinaryIO, path: Path) -> int | None:
    stream = getattr(stream, "inner", stream)  # a _GuardedStream
    try:
        raw = getattr(stream, "fileobj", None) or getattr(stream, "_fp", None)
        if raw is not None and hasattr(raw, "tell"):
            return raw.tell()
        return stream.tell()
    except (OSError, ValueError, AttributeError):
        return None


class _Progress:
    """Byte progress over all input files (compressed bytes for compressed inputs)."""

    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, mininterval=1.0)
        self.done = 0  # bytes of finished files

    def _move_to(self, position: int) -> None:
        position = min(position, self.bar.total)
        if position > self.bar.n:
            self.bar.update(position - self.bar.n)  # tqdm throttles redraws itself

    def update_to(self, pos: int | None) -> None:
        if pos is not None:
            self._move_to(self.done + pos)

    def file_done(self, size: int) -> None:
        self.done += size
        self._move_to(self.done)

    def close(self) -> None:
        self.bar.close()


def progress_bar(total: int, enabled: bool, desc: str) -> _Progress | None:
    return _Progress(total, desc) if enabled else None
