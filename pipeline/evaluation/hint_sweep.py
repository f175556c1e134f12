"""How a hint colorizer answers hints, on the synthetic holdout (README, "Hints").

- quality against the number of hints: PSNR and ΔE2000 of the composite (the true scan
  multiplied over the color layer) for 0, 1, 2, 5, 10, 20 and 50 hints sampled from the
  true colors (nested: the 10 hints hold the 5), the way `pipeline.training.hint_sampler` samples
  them in training but with a fixed 3-pixel patch;
- obedience: per hinted region, the ΔE2000 between the mean color (CIELAB) the color layer
  paints over it and the mean color the hints spread over it (the hint's color, or several
  hints blended), averaged over all hinted regions of a count;
- bleed: one hint per image in a color far from the truth (the hue opposite the region's, at
  full chroma): the ΔE2000 between the outputs with and without it, over the pixels of
  *other* regions within `BLEED_RING` pixels of the hinted one (the neighbours across its
  closing line) whose true color is another material's (ΔE2000 > 10 from the hinted
  region's), against the same change inside the hinted region, and how close the inside
  came to the contrary color (its obedience).
"""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.metrics import delta_e_map, lab

HINT_COUNTS = (0, 1, 2, 5, 10, 20, 50)
EVAL_PATCH = 3
BLEED_RING = 6
OTHER_MATERIAL = 10.0  # ΔE2000 between true colors that makes a neighbour another material


def nested_hints(seed: int, scans: np.ndarray, colors: np.ndarray, n_max: int):
    """Per image, n_max hints (hint_ids, colors) in a fixed order; the first n are 'n hints'."""
    from pipeline.colorist.hints import sample_hints

    rng = np.random.default_rng(seed)
    return [_patched(sample_hints(rng, s[..., 0], c, n_max, 1), c) for s, c in zip(scans, colors)]


def _patched(hints, color: np.ndarray):
    """Grow 1-pixel hints to EVAL_PATCH squares carrying the target's mean over them."""
    ids, _ = hints
    h, w = ids.shape
    out = np.full_like(ids, -1)
    ys, xs = np.nonzero(ids >= 0)
    order = np.argsort(ids[ys, xs])
    cols = np.empty((len(order), 3), np.uint8)
    r = EVAL_PATCH // 2
    for k, (y, x) in enumerate(zip(ys[order].tolist(), xs[order].tolist())):
        y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
        out[y0:y1, x0:x1] = np.where(out[y0:y1, x0:x1] < 0, k, out[y0:y1, x0:x1])
        cols[k] = np.rint(color[y0:y1, x0:x1].reshape(-1, 3).mean(0)).astype(np.uint8)
    return out, cols


def first_n(hints, n: int):
    ids, cols = hints
    return np.where(ids < n, ids, -1), cols[:n]


def hint_sweep(model, scans: np.ndarray, colors: np.ndarray, rt, batch: int = 64, seed: int = 0,
               counts=HINT_COUNTS) -> tuple[list[dict], dict[int, np.ndarray]]:
    """Rows {hints, psnr, delta_e, obedience_delta_e} per count; and per count n its
    composites (key n) and the hints given (key "hints_n": (ids, colors) per image)."""
    from pipeline.colorist.arrays import colorize_arrays, compose_arrays, stroke_masks
    from pipeline.colorist.hints import encode_hints
    from pipeline.colorist.regions import regions
    from pipeline.evaluation.metrics import color_metrics

    labels = [regions(s[..., 0])[0] for s in scans]
    all_hints = nested_hints(seed, scans, colors, max(counts))
    strokes = stroke_masks(scans)
    rows, shown = [], {}
    for n in counts:
        chosen = [first_n(h, n) for h in all_hints]
        shown[f"hints_{n}"] = chosen
        encoded = np.stack([encode_hints(s[..., 0], ids, cols, lbl)
                            for s, (ids, cols), lbl in zip(scans, chosen, labels)])
        layer = colorize_arrays(model, scans, rt, batch, ink="none", hints=encoded, labels=labels)
        composite = compose_arrays(layer, scans)
        m = color_metrics(composite, colors, scans, strokes)
        row = {"hints": n, "psnr": m["psnr"], "delta_e": m["delta_e"], "colorfulness": m["colorfulness"]}
        if n:
            row["obedience_delta_e"] = round(float(np.mean(_obedience(layer, encoded, labels))), 4)
        rows.append(row)
        shown[n] = composite
    return rows, shown


def _obedience(layer: np.ndarray, encoded: np.ndarray, labels: list[np.ndarray]) -> list[float]:
    """Per hinted region: ΔE between the mean color (CIELAB) the layer paints over it and the
    mean color the hints spread over it (one hint's color, or several blended)."""
    from pipeline.colorist.hints import SPREAD_MARK

    out = []
    for img, enc, lbl in zip(layer, encoded, labels):
        painted = enc[..., 3] >= SPREAD_MARK
        if not painted.any():
            continue
        got, asked = lab(img), lab(enc[..., :3])
        for region in np.unique(lbl[painted]).tolist():
            where = painted & (lbl == region)
            out.append(float(delta_e_map(got[where].mean(0)[None], asked[where].mean(0)[None])[0]))
    return out


def opposite_color(rgb: np.ndarray) -> np.ndarray:
    """The hue opposite a color's in CIELAB, at a strong chroma and mid lightness: a hint
    that disagrees with the truth as much as a hint can."""
    from skimage.color import lab2rgb

    a, b = lab(np.asarray(rgb, np.uint8)[None, None])[0, 0, 1:]
    norm = max(1e-6, float(np.hypot(a, b)))
    direction = (-a / norm, -b / norm) if norm > 1 else (1.0, 0.0)
    target = np.array([[[60.0, 60 * direction[0], 60 * direction[1]]]])
    return np.rint(np.clip(lab2rgb(target)[0, 0], 0, 1) * 255).astype(np.uint8)


def bleed(model, scans: np.ndarray, colors: np.ndarray, rt, batch: int = 64, seed: int = 0,
          edges: bool = True) -> dict[str, float]:
    """One contrary hint per image: ΔE of the change across the hinted region's closing line
    (ring) and inside it. Images whose hint lands in a region with no neighbour in reach are
    left out (counted). edges: as `colorize_arrays` (False: the network's raw colors)."""
    from scipy import ndimage

    from pipeline.colorist.arrays import colorize_arrays
    from pipeline.colorist.hints import HINT_MARK, encode_hints, sample_hints
    from pipeline.colorist.regions import regions

    rng = np.random.default_rng(seed + 1)
    encoded, regions_hit, labels = [], [], []
    for s, c in zip(scans, colors):
        lbl, _ = regions(s[..., 0])
        ids, cols = sample_hints(rng, s[..., 0], c, 1, 1)
        if len(cols):
            cols = opposite_color(cols[0])[None]
        encoded.append(encode_hints(s[..., 0], ids, cols, lbl))
        ys, xs = np.nonzero(ids >= 0)
        regions_hit.append(int(lbl[ys[0], xs[0]]) if len(ys) else 0)
        labels.append(lbl)
    before = colorize_arrays(model, scans, rt, batch, ink="none", edges=edges, labels=labels)
    after = colorize_arrays(model, scans, rt, batch, ink="none", hints=np.stack(encoded), edges=edges,
                            labels=labels)
    ring_de, inside_de, obeyed, skipped = [], [], [], 0
    for b, a, lbl, region, truth, enc in zip(before, after, labels, regions_hit, colors, encoded):
        if not region:
            skipped += 1
            continue
        hit = lbl == region
        hint_color = enc[enc[..., 3] == HINT_MARK][0, :3]
        truth_lab = lab(truth)
        own = truth_lab[hit].mean(0)
        # neighbours of another material: a fold line inside one garment closes a region too,
        # and a hint rightly carries across it
        other = delta_e_map(truth_lab, np.broadcast_to(own, truth_lab.shape)) > OTHER_MATERIAL
        ring = ndimage.binary_dilation(hit, iterations=BLEED_RING) & ~hit & (lbl > 0) & other
        if not ring.any():
            skipped += 1
            continue
        after_lab = lab(a)
        change = delta_e_map(lab(b), after_lab)
        ring_de.append(float(change[ring].mean()))
        inside_de.append(float(change[hit].mean()))
        obeyed.append(float(delta_e_map(after_lab[hit].mean(0)[None], lab(hint_color[None, None])[0])[0]))
    if not ring_de:
        return {"images": 0, "skipped": skipped}
    return {"images": len(ring_de), "skipped": skipped,
            "ring_delta_e": round(float(np.mean(ring_de)), 4),
            "ring_delta_e_p95": round(float(np.percentile(ring_de, 95)), 4),
            "inside_delta_e": round(float(np.mean(inside_de)), 4),
            "obedience_delta_e": round(float(np.mean(obeyed)), 4)}
