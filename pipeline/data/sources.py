"""Where Danbooru2020 comes from: one entry point per source kind.

- synthetic: a generated mini-Danbooru2020 written into the source stage's output;
- local: a mirror folder (as rsync delivers it) read in place, never copied;
- http: a mirror's metadata files downloaded (resumable) into the output; images are
  fetched later, only for selected posts;
- danbooru_api: posts paged from the live `/posts.json`, normalised to the dump format;
- folder: a plain folder of your own images, indexed into records (`folder_source`) and
  read in place by the images stage.

Every kind ends with the same thing: a `metadata/` folder of Danbooru2020 JSON lines
and a root under which `image_relpath()` finds images (or per-post file URLs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline.config import SourceConfig, redact_url
from pipeline.data.danbooru import METADATA_SHARD_NAMES
from pipeline.files import open_atomic

DESCRIPTION_FILE = "SOURCE.json"


def materialize_source(cfg: SourceConfig, out_dir: Path, progress: bool = True) -> dict:
    """Run the source stage for `cfg.kind`; returns metrics. `out_dir` is the stage's out."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if cfg.kind == "synthetic":
        from pipeline.data.synthetic.dataset import generate_dataset

        stats = generate_dataset(cfg.synthetic, out_dir, progress=progress)
    elif cfg.kind == "local":
        root = Path(cfg.root)
        if not (root / "metadata").is_dir():
            raise FileNotFoundError(
                f"source.root = {cfg.root!r}: no metadata/ folder there; point it at the folder "
                "that holds metadata/ and 512px/ (or original/) of a Danbooru2020 mirror")
        from pipeline.data.metadata.read import discover_metadata_files

        files = discover_metadata_files(root / "metadata", cfg.metadata_files)
        stats = {"metadata_files": len(files),
                 "metadata_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1)}
        listing = [{"name": f.name, "bytes": f.stat().st_size, "mtime": int(f.stat().st_mtime)}
                   for f in files]
        _write_description(out_dir, {"kind": "local", "root": str(root.resolve()), "metadata": listing})
    elif cfg.kind == "http":
        from pipeline.data.http import FetchError, download_many, join_url, make_session

        names = cfg.metadata_files or list(METADATA_SHARD_NAMES)
        meta_dir = out_dir / "metadata"
        meta_dir.mkdir(exist_ok=True)
        session = make_session(cfg.http)
        jobs = [(join_url(cfg.url, f"metadata/{n}"), meta_dir / n) for n in names]
        results = download_many(session, jobs, cfg.http, progress=progress)
        failed = {str(dest.name): reason for dest, reason in results.items() if reason}
        if failed:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
            raise FetchError(f"could not download metadata from {redact_url(cfg.url)}: {detail} "
                             "(re-run to resume; partial files are kept)")
        stats = {"metadata_files": len(names),
                 "metadata_mb": round(sum((meta_dir / n).stat().st_size for n in names) / 1e6, 1)}
        _write_description(out_dir, {"kind": "http", "url": redact_url(cfg.url), "files": names})
    elif cfg.kind == "danbooru_api":
        from pipeline.data.danbooru_api import fetch_api_metadata

        stats = fetch_api_metadata(cfg, out_dir / "metadata", progress=progress)
        _write_description(out_dir, {"kind": "danbooru_api", "url": redact_url(cfg.url),
                                     "tags": cfg.api.tags})
    elif cfg.kind == "folder":
        from pipeline.data.folder_source import index_folder

        stats = index_folder(Path(cfg.root), out_dir, progress=progress)
        _write_description(out_dir, {"kind": "folder", "root": cfg.root})
    else:  # config validation makes this unreachable
        raise AssertionError(cfg.kind)
    stats = dict(stats)
    stats.setdefault("seconds", round(time.perf_counter() - t0, 2))
    return stats


def _write_description(out_dir: Path, desc: dict) -> None:
    with open_atomic(out_dir / DESCRIPTION_FILE) as f:
        f.write((json.dumps(desc, indent=2, sort_keys=True) + "\n").encode())
