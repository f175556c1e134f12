"""What a scan generator can reach on L1 / PSNR / SSIM when it cannot know the screentone's phase.

The synthetic true scans lay their dots and hatching on a grid fixed to the page, at a
period and angle drawn per picture; nothing in the colored image says where that grid
sits (nor does anything in a real colored page). A generator that draws the right tone in
the right region, at the right density, period and angle, but on a grid shifted by an
unknown offset, is as good as a scan generator can be without that knowledge. This
script renders it: every synthetic holdout picture's true scan again, with each picture's
tone grid shifted by a random whole-pixel offset (all lines, solid blacks and tone regions
exact), and, as the choice a pixel measure rewards, the average of `--phases` such shifts
(each tone region its mean grey: the "descreened" scan). Both are prepared to the
pipeline's image size exactly as the images stage prepares the true scans, and compared
with the true scans next to greyscale(color), the evaluate stage's baseline, and (with
`--scan-model`) a trained scan generator. Every candidate is also measured "descreened":
candidate and truth both averaged over 5x5 pixels (the tone's period at 256 px is 2-4 px),
which compares how much ink each region gets, whatever its dot pattern.

    python tools/tone_phase_ceiling.py [--params params.yaml] [--selected data/selected.parquet]
                                       [--scan-model models/scan_generator.pt]
                                       [--phases 8] [--json docs/tone_phase.json]

Needs the `select` stage's output (the holdout ids) of a synthetic-source run; renders
the holdout again from `source.synthetic`, so no other stage output is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def render_variants(plan, seed: int, canvas: int, cast_size: int, phases: int,
                    rng: np.random.Generator) -> dict[str, object]:
    """The post's color image, true scan, one phase-shifted scan and the mean over `phases`
    shifted scans (PIL images at the 512px subset's canvas); {} for a post without a true scan."""
    from PIL import Image

    from pipeline.data.synthetic import scene_images
    from pipeline.data.synthetic.post_images import render_post

    scene, color, truth = render_post(plan, seed, canvas, cast_size)
    if "truth" not in truth:
        return {}  # a post with no true scan (the images stage skips it the same way)
    period = max(2.0, scene.tone_period)
    original = scene_images._tone_pattern
    shifted = []
    try:
        for _ in range(phases):
            dx, dy = (int(v) for v in rng.integers(1, max(2, round(1.6 * period)), size=2))

            def pattern(kind, box, p, angle, dx=dx, dy=dy):
                return original(kind, (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy), p, angle)

            scene_images._tone_pattern = pattern
            shifted.append(np.asarray(scene_images.pad_to_square(scene_images.render_scan(scene), canvas), np.float32))
    finally:
        scene_images._tone_pattern = original
    mean = Image.fromarray(np.round(np.mean(shifted, axis=0)).astype(np.uint8), "L")
    return {"color": color, "truth": truth["truth"], "shifted": Image.fromarray(shifted[0].astype(np.uint8), "L"),
            "descreened": mean}


DESCREEN = 5  # box side of the descreened comparison, pixels at the prepared size


def descreen(x):
    import torch.nn.functional as F

    return F.avg_pool2d(x, DESCREEN, stride=1, padding=DESCREEN // 2, count_include_pad=False)


def measure(params_path: Path, selected_path: Path, phases: int, seed: int,
            scan_model: Path | None = None) -> dict:
    import pyarrow.parquet as pq
    import torch

    from pipeline.config import load_params
    from pipeline.data.synthetic.post_images import _encode
    from pipeline.data.synthetic.posts import plan_posts
    from pipeline.evaluation.metrics import compare, psnr_per_image
    from pipeline.imaging import prepare_image
    from pipeline.pixels import luma

    params = load_params(params_path)
    if params.source.kind != "synthetic":
        raise SystemExit(f"{params_path}: source.kind is {params.source.kind!r}; this needs the synthetic source")
    syn, images = params.source.synthetic, params.images
    table = pq.read_table(selected_path).to_pandas()
    ids = sorted(int(i) for i in table[(table["domain"] == "color") & (table["split"] == "holdout")]["id"])
    wanted = set(ids)
    plans = {p.id: p for p in plan_posts(syn) if p.id in wanted}
    rng = np.random.default_rng(seed)

    def prep(data: bytes, channels: int) -> np.ndarray:
        return prepare_image(data, size=images.size, fit=images.fit, channels=channels,
                             max_pixels=images.max_pixels)

    rows = {"truth": [], "shifted": [], "descreened": [], "color": []}
    for k, pid in enumerate(ids):
        v = render_variants(plans[pid], syn.seed, syn.canvas, syn.cast_size, phases, rng)
        if not v:
            continue
        rows["color"].append(prep(_encode(v["color"], "JPEG"), 3))
        for name in ("truth", "shifted", "descreened"):
            rows[name].append(prep(_encode(v[name], "PNG"), 1))
        print(f"tone phase: {k + 1}/{len(ids)} pictures", file=sys.stderr, end="\r", flush=True)
    print(file=sys.stderr)

    def tensor(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255

    truth = tensor(rows["truth"])
    color = torch.from_numpy(np.stack(rows["color"])).permute(0, 3, 1, 2).float()
    candidates = {"greyscale(color)": luma(color).round() / 255,  # as scan_quality computes it
                  "true scan, tone grid shifted": tensor(rows["shifted"]),
                  f"true scan, tone averaged over {phases} shifts": tensor(rows["descreened"])}
    if scan_model is not None:
        from pipeline.batched import generate_scans
        from pipeline.models.scan_generator import load_scan_generator
        from pipeline.runtime import setup_runtime

        rt = setup_runtime("cpu")
        generated = generate_scans(load_scan_generator(scan_model, rt.device), np.stack(rows["color"]), rt, 16)
        candidates[f"scan generator ({scan_model.name})"] = tensor(list(generated))
    out = {"images": len(rows["truth"]), "size": images.size, "phases": phases, "seed": seed,
           "descreen_px": DESCREEN, "rows": {}}
    flat_truth = descreen(truth)
    for name, x in candidates.items():
        row = {m: round(float(v.clamp(max=100).mean()), 4) for m, v in compare(x, truth).items()}
        row["descreened_psnr"] = round(float(psnr_per_image(descreen(x), flat_truth).clamp(max=100).mean()), 4)
        out["rows"][name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--selected", type=Path, default=ROOT / "data" / "selected.parquet",
                    help="the select stage's output (default: data/selected.parquet)")
    ap.add_argument("--phases", type=int, default=8, help="shifted renders averaged for the descreened scan")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random grid offsets")
    ap.add_argument("--scan-model", type=Path, help="also measure this scan generator (models/scan_generator.pt)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if not args.selected.is_file():
        ap.error(f"{args.selected}: not found; run `dvc repro select` first")
    if args.phases < 1:
        ap.error("--phases must be at least 1")
    if args.scan_model is not None and not args.scan_model.is_file():
        ap.error(f"{args.scan_model}: not found (`dvc repro train_cyclegan` or `dvc pull` makes it)")
    out = measure(args.params, args.selected, args.phases, args.seed, args.scan_model)
    print(f"{out['images']} holdout pictures at {out['size']} px, against the true scans")
    print(f"| {'candidate':<42} | L1 ↓  | PSNR ↑   | SSIM ↑ | PSNR, descreened ↑ |")
    print(f"|{'-' * 44}|-------|----------|--------|--------------------|")
    for name, r in out["rows"].items():
        print(f"| {name:<42} | {r['l1']:.3f} | {r['psnr']:.2f} dB | {r['ssim']:.3f}  | "
              f"{r['descreened_psnr']:.2f} dB           |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2) + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
