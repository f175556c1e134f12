"""Writing files and folders so that nothing is ever half-written under its final name.

Every writer in the project goes through these helpers:
- `atomic_path(path)`: a temporary path beside `path`, renamed over it when the block
  succeeds and removed when it fails;
- `commit(tmp, path)`: the rename itself, for writers that keep their own temporary file
  (a resumable download's `.part`);
- `open_atomic`, `write_json`, `write_parquet`: the same for a binary stream, JSON, Parquet;
- `replace_folder(path)`: a fresh folder to fill, swapped in for `path` as a whole;
- `hold_lock(path)`: one writer at a time for an output that is built over many writes (a
  chapter), refusing or waiting for a second one;
- `claim_names(folder, names)` with `names_claimed_by_others(folder)`: output names a run
  is writing, so a concurrent run into the same folder can pick others.

Temporary names are unique per writer (`tempfile`), so two processes writing the same
target never touch each other's temporary file: the last rename wins and both results are
whole. They are hidden, carry the writer's PID and end in `.tmp` (`.NAME.PID.XXXXXXXX.tmp`), so
readers that list a folder skip them, and a leftover of a killed writer is told apart from
the temporary file of one still running (`leftovers`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

TMP_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once, at import: os.umask can only be read by setting it, and setting it while other
# threads create files would give their files the wrong permissions
_UMASK = _read_umask()


def _temp_name(path: Path) -> str:
    """The temporary-name prefix of this process for target `path`: `.NAME.PID.`"""
    return f".{path.name}.{os.getpid()}."


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; on success it becomes `path` (fsynced,
    with the permissions a plain `open` would give), on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temp_name(path), suffix=TMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def commit(tmp: str | Path, path: str | Path) -> None:
    """Make the finished temporary file `tmp` (in `path`'s folder) the file at `path`: its
    bytes fsynced, the permissions a plain `open` would give, one rename, and the rename
    made durable (the folder fsynced, where the platform allows)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every platform or filesystem fsyncs a folder
    finally:
        os.close(fd)


@contextmanager
def open_atomic(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file opened for writing that appears at `path` only once complete."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def write_json(path: str | Path, obj: Any) -> None:
    """Pretty, sorted, UTF-8 JSON, written atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    with open_atomic(path) as f:
        f.write(text.encode("utf-8"))


def write_parquet(path: str | Path, table) -> None:
    """A pyarrow Table as zstd Parquet, written atomically."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


@contextmanager
def replace_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; when the block succeeds it replaces
    `path` whole (the old folder is moved aside, then deleted), when it fails it is removed
    and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a folder has one writer at a time (DVC runs one stage at a time on a workspace), so
    # what earlier writers of this folder left behind when they were killed can go
    remove_leftovers(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_name(path), suffix=TMP_SUFFIX))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        old = None
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_name(path), suffix=".old"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def leftovers(folder: str | Path, name: str) -> list[Path]:
    """Temporary files and folders these helpers left for target `name` in `folder` whose
    writer is gone (killed mid-write): they never carry the final name and are safe to
    delete. Those of another process still running are not listed; this process's own
    count as leftovers, so call it only where this process has no write to `name` open."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefix = f".{name}."
    found = []
    for p in folder.iterdir():
        if not (p.name.startswith(prefix) and p.name.endswith((TMP_SUFFIX, ".old"))):
            continue
        pid = p.name[len(prefix):].split(".", 1)[0]
        if not (pid.isdigit() and _alive(int(pid))):
            found.append(p)
    return sorted(found)


def remove_leftovers(folder: str | Path, name: str) -> int:
    """Delete what `leftovers` lists; return how many there were."""
    stale = leftovers(folder, name)
    for p in stale:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return len(stale)


class LockHeld(RuntimeError):
    """Another live process holds the lock file `path`."""

    def __init__(self, path: Path, pid: int | None):
        self.path, self.pid = path, pid
        super().__init__(f"{path} is held by {'PID ' + str(pid) if pid else 'another process'}")


@contextmanager
def hold_lock(path: str | Path, wait: bool = False) -> Iterator[None]:
    """An exclusive lock on the lock file `path` for the block; `LockHeld` (naming the
    holder's PID, which the file carries) when another process holds it, or with wait=True
    the wait for it. fcntl.flock: the kernel releases it when the holder dies, even by
    SIGKILL, so a dead holder's lock file is simply taken over. The file is removed when
    the block ends (while still locked; an acquirer checks that the file it locked is the
    one at `path`, so it never holds a lock on a removed file)."""
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(path, _holder(path)) from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)  # its holder removed it as we waited: lock the one at `path` now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        Path(path).unlink(missing_ok=True)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder(path: Path) -> int | None:
    """The PID a held lock file carries (written just after locking: wait for it briefly)."""
    for _ in range(50):
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


CLAIMS_PREFIX = ".onepunch-claims."  # + PID + .json: the output names one run is writing


def names_claimed_by_others(folder: str | Path) -> dict[str, tuple[int, str]]:
    """name -> (PID, what it is written from) for the output names other live processes
    claimed in `folder` (`claim_names`); a dead process's claims are removed. Call it
    under `hold_lock` of the folder's own lock file, as `claim_names` is, so that two runs
    never claim one name."""
    found: dict[str, tuple[int, str]] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return found
    for p in folder.glob(f"{CLAIMS_PREFIX}*.json"):
        pid = p.name[len(CLAIMS_PREFIX):-len(".json")]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            fd = os.open(p, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its writer is alive and holds it
                try:
                    names = json.loads(os.pread(fd, 1 << 24, 0) or b"{}")
                except ValueError:
                    names = {}
                if isinstance(names, dict):
                    found.update({k: (int(pid), str(v)) for k, v in names.items() if isinstance(k, str)})
            else:
                p.unlink(missing_ok=True)  # its writer died (the kernel dropped its lock)
        finally:
            os.close(fd)
    return found


@contextmanager
def claim_names(folder: str | Path, names: dict[str, str]) -> Iterator[None]:
    """Claim output names in `folder` for the block (name -> what it is written from), for
    `names_claimed_by_others` in other processes; the claim ends with the block or with
    this process, however it dies (an flock on the claims file, as in `hold_lock`)."""
    path = Path(folder) / f"{CLAIMS_PREFIX}{os.getpid()}.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_UMASK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(names, ensure_ascii=False).encode("utf-8", "surrogateescape"), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing it now: a leftover of an earlier block
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True
