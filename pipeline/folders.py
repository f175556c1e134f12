"""Listing a user's folders of images: which files are images, which are junk, and the order
a reader expects (`page2` before `page10`). Shared by chapters (`pipeline.colorist.chapters`),
the folder source (`pipeline.data.folder_source`) and `onepunch evaluate PAIRS`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def natural_key(text: str) -> list:
    """'page10' after 'page2': digit runs compare as numbers, the rest case-insensitively."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t]


def is_junk(rel: PurePosixPath) -> bool:
    """A hidden file or folder, or macOS archive litter (`__MACOSX/`)."""
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.parts)
