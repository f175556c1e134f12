"""The `folder` source: a plain folder of your own images (a series' colored pages, covers
and color spreads beside its black-and-white pages), with no Danbooru metadata.

Colored or line art: a file below a sub-folder named `color/` (or colour, colored,
coloured) is colored, one below `lineart/` (or line_art, scan, scans, bw, monochrome) is
line art, at any depth; any other file is told apart by its chroma (`is_colored`: mean
channel spread above CHROMA_THRESHOLD on a 64-px thumbnail; a yellowed paper scan can pass
for colored: put such pages under lineart/). Which rule decided is counted in the metrics.

The stage writes what every source ends with: Danbooru2020-format records under
`metadata/` (line art tagged `lineart` and `monochrome`, as the select rules expect; rating
s) and `files.json`, each post id's file under the folder, so the metadata, select and
images stages and all later ones run unchanged. Ids come from the file's path (stable
when files are added). Files that are not images by name are skipped and counted;
images that cannot be decoded are counted and listed, file by file, with the reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.data.danbooru import dump_record
from pipeline.files import open_atomic
from pipeline.folders import IMAGE_SUFFIXES, is_junk, natural_key

FILES_NAME = "files.json"
METADATA_NAME = "folder.jsonl"
COLOR_DIRS = ("color", "colour", "colored", "coloured")
LINEART_DIRS = ("lineart", "line_art", "scan", "scans", "bw", "monochrome")
CHROMA_THRESHOLD = 12.0
MAX_PIXELS = 200_000_000  # classification decodes a thumbnail; the images stage applies images.max_pixels
LISTED = 50  # bad files named in the metrics (all are counted)


def post_id(relpath: str, taken: set[int]) -> int:
    """A stable id from the file's path under the folder (the next free one on a clash)."""
    pid = int(hashlib.sha1(relpath.encode()).hexdigest()[:10], 16) % (2**39) + 1
    while pid in taken:
        pid = pid % (2**39) + 1
    taken.add(pid)
    return pid


def _by_folder(rel: Path) -> str | None:
    names = [p.lower() for p in rel.parts[:-1]]
    for name in reversed(names):  # the innermost named folder decides
        if name in COLOR_DIRS:
            return "color"
        if name in LINEART_DIRS:
            return "lineart"
    return None


def index_folder(root: Path, out_dir: Path, progress: bool = True) -> dict:
    """Classify every image under `root`, write metadata/ and files.json into `out_dir`.

    Returns the metrics: counts of colored and line-art images, by which rule, the skipped
    non-images and the undecodable files (named). Raises FileNotFoundError for a missing
    folder and ValueError when it holds no usable colored image.
    """
    from PIL import Image
    from tqdm import tqdm

    from pipeline.imaging import DecodeError, decode_image, is_colored

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"source.root = {str(root)!r}: no such folder; put your images there "
                                "(colored pages and line art, optionally in color/ and lineart/ sub-folders)")
    files = sorted((p for p in root.rglob("*") if p.is_file() and not is_junk(p.relative_to(root))),
                   key=lambda p: natural_key(str(p.relative_to(root))))
    counts = {"color": 0, "lineart": 0}
    rules = {"folder": 0, "chroma": 0}
    non_images: list[str] = []
    bad: list[str] = []
    records, mapping, taken = [], {}, set()
    for path in tqdm(files, desc="folder", unit="file", disable=not progress):
        rel = path.relative_to(root)
        name = rel.as_posix()
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            non_images.append(name)
            continue
        kind = _by_folder(rel)
        try:
            with Image.open(path) as probe:
                width, height = probe.size
            if kind is None:
                thumb = decode_image(path, max_pixels=MAX_PIXELS, draft_size=(128, 128), name=name)
                kind = "color" if is_colored(thumb, CHROMA_THRESHOLD) else "lineart"
                rules["chroma"] += 1
            else:
                rules["folder"] += 1
        except (DecodeError, OSError, ValueError, Image.DecompressionBombError) as exc:
            bad.append(f"{name}: {exc}")
            continue
        counts[kind] += 1
        pid = post_id(name, taken)
        mapping[str(pid)] = name
        tags = [("lineart", 0), ("monochrome", 0)] if kind == "lineart" else [("color_page", 0)]
        records.append(dump_record({"id": pid, "image_width": width, "image_height": height, "rating": "s",
                                    "file_ext": path.suffix.lower().lstrip("."), "file_size": path.stat().st_size,
                                    "tags": tags}))
    if not counts["color"]:
        raise ValueError(f"source.root = {str(root)!r}: no colored image among {len(files)} files "
                         f"({counts['lineart']} line art, {len(bad)} unreadable); the pipeline trains on "
                         "colored pages (covers, color spreads): add some, or put them under color/")
    meta = Path(out_dir) / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    for stale in meta.iterdir():  # a previous source kind's files
        if stale.name != METADATA_NAME:
            stale.unlink()
    with open_atomic(meta / METADATA_NAME) as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())
    with open_atomic(Path(out_dir) / FILES_NAME) as f:
        f.write((json.dumps(mapping, indent=1, sort_keys=True) + "\n").encode())
    return {"files": len(files), "color": counts["color"], "lineart": counts["lineart"],
            "by_folder": rules["folder"], "by_chroma": rules["chroma"],
            "skipped_non_images": len(non_images), "unreadable": len(bad), "unreadable_files": bad[:LISTED]}


def folder_files(source_dir: Path) -> dict[int, str]:
    """The id -> path-under-the-folder map the source stage wrote."""
    path = Path(source_dir) / FILES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; re-run the source stage (`dvc repro source`)")
    return {int(k): v for k, v in json.loads(path.read_text()).items()}
