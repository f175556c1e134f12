"""Benchmark: Danbooru2020 metadata -> filtered Parquet.

Generates full-format metadata (string numbers, 1970 nulls, ~30 tag objects per post,
2% duplicate ids) and times three ways of producing the filtered, typed table, each in
its own child process so peak RSS is measured per method (ru_maxrss of that child):

  ours    pipeline.data.metadata.filter.filter_metadata (fused parse+dedupe+filter, the
          `onepunch metadata --select` path)
  stages  the DVC stages: build_metadata_table (full typed table) + select_posts
  pandas  pandas.read_json(lines=True) + filter + to_parquet
  loop    a plain `json.loads` loop + filter + pyarrow table + Parquet

Prints MB/s, peak RSS and the ratios measured in this one run; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GENERAL = [f"tag_{i}" for i in range(3000)] + ["1girl", "solo", "smile", "long_hair", "simple_background"]
SCAN_TAGS = ["monochrome", "greyscale", "lineart", "sketch", "comic", "partially_colored"]


def generate(path: Path, n: int, seed: int = 0) -> None:
    from pipeline.data.danbooru import dump_record

    rng = random.Random(seed)
    t0 = datetime(2005, 1, 1, tzinfo=timezone.utc)
    ids = rng.sample(range(1, 4_500_000), n)
    with open(path, "w", encoding="utf-8") as f:
        for i, pid in enumerate(ids):
            if i and rng.random() < 0.02:  # an older snapshot of an earlier post
                pid = ids[rng.randrange(i)]
            tags = [(t, 0, GENERAL.index(t) + 1 if t in GENERAL[:50] else rng.randrange(1, 10**6))
                    for t in rng.sample(GENERAL, rng.randint(15, 45))]
            if rng.random() < 0.1:
                tags.append((rng.choice(SCAN_TAGS), 0, 7))
            tags += [("artist_名前", 1, 11), ("original", 3, 12), ("character_x", 4, 13), ("highres", 5, 14)]
            created = t0 + timedelta(seconds=rng.randrange(0, 15 * 365 * 86400), microseconds=rng.randrange(10**6))
            post = dict(
                id=pid, created_at=created, updated_at=created + timedelta(days=rng.randrange(900)),
                uploader_id=rng.randrange(1, 600000), score=rng.randrange(-5, 300),
                up_score=rng.randrange(300), down_score=-rng.randrange(10),
                rating=rng.choice("sssqe"), image_width=rng.randrange(200, 4000),
                image_height=rng.randrange(200, 4000), file_ext=rng.choice(["jpg", "jpg", "png", "gif", "zip"]),
                file_size=rng.randrange(10**4, 10**7), md5="%032x" % rng.getrandbits(128),
                source=f"https://i.pximg.net/img-original/img/{pid}_p0.png",
                last_commented_at=None if rng.random() < 0.7 else created,
                last_noted_at=None, parent_id=None if rng.random() < 0.9 else rng.randrange(1, pid + 1),
                approver_id=None if rng.random() < 0.5 else rng.randrange(1, 500),
                pixiv_id=None if rng.random() < 0.5 else rng.randrange(1, 10**8),
                is_deleted=rng.random() < 0.05, is_banned=rng.random() < 0.01,
                has_children=rng.random() < 0.1, tags=tags,
                pools=[rng.randrange(1, 20000)] if rng.random() < 0.05 else [],
                favs=[rng.randrange(1, 600000) for _ in range(rng.randrange(0, 20))],
            )
            f.write(json.dumps(dump_record(post), ensure_ascii=False))
            f.write("\n")


SCAN_INCLUDE = {"monochrome", "greyscale", "lineart", "sketch"}
EXCLUDE = {"comic", "4koma", "partially_colored", "spot_color", "photo_(medium)"}


def _select_cfg():
    from pipeline.config import params_from_dict

    return params_from_dict({"select": {
        "scan": {"include_any": sorted(SCAN_INCLUDE), "exclude": sorted(EXCLUDE)},
        "color": {"exclude": sorted(SCAN_INCLUDE | EXCLUDE)}, "min_side": 0,
        "min_aspect": 0.01, "max_aspect": 100.0}}).select


def run_ours(src: Path, out: Path) -> int:
    """The fused path: `onepunch metadata --select params.yaml`."""
    from pipeline.data.metadata.filter import filter_metadata

    _, counts = filter_metadata([src], out, _select_cfg(), progress=False)
    return counts["selected"]


def run_stages(src: Path, out: Path) -> int:
    """The DVC stages: full typed table (metadata stage), then the select stage."""
    from pipeline.data.metadata.table import build_metadata_table
    from pipeline.data.select import select_posts
    from pipeline.files import write_parquet

    table = out.with_suffix(".all.parquet")
    build_metadata_table([src], table, progress=False)
    selected, _ = select_posts(table, _select_cfg())
    write_parquet(out, selected)
    return selected.num_rows


def _keep(rating, deleted, banned, ext, names) -> bool:
    if rating != "s" or deleted or banned or ext not in ("jpg", "jpeg", "png"):
        return False
    return not (names & EXCLUDE)


def run_pandas(src: Path, out: Path) -> int:
    import pandas as pd

    df = pd.read_json(src, lines=True, dtype=False)
    df = df.drop_duplicates("id", keep="last")
    names = df["tags"].map(lambda tags: {t["name"] for t in tags})
    keep = [_keep(r, d, b, e, n) for r, d, b, e, n in zip(df["rating"], df["is_deleted"], df["is_banned"], df["file_ext"], names)]
    sel = df.loc[keep, ["id", "rating", "file_ext", "image_width", "image_height"]].copy()
    sel["domain"] = ["scan" if n & SCAN_INCLUDE else "color" for n in names[keep]]
    for c in ("id", "image_width", "image_height"):
        sel[c] = sel[c].astype("int64")
    sel.to_parquet(out)
    return len(sel)


def run_loop(src: Path, out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: dict[int, tuple] = {}
    with open(src, "rb") as f:
        for line in f:
            d = json.loads(line)
            names = {t["name"] for t in d["tags"]}
            if _keep(d["rating"], d["is_deleted"], d["is_banned"], d["file_ext"], names):
                rows[int(d["id"])] = (d["rating"], d["file_ext"], int(d["image_width"]),
                                      int(d["image_height"]), "scan" if names & SCAN_INCLUDE else "color")
            else:
                rows.pop(int(d["id"]), None)
    ids = sorted(rows)
    cols = list(zip(*(rows[i] for i in ids))) if ids else [[]] * 5
    pq.write_table(pa.table({"id": ids, "rating": cols[0], "file_ext": cols[1], "image_width": cols[2],
                             "image_height": cols[3], "domain": cols[4]}), out)
    return len(ids)


METHODS = {"ours": run_ours, "stages": run_stages, "pandas": run_pandas, "loop": run_loop}


def measure(method: str, src: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", method, str(src), str(out)],
                            stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    rows = int(proc.stdout.read().strip() or -1)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{method} failed")
    mb = src.stat().st_size / 1e6
    return {"method": method, "seconds": round(seconds, 2), "mb_per_s": round(mb / seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "rows_out": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[200_000, 400_000],
                    help="input sizes in records (default: %(default)s)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--pandas-max", type=int, default=200_000,
                    help="skip pandas above this many records (it needs ~10x the input in RAM)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/metadata.json")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        method, src, out = args.child
        print(METHODS[method](Path(src), Path(out)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.records:
            src = Path(tmp) / f"meta-{n}.jsonl"
            t0 = time.perf_counter()
            generate(src, n)
            print(f"generated {n} records, {src.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.0f}s",
                  flush=True)
            by = {}
            for m in args.methods:
                if m == "pandas" and n > args.pandas_max:
                    continue
                r = measure(m, src, Path(tmp) / f"out-{m}.parquet")
                r.update(records=n, input_mb=round(src.stat().st_size / 1e6, 1))
                by[m] = r
                results.append(r)
                print(f"  {m:>6}: {r['seconds']:7.2f}s {r['mb_per_s']:7.1f} MB/s  peak RSS {r['peak_rss_mb']:7.0f} MB"
                      f"  rows {r['rows_out']}", flush=True)
            for mine in ("ours", "stages"):
                for base in ("pandas", "loop"):
                    if mine in by and base in by:
                        ratio = by[mine]["mb_per_s"] / by[base]["mb_per_s"]
                        by[mine][f"speedup_vs_{base}"] = round(ratio, 2)
                        print(f"  {mine} vs {base}: {ratio:.1f}x")
            src.unlink()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": results, "cpu_count": os.cpu_count()}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
