"""The synthetic mini-Danbooru2020 as a whole: `generate_dataset` writes it to a folder.

The `source` stage calls it (kind synthetic, through `pipeline.data.sources`), and so does
`onepunch synthetic`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from pipeline.config import SyntheticConfig
from pipeline.data.synthetic.post_images import render_all
from pipeline.data.synthetic.posts import plan_posts
from pipeline.data.synthetic.records import build_metadata
from pipeline.files import replace_folder

MARKER = "SYNTHETIC.json"  # marks a folder this package may replace


def generate_dataset(cfg: SyntheticConfig, root: str | Path, workers: int = 0,
                     progress: bool = True) -> dict[str, Any]:
    """Write the synthetic Danbooru2020 mirror to root (replacing an earlier one); return stats.

    Everything is built in a temporary sibling folder that replaces `root` whole at the end, so a killed
    run leaves either the previous result or nothing, and a re-run starts clean.
    """
    cfg.validate("source.synthetic")
    root = Path(root)
    _check_replaceable(root)
    start = time.perf_counter()
    with replace_folder(root) as partial:
        plans = plan_posts(cfg)
        drawn = render_all(plans, cfg.seed, cfg.canvas, partial, workers, progress, cfg.cast_size)
        shards, counts = build_metadata(cfg, plans, drawn)
        (partial / "metadata").mkdir()
        for name, lines in shards.items():
            (partial / "metadata" / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        kinds = {k: sum(p.kind == k for p in plans) for k in dict.fromkeys(p.kind for p in plans)}
        # the package, not this module: the marker reads "pipeline.data.synthetic" as before the split
        marker = {"generator": __package__, "config": dataclasses.asdict(cfg), "kinds": kinds, **counts}
        (partial / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    diff = sum(d["abs_diff"] for d in drawn)
    pixels = sum(d["pixels"] for d in drawn)
    return {
        "kinds": kinds,
        **counts,
        "n_images": sum(p.has_image for p in plans),
        "n_groundtruth": sum(p.kind == "color" and p.has_image for p in plans),
        "grey_vs_scan_mad": round(diff / pixels, 3) if pixels else 0.0,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _check_replaceable(root: Path) -> None:
    """Refuse to delete a folder this package did not write (e.g. a real mirror)."""
    if root.is_file():
        raise FileExistsError(f"{root}: is a file; the synthetic source needs a folder path")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise FileExistsError(f"{root}: not empty and not written by the synthetic generator (no {MARKER}); "
                              "refusing to replace it: remove it or choose another source.root")
