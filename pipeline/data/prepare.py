"""The images stage: selected posts -> packed uint8 training shards.

Output folder layout (one DVC out, few files):
  {domain}-{split}-{k:05d}.npy     uint8 (N, S, S, C): scan C=1, color C=3
  color-holdout-gt-{k:05d}.npy     uint8 (N, S, S, 1): true scans row-aligned with the
                                   color holdout shard (synthetic source only)
  color-holdout-oracle-{k:05d}.npy uint8 (N, S, S, 3): the benchmark's ceiling and floor
  color-holdout-oracle_grey-...    (the synthetic source's oracle*/{id}.png, when present)
  color-holdout-materials-...      uint8 (N, S, S): each pixel's material code
                                   (`pipeline.data.materials`; materials/{id}.png)
  index.parquet                    id, domain, split, shard, row
  failures.csv                     id, domain, split, reason, detail: every skipped post

Why .npy: a training loader memory-maps a shard and slices a batch with no decoding and
no per-file syscalls; a few hundred MB per shard keeps DVC hashing and transfer cheap.

Resume: DVC deletes a stage's outputs before running it, so finished work units live in a
scratch folder outside the output (`<work_dir>/<fingerprint>/`), one atomic file pair per
shard. A killed run re-run with the same inputs skips finished shards; any change of
params or selection changes the fingerprint and starts clean.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections import Counter
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import ImagesConfig, SourceConfig
from pipeline.data.danbooru import UnsafePathError, image_relpath, safe_join
from pipeline.data.workers import process_pool, worker_count
from pipeline.digests import file_stamp, json_digest
from pipeline.files import open_atomic, replace_folder

CHANNELS = {"scan": 1, "color": 3}


INDEX_SCHEMA = pa.schema([("id", pa.int64()), ("domain", pa.string()), ("split", pa.string()),
                          ("shard", pa.string()), ("row", pa.int32())])


@dataclass(frozen=True)
class Unit:
    """One output shard's worth of posts."""

    name: str  # e.g. color-train-00003
    domain: str
    split: str
    posts: tuple[tuple[int, str, str], ...]  # (id, file_ext, file_url or "")
    with_groundtruth: bool


@dataclass(frozen=True)
class Context:
    """Everything a worker process needs (picklable, no open handles)."""

    source: SourceConfig
    images: ImagesConfig
    image_root: str  # the Danbooru layout's root for synthetic/local sources; a folder source's folder
    work_dir: str
    cache_dir: str
    files: dict[int, str] | None = None  # folder source: post id -> its file under image_root


def plan_units(selected: pa.Table, cfg: ImagesConfig, with_groundtruth: bool) -> list[Unit]:
    """Group the selected posts into shards of cfg.shard_images, by domain and split."""
    units = []
    ids = selected.column("id").to_pylist()
    domains = selected.column("domain").to_pylist()
    splits = selected.column("split").to_pylist()
    exts = selected.column("file_ext").to_pylist()
    urls = selected.column("file_url").to_pylist()
    groups: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    for pid, d, s, e, u in zip(ids, domains, splits, exts, urls):
        groups.setdefault((d, s), []).append((pid, e or "", u or ""))
    for (d, s), posts in sorted(groups.items()):
        posts.sort()
        for k in range(0, len(posts), cfg.shard_images):
            units.append(Unit(
                name=f"{d}-{s}-{k // cfg.shard_images:05d}", domain=d, split=s,
                posts=tuple(posts[k:k + cfg.shard_images]),
                with_groundtruth=with_groundtruth and d == "color" and s == "holdout",
            ))
    return units


def fingerprint(units: list[Unit], source: SourceConfig, images: ImagesConfig,
                files: dict[int, str] | None = None) -> str:
    """Changes whenever anything that shapes the output changes (for a folder source, also
    each file's size and modification time: a page replaced under the same name)."""
    src = asdict(source) | {"root": str(Path(source.root or ".").resolve()), "http": None}
    return json_digest({
        "files": [[pid, rel, file_stamp(Path(source.root) / rel)] for pid, rel in sorted((files or {}).items())],
        "images": asdict(images) | {"workers": 0},
        "layers": TRUTH_LAYERS,  # a scratch folder from before a layer was added is not resumed
        "source": src,
        "units": [[u.name, repr(u.posts), u.with_groundtruth] for u in units],
    })


_SESSION = None


def _session(source: SourceConfig):
    global _SESSION
    if _SESSION is None:
        from pipeline.data.http import make_session

        # image files are public; the API login is never sent to file hosts
        _SESSION = make_session(source.http)
    return _SESSION


def locate_images(ctx: Context, unit: Unit) -> tuple[dict[int, Path], dict[int, tuple[str, str]]]:
    """Local paths of a unit's images (downloading them first for HTTP sources).

    Returns (paths by id, failures by id as (reason, detail)). A path that leads out of
    the mirror (a hostile id or file_ext, an image linked to a file elsewhere; see
    `safe_join` for what counts as inside) fails that post as `unsafe_path`, not the stage.
    """
    source = ctx.source
    paths: dict[int, Path] = {}
    failed: dict[int, tuple[str, str]] = {}
    jobs: list[tuple[str, Path]] = []
    job_ids: list[int] = []
    for pid, ext, url in unit.posts:
        if ctx.files is not None:  # a folder source: the file the source stage indexed
            try:
                paths[pid] = safe_join(ctx.image_root, ctx.files[pid])
            except KeyError:
                failed[pid] = ("missing_file", "not in the source stage's files.json; re-run `dvc repro source`")
            except UnsafePathError as exc:
                failed[pid] = ("unsafe_path", str(exc))
            continue
        try:
            rel = image_relpath(pid, ext, source.image_variant)
        except (UnsafePathError, ValueError) as exc:
            failed[pid] = ("unsafe_path", str(exc))
            continue
        if source.kind == "danbooru_api":  # the post carries its own file URL
            if not url:
                failed[pid] = ("no_file_url", "the API did not expose a file URL (restricted post?)")
                continue
            if not url.startswith(("http://", "https://")):
                failed[pid] = ("bad_url", "file_url is not http(s)")
                continue
        try:
            if source.kind in ("synthetic", "local"):
                paths[pid] = safe_join(ctx.image_root, rel)
                continue
            if source.kind == "http":
                from pipeline.data.http import join_url

                dest = safe_join(Path(ctx.cache_dir) / "http", rel)
                url = join_url(source.url, str(rel))
            else:
                dest = safe_join(Path(ctx.cache_dir) / "api", f"{pid}.{ext or 'bin'}")
        except UnsafePathError as exc:
            failed[pid] = ("unsafe_path", str(exc))
            continue
        jobs.append((url, dest))
        job_ids.append(pid)
    if jobs:
        from pipeline.data.http import download_many

        for dest in {d.parent for _, d in jobs}:
            dest.mkdir(parents=True, exist_ok=True)
        results = download_many(_session(source), jobs, source.http)
        for pid, (_, dest) in zip(job_ids, jobs):
            reason = results.get(dest)
            if reason is None:
                paths[pid] = dest
            else:
                failed[pid] = ("download_failed", reason)
    return paths, failed


def process_unit(ctx: Context, unit: Unit) -> dict:
    """Decode + resize one shard's images; write `<name>.npy` (+gt) and `<name>.json`.

    Runs in a worker process. Returns the unit's summary (also stored in the json).
    """
    from pipeline.imaging import DecodeError, prepare_image, prepare_labels

    work = Path(ctx.work_dir)
    done_marker = work / f"{unit.name}.json"
    if done_marker.exists():
        return json.loads(done_marker.read_text())
    cfg = ctx.images
    size, channels = cfg.size, CHANNELS[unit.domain]
    paths, failed = locate_images(ctx, unit)
    arrays, gts, kept = [], [], []
    oracles: dict[str, list[np.ndarray]] = {layer: [] for layer in TRUTH_LAYERS}
    failures = [(pid, r, d) for pid, (r, d) in failed.items()]
    for pid, _ext, _url in unit.posts:
        if pid in failed:
            continue
        path = paths[pid]
        try:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing")
            img = prepare_image(path, size=size, fit=cfg.fit, channels=channels,
                                max_pixels=cfg.max_pixels, allow_truncated=cfg.allow_truncated,
                                name=(ctx.files or {}).get(pid, str(pid)))
            gt = None
            if unit.with_groundtruth:
                gt_rel = PurePosixPath("groundtruth", f"{pid}.png")
                try:
                    gt_path = safe_join(ctx.image_root, gt_rel)
                except UnsafePathError as exc:
                    failures.append((pid, "unsafe_path", str(exc)))
                    continue
                if not gt_path.is_file():
                    failures.append((pid, "no_groundtruth", str(Path(ctx.image_root) / gt_rel)))
                    continue
                gt = prepare_image(gt_path, size=size, fit=cfg.fit, channels=1,
                                   max_pixels=cfg.max_pixels, name=f"groundtruth {pid}")
                for layer in TRUTH_LAYERS:  # optional: only a whole shard's worth is kept
                    layer_path = gt_path.parent.parent / layer / f"{pid}.png"
                    if not layer_path.is_file():
                        continue
                    if layer in LABEL_LAYERS:
                        oracles[layer].append(prepare_labels(layer_path, size=size, fit=cfg.fit,
                                                             max_pixels=cfg.max_pixels, name=f"{layer} {pid}"))
                    else:
                        oracles[layer].append(prepare_image(layer_path, size=size, fit=cfg.fit, channels=3,
                                                            max_pixels=cfg.max_pixels, name=f"{layer} {pid}"))
        except DecodeError as exc:
            failures.append((pid, exc.reason, str(exc)))
            continue
        except FileNotFoundError as exc:
            failures.append((pid, "missing_file", str(exc)))
            continue
        except OSError as exc:
            failures.append((pid, "io_error", str(exc)))
            continue
        arrays.append(img)
        kept.append(pid)
        if gt is not None:
            gts.append(gt)
    empty = np.zeros((0, size, size, channels), dtype=np.uint8)
    _save_npy(work / f"{unit.name}.npy", np.stack(arrays) if arrays else empty)
    if unit.with_groundtruth:
        gt_empty = np.zeros((0, size, size, 1), dtype=np.uint8)
        _save_npy(work / f"{gt_name(unit.name)}.npy", np.stack(gts) if gts else gt_empty)
    complete = [layer for layer in TRUTH_LAYERS if kept and len(oracles[layer]) == len(kept)]
    for layer in complete:
        _save_npy(work / f"{gt_name(unit.name, layer)}.npy", np.stack(oracles[layer]))
    summary = {"name": unit.name, "domain": unit.domain, "split": unit.split, "ids": kept,
               "failures": sorted(failures), "groundtruth": unit.with_groundtruth, "oracles": complete}
    _write_atomic(done_marker, json.dumps(summary).encode())  # written last: marks completion
    return summary


ORACLE_LAYERS = ("oracle", "oracle_grey")  # RGB pictures, resized like the image
LABEL_LAYERS = ("materials",)  # maps of codes, resized nearest-neighbour
TRUTH_LAYERS = ORACLE_LAYERS + LABEL_LAYERS


def gt_name(unit_name: str, layer: str = "gt") -> str:
    domain, split, k = unit_name.rsplit("-", 2)
    return f"{domain}-{split}-{layer}-{k}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open_atomic(path) as f:
        np.save(f, array)


def _write_atomic(path: Path, data: bytes) -> None:
    with open_atomic(path) as f:
        f.write(data)


def prepare_images(
    selected: pa.Table,
    source: SourceConfig,
    images: ImagesConfig,
    image_root: Path,
    out_dir: Path,
    work_root: Path,
    cache_dir: Path,
    progress: bool = True,
    files: dict[int, str] | None = None,
) -> dict:
    """Run every unit (in parallel, resuming finished ones) and assemble `out_dir`.
    files: a folder source's id -> file map (`folder_source.folder_files`)."""
    t0 = time.perf_counter()
    out_dir, work_root = Path(out_dir), Path(work_root)
    with_gt = source.kind == "synthetic" and (Path(image_root) / "groundtruth").is_dir()
    units = plan_units(selected, images, with_gt)
    work = work_root / fingerprint(units, source, images, files)
    work.mkdir(parents=True, exist_ok=True)
    for stale in work_root.iterdir():  # other fingerprints: a previous, different run
        if stale != work and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    ctx = Context(source=source, images=images, image_root=str(image_root), work_dir=str(work),
                  cache_dir=str(cache_dir), files=files)
    resumed = sum(1 for u in units if (work / f"{u.name}.json").exists())
    summaries = _run_units(ctx, units, images.workers, progress)
    stats = _assemble(summaries, units, work, out_dir)
    shutil.rmtree(work, ignore_errors=True)
    stats.update(units=len(units), units_resumed=resumed, seconds=round(time.perf_counter() - t0, 2))
    return stats


def _run_units(ctx: Context, units: list[Unit], workers: int, progress: bool) -> dict[str, dict]:
    from tqdm import tqdm

    n_workers = worker_count(workers)
    total = sum(len(u.posts) for u in units)
    bar = tqdm(total=total, desc="images", unit="img", disable=not progress, mininterval=1.0)
    summaries: dict[str, dict] = {}
    try:
        if n_workers == 1 or len(units) <= 1:
            for u in units:
                summaries[u.name] = process_unit(ctx, u)
                bar.update(len(u.posts))
        else:
            with process_pool(n_workers) as pool:
                futures = {pool.submit(process_unit, ctx, u): u for u in units}
                for fut in as_completed(futures):
                    u = futures[fut]
                    summaries[u.name] = fut.result()
                    bar.update(len(u.posts))
    finally:
        bar.close()
    return summaries


def _assemble(summaries: dict[str, dict], units: list[Unit], work: Path, out_dir: Path) -> dict:
    """Move finished shards into a fresh out_dir with its index and failure list."""
    with replace_folder(out_dir) as tmp_out:
        return _fill(tmp_out, summaries, units, work)


def _fill(tmp_out: Path, summaries: dict[str, dict], units: list[Unit], work: Path) -> dict:
    index_rows = {"id": [], "domain": [], "split": [], "shard": [], "row": []}
    failures: list[tuple] = []
    counts: Counter = Counter()
    for u in units:
        s = summaries[u.name]
        shard = f"{u.name}.npy"
        os.replace(work / shard, tmp_out / shard)
        if u.with_groundtruth:
            for layer in ("gt", *s.get("oracles", [])):
                os.replace(work / f"{gt_name(u.name, layer)}.npy", tmp_out / f"{gt_name(u.name, layer)}.npy")
        for row, pid in enumerate(s["ids"]):
            index_rows["id"].append(pid)
            index_rows["domain"].append(u.domain)
            index_rows["split"].append(u.split)
            index_rows["shard"].append(shard)
            index_rows["row"].append(row)
        counts[f"{u.domain}_{u.split}"] += len(s["ids"])
        for pid, reason, detail in s["failures"]:
            failures.append((pid, u.domain, u.split, reason, detail))
            counts[f"failed_{reason}"] += 1
    pq.write_table(pa.table(index_rows, schema=INDEX_SCHEMA), tmp_out / "index.parquet")
    with open(tmp_out / "failures.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "domain", "split", "reason", "detail"])
        w.writerows(sorted(failures))
    stats = {"images": len(index_rows["id"]), "failed": len(failures)}
    stats.update(sorted(counts.items()))
    return stats
