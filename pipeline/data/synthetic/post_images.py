"""Drawing the synthetic posts: one post's images (`render_post`), written by a process pool.

Used by the `source` stage (kind synthetic, via `generate_dataset`) and by `onepunch synthetic`.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.data.danbooru import image_relpath
from pipeline.data.materials import CODE
from pipeline.data.synthetic.distractors import (
    corrupt,
    render_4koma,
    render_comic,
    render_partially_monochrome,
    render_photo,
    render_spot_color,
)
from pipeline.data.synthetic.palettes import make_cast
from pipeline.data.synthetic.posts import PostPlan, seed_entropy
from pipeline.data.synthetic.scene_images import (
    pad_to_square,
    render_color,
    render_materials,
    render_oracle,
    render_scan,
)
from pipeline.data.synthetic.scenes import Scene, make_scene
from pipeline.data.workers import process_pool, worker_count
from pipeline.imaging import shrink_to_fit

JPEG_QUALITY = 90
TRUTH_LAYERS = ("oracle", "oracle_grey", "materials")  # beside groundtruth/, per color-domain post


def render_post(plan: PostPlan, seed: int, canvas: int,
                cast_size: int = 8) -> tuple[Scene, Image.Image | None, dict[str, Image.Image]]:
    """(scene, 512px image, ground truth) of one post; the image is None when it has no file.

    Ground truth, for color-domain posts only (padded like the image): the true scan
    ("truth"), the benchmark's ceiling and floor ("oracle", "oracle_grey") and each pixel's
    material code ("materials", padded with the code "outside"). Figures are
    drawn from the series' cast of `cast_size` recurring characters (0: none) or the priors.
    """
    e = seed_entropy(seed)
    scene_rng, color_rng, extra_rng = (np.random.default_rng([e, plan.id, k]) for k in range(3))
    size = shrink_to_fit(plan.width, plan.height, canvas)
    scene = make_scene(scene_rng, *size, cast=make_cast(seed, cast_size) if cast_size else ())
    if not plan.has_image:
        return scene, None, {}
    truth: dict[str, Image.Image] = {}
    if plan.look == "scan":
        img = render_scan(scene)
        img = img if plan.grey_jpeg else img.convert("RGB")
    elif plan.look == "color":
        img = render_color(scene, None, color_rng, plan.background)
        if plan.kind == "color":
            scan = render_scan(scene)
            truth = {"truth": pad_to_square(scan, canvas),
                     "oracle": pad_to_square(render_oracle(scene, scan), canvas),
                     "oracle_grey": pad_to_square(render_oracle(scene, scan, grey=True), canvas),
                     "materials": pad_to_square(render_materials(scene, scan.size), canvas, CODE["outside"])}
    elif plan.look == "comic":
        img = render_comic(extra_rng, size)
    elif plan.look.startswith("4koma"):
        img = render_4koma(extra_rng, size, colored=plan.look == "4koma_color")
    elif plan.look == "photo":
        img = render_photo(extra_rng, size)
    elif plan.look == "spot_color":
        img = render_spot_color(extra_rng, size)
    elif plan.look == "partially_monochrome":
        img = render_partially_monochrome(extra_rng, size)
    else:
        raise AssertionError(f"unknown look {plan.look!r}")
    return scene, pad_to_square(img, canvas), truth


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _write_post(task: tuple[PostPlan, int, int, int, str]) -> dict[str, Any]:
    """Worker: draw one post, write its files under out_dir, return what metadata needs."""
    plan, seed, canvas, cast_size, out_dir = task
    scene, img, truth_layers = render_post(plan, seed, canvas, cast_size)
    result = {"tags": scene.tags, "tone_tags": scene.tone_tags(), "abs_diff": 0, "pixels": 0}
    if img is None:
        return result
    data = _encode(img, "JPEG")
    if plan.corruption:
        data = corrupt(np.random.default_rng([seed_entropy(seed), plan.id, 3]), data, plan.corruption)
    path = Path(out_dir, *image_relpath(plan.id, "jpg", "512px").parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if truth_layers:
        truth = truth_layers["truth"]
        Path(out_dir, "groundtruth", f"{plan.id}.png").write_bytes(_encode(truth, "PNG"))
        for layer in TRUTH_LAYERS:
            Path(out_dir, layer, f"{plan.id}.png").write_bytes(_encode(truth_layers[layer], "PNG"))
        grey = np.asarray(img.convert("L"), dtype=np.int16)
        result["abs_diff"] = int(np.abs(grey - np.asarray(truth, dtype=np.int16)).sum())
        result["pixels"] = grey.size
    return result


def render_all(plans: list[PostPlan], seed: int, canvas: int, out_dir: Path, workers: int,
                progress: bool, cast_size: int = 8) -> list[dict[str, Any]]:
    for folder in ("groundtruth", *TRUTH_LAYERS):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    tasks = [(p, seed, canvas, cast_size, str(out_dir)) for p in plans]
    n_workers = max(1, min(worker_count(workers), len(tasks)))
    step = max(1, len(tasks) // 10)

    def report(i: int) -> None:
        if progress and (i % step == 0 or i == len(tasks)):
            print(f"synthetic: drew {i}/{len(tasks)} posts", file=sys.stderr, flush=True)

    results = []
    if n_workers == 1:
        for i, task in enumerate(tasks, 1):
            results.append(_write_post(task))
            report(i)
        return results
    with process_pool(n_workers) as pool:  # spawned workers: see pipeline.data.workers
        for i, result in enumerate(pool.map(_write_post, tasks, chunksize=8), 1):
            results.append(result)
            report(i)
    return results
