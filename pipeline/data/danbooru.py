"""Danbooru2020 record format: the facts every source and the metadata parser share.

A Danbooru2020 metadata line is one JSON object per post. Numbers are JSON *strings*
(`"id":"148112"`), `"0"` means null for parent_id/approver_id/pixiv_id, the timestamp
`"1970-01-01 00:00:00 UTC"` means null, timestamps carry 0-6 fractional digits and a
literal ` UTC`, booleans are real JSON booleans, and `tags` is a list of
`{"id","name","category"}` string objects (0 general, 1 artist, 3 copyright,
4 character, 5 meta). Older snapshots overlap, so ids repeat across shards.

`dump_record()` writes that format (the synthetic source and the live-API source both
emit it), so the metadata stage has exactly one parser.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.config import SourceConfig

NULL_TIMESTAMP = "1970-01-01 00:00:00 UTC"
TAG_CATEGORIES = {"general": 0, "artist": 1, "copyright": 3, "character": 4, "meta": 5}

# Fields of a Danbooru2020 record, by JSON representation.
INT_FIELDS = (
    "id", "uploader_id", "score", "up_score", "down_score", "image_width", "image_height",
    "file_size", "fav_count",
)
NULLABLE_ID_FIELDS = ("parent_id", "approver_id", "pixiv_id")  # "0" means null
TIMESTAMP_FIELDS = ("created_at", "updated_at", "last_commented_at", "last_noted_at")
BOOL_FIELDS = (
    "is_deleted", "is_banned", "is_pending", "is_flagged", "is_note_locked",
    "is_rating_locked", "is_status_locked", "has_children",
)

_EXT = re.compile(r"^[a-z0-9]{1,5}$")
METADATA_SHARD_NAMES = tuple(f"2020{i:012d}" for i in range(16))


def format_timestamp(ts: datetime | None) -> str:
    """Danbooru2020's text form: 'YYYY-MM-DD HH:MM:SS[.ffffff] UTC'; None -> the 1970 null."""
    if ts is None:
        return NULL_TIMESTAMP
    ts = ts.astimezone(timezone.utc)
    text = ts.strftime("%Y-%m-%d %H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    return text + " UTC"


def dump_record(post: dict[str, Any]) -> dict[str, Any]:
    """A post given with Python types -> a record exactly as Danbooru2020 ships it.

    `post` uses ints/None/datetimes/bools and `tags` as a list of (name, category[, id])
    tuples; missing fields get Danbooru's defaults.
    """
    out: dict[str, Any] = {}
    for name in INT_FIELDS:
        if name == "fav_count":
            continue
        out[name] = str(int(post.get(name, 0) or 0))
    for name in NULLABLE_ID_FIELDS:
        out[name] = str(int(post.get(name) or 0))
    for name in TIMESTAMP_FIELDS:
        out[name] = format_timestamp(post.get(name))
    for name in BOOL_FIELDS:
        out[name] = bool(post.get(name, False))
    out["rating"] = post.get("rating", "s")
    out["file_ext"] = post.get("file_ext", "jpg")
    out["md5"] = post.get("md5", "")
    out["source"] = post.get("source", "")
    tags = []
    for i, tag in enumerate(post.get("tags", [])):
        name, category = tag[0], tag[1]
        tag_id = tag[2] if len(tag) > 2 else None
        tags.append({"id": str(tag_id if tag_id is not None else 0), "name": name,
                     "category": str(category)})
    out["tags"] = tags
    out["pools"] = [str(p) for p in post.get("pools", [])]
    out["favs"] = [str(f) for f in post.get("favs", [])]
    if post.get("file_url"):
        out["file_url"] = post["file_url"]
    return out


# --------------------------------------------------------------------------- paths


class UnsafePathError(ValueError):
    """An id or file_ext from metadata would build a path outside the data folder."""


def check_post_id(post_id: Any) -> int:
    if isinstance(post_id, bool) or not isinstance(post_id, int) or post_id <= 0 or post_id >= 2**40:
        raise UnsafePathError(f"post id {post_id!r} is not a positive integer")
    return post_id


def check_file_ext(file_ext: Any) -> str:
    if not isinstance(file_ext, str) or not _EXT.match(file_ext):
        raise UnsafePathError(f"file_ext {file_ext!r} is not 1-5 lower-case letters/digits")
    return file_ext


def image_relpath(post_id: int, file_ext: str, variant: str) -> PurePosixPath:
    """Where a post's image lives in the Danbooru2020 layout (validated, relative).

    original/{id % 1000:04d}/{id}.{file_ext}; 512px/{id % 1000:04d}/{id}.jpg
    """
    post_id = check_post_id(post_id)
    if variant == "512px":
        ext = "jpg"
    elif variant == "original":
        ext = check_file_ext(file_ext)
    else:
        raise ValueError(f"image variant {variant!r}: allowed values are 512px, original")
    return PurePosixPath(variant, f"{post_id % 1000:04d}", f"{post_id}.{ext}")


def safe_join(root: str | Path, rel: PurePosixPath | str) -> Path:
    """root / rel, resolved; refusing a path that leads out of the data folder.

    "Inside" is judged against the mirror's own layout, wherever it really is: the root,
    and the top folder of a layout path (`512px/`, `original/`, `groundtruth/`), may each
    be a link (a mirror linked in, `512px/` on another disk): the admin set those up. What
    lies below them comes from metadata (bucket folder, file name) and must resolve inside
    the real root or the real top folder, so a link to another image of the mirror is
    followed, while a `..` part, an absolute path or an image linked to a file elsewhere
    (/etc/passwd) raises UnsafePathError. A one-part path (a cache file) has no layout
    folder: it must resolve inside the root.
    """
    rel = PurePosixPath(rel)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts):
        raise UnsafePathError(f"path {str(rel)!r} leaves the data folder")
    root_path = Path(root).resolve()
    try:
        bases = [root_path] + ([(root_path / rel.parts[0]).resolve()] if len(rel.parts) > 1 else [])
        full = (root_path / Path(*rel.parts)).resolve()
    except RuntimeError as exc:  # Python 3.11 reports a symlink loop this way
        raise UnsafePathError(f"path {str(rel)!r} under {root_path}: {exc}") from None
    if not any(full == base or base in full.parents for base in bases):
        raise UnsafePathError(
            f"path {str(rel)!r} resolves to {full}, outside the data folder {root_path}: a link out of "
            "the mirror is not followed (copy the file into the mirror, or point the link inside it)")
    return full


def metadata_dir(cfg: SourceConfig, source_dir: Path) -> Path:
    """Where the materialised source keeps the metadata files the metadata stage parses."""
    return Path(cfg.root) / "metadata" if cfg.kind == "local" else Path(source_dir) / "metadata"


def image_root(cfg: SourceConfig, source_dir: Path) -> Path:
    """The root of the Danbooru image layout (local and synthetic sources); for a folder
    source, the folder itself."""
    return Path(cfg.root) if cfg.kind in ("local", "folder") else Path(source_dir)
