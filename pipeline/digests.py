"""Fingerprints: short hex digests that say whether two things are the same.

- `json_digest`: a config or a settings dict (key order does not matter);
- `file_digest`: a file's content (which weights a fine-tune started from);
- `file_stamp`: a file's identity on disk, cheaply (path, size, modification time): a page
  or a model replaced under the same name.

Every resume in the project (training checkpoints, chapters, the images stage's scratch
folder) decides "same run, carry on" with these, so they agree on what "the same" means.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DIGITS = 16  # hex digits kept: 64 bits, no collision among a project's runs


def json_digest(obj: Any, digits: int = DIGITS) -> str:
    """sha256 of `obj` as sorted-key JSON (values JSON cannot hold as their `str`)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:digits]


def file_digest(path: str | Path, digits: int = DIGITS) -> str:
    """sha256 of a file's bytes, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()[:digits]


def file_stamp(path: str | Path) -> str | None:
    """`resolved-path:size:mtime_ns` of a file, None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
