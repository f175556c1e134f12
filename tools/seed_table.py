"""The seed table: headline figures as mean ± std over seeds, from DVC experiments.

Run the seeds as experiments, then this:

    dvc exp run --queue -S seed=1 && dvc exp run --queue -S seed=2 && dvc exp run --run-all
    python tools/seed_table.py [--json docs/seeds.json]

It reads `dvc exp show --json` (the workspace and every experiment of HEAD), keeps one
run per seed, and prints per-seed values and mean ± std of each headline figure, with a
verdict per comparison: does every seed go the same way, and is the mean margin at least
2 std of the per-seed margins?
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from pipeline.data.materials import GROUPS

ROOT = Path(__file__).resolve().parents[1]

# (label, path in metrics/evaluate.json's "eval")
FIGURES = [
    ("scan L1, generator", ("scan", "scangen_l1")), ("scan L1, greyscale", ("scan", "greyscale_l1")),
    ("scan PSNR, generator", ("scan", "scangen_psnr")), ("scan PSNR, greyscale", ("scan", "greyscale_psnr")),
    ("scan SSIM, generator", ("scan", "scangen_ssim")), ("scan SSIM, greyscale", ("scan", "greyscale_ssim")),
    ("colorizer ΔE, method", ("scangen", "true_scan", "delta_e")),
    ("colorizer ΔE, greyscale-trained", ("greyscale", "true_scan", "delta_e")),
    ("colorizer ΔE on generated scans, method", ("scangen", "generated_scan", "delta_e")),
    # the scan domain gap: ΔE on true scans minus on generated ones (pipeline.evaluation.evaluate)
    ("domain gap ΔE, method", ("scangen", "gap_delta_e")),
    ("domain gap ΔE, greyscale-trained", ("greyscale", "gap_delta_e")),
    ("colorizer PSNR, method", ("scangen", "true_scan", "psnr")),
    ("colorizer PSNR, greyscale-trained", ("greyscale", "true_scan", "psnr")),
    ("colorfulness, method", ("scangen", "true_scan", "colorfulness")),
    ("colorfulness, greyscale-trained", ("greyscale", "true_scan", "colorfulness")),
    ("colorfulness, ground truth", ("ground_truth", "colorfulness")),
    ("oracle ΔE (ceiling)", ("oracle", "delta_e")), ("grey fill ΔE (floor)", ("grey_fill", "delta_e")),
    # ΔE on true scans per group of materials (pipeline.data.materials)
    *[(f"ΔE {group}, {who}", (key, "materials", group)) for group in GROUPS
      for key, who in (("scangen", "method"), ("greyscale", "greyscale-trained"), ("oracle", "oracle"))],
    # color hints, the method's colorizer (pipeline.evaluation.hint_sweep)
    *[(f"ΔE, {n} hints", ("scangen", "hints", f"n{n}", "delta_e")) for n in (0, 1, 2, 5, 10, 20, 50)],
    *[(f"PSNR, {n} hints", ("scangen", "hints", f"n{n}", "psnr")) for n in (0, 10, 50)],
    ("obedience ΔE, 10 hints", ("scangen", "hints", "n10", "obedience_delta_e")),
    ("contrary hint: obedience ΔE", ("scangen", "hints", "bleed", "obedience_delta_e")),
    ("contrary hint: change inside ΔE", ("scangen", "hints", "bleed", "inside_delta_e")),
    ("contrary hint: bleed next door ΔE", ("scangen", "hints", "bleed", "ring_delta_e")),
]
# (label, better, worse, "lower" or "higher" is better)
COMPARISONS = [
    ("scan L1: generator < greyscale", "scan L1, generator", "scan L1, greyscale", "lower"),
    ("scan PSNR: generator > greyscale", "scan PSNR, generator", "scan PSNR, greyscale", "higher"),
    ("scan SSIM: generator > greyscale", "scan SSIM, generator", "scan SSIM, greyscale", "higher"),
    ("colorizer ΔE: method < greyscale-trained", "colorizer ΔE, method", "colorizer ΔE, greyscale-trained", "lower"),
    ("colorizer PSNR: method > greyscale-trained", "colorizer PSNR, method", "colorizer PSNR, greyscale-trained",
     "higher"),
    ("hints: ΔE with 10 < with none", "ΔE, 10 hints", "ΔE, 0 hints", "lower"),
    ("hints: PSNR with 10 > with none", "PSNR, 10 hints", "PSNR, 0 hints", "higher"),
]


def _get(d: dict, path: tuple[str, ...]):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def runs_by_seed(exp_show: list[dict], where: dict[str, str] | None = None) -> dict[int, dict]:
    """seed -> the evaluation of one run (the workspace first, then finished experiments);
    `where`: only runs whose params have these values (dotted key -> value as written on
    the command line, `colorizer.composite_l1` -> `true`; a key a run lacks never matches)."""
    out: dict[int, dict] = {}
    entries = []
    for commit in exp_show:
        entries.append(commit)
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            if state == "success":  # a queued or running one still shows its baseline's metrics
                entries.extend(exp.get("revs") or [])
    for entry in entries:
        data = entry.get("data") or {}
        params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
        ev = (data.get("metrics") or {}).get("metrics/evaluate.json", {}).get("data", {}).get("eval")
        if ev is None or "seed" not in params or not _matches(params, where or {}):
            continue
        out.setdefault(int(params["seed"]), ev)
    return out


def _matches(params: dict, where: dict[str, str]) -> bool:
    for key, wanted in where.items():
        value = _get(params, tuple(key.split(".")))
        if value is None:
            return False
        if (json.dumps(value) if isinstance(value, bool) else str(value)) != wanted:
            return False
    return True


def verdict(margins: list[float]) -> dict:
    """A claim over seeds from per-seed margins oriented so that positive favours it: their
    mean and std, whether every seed goes that way, and whether the mean exceeds 2 std."""
    mean = statistics.fmean(margins)
    std = statistics.stdev(margins) if len(margins) > 1 else 0.0
    return {"margins": margins, "mean_margin": mean, "std": std,
            "every_seed": all(m > 0 for m in margins), "margin_over_2std": mean > 2 * std}


def seed_table(runs: dict[int, dict]) -> dict:
    seeds = sorted(runs)
    figures = {}
    for label, path in FIGURES:
        values = [_get(runs[s], path) for s in seeds]
        if any(v is None for v in values):
            continue
        figures[label] = {"per_seed": values, "mean": statistics.fmean(values),
                          "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    verdicts = []
    for label, a, b, better in COMPARISONS:
        if a not in figures or b not in figures:
            continue
        margins = [(y - x) if better == "lower" else (x - y)
                   for x, y in zip(figures[a]["per_seed"], figures[b]["per_seed"])]
        verdicts.append({"comparison": label, **verdict(margins)})
    return {"seeds": seeds, "figures": figures, "comparisons": verdicts}


def markdown(table: dict) -> str:
    seeds = table["seeds"]
    lines = ["| figure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
             "|---|" + "---|" * len(seeds) + "---|"]
    for label, f in table["figures"].items():
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in f["per_seed"])
                     + f" | {f['mean']:.3f} ± {f['std']:.3f} |")
    lines += ["", "| comparison | margins per seed | mean ± std | every seed | mean ≥ 2 std |", "|---|---|---|---|---|"]
    for c in table["comparisons"]:
        lines.append(f"| {c['comparison']} | " + ", ".join(f"{m:+.3f}" for m in c["margins"])
                     + f" | {c['mean_margin']:+.3f} ± {c['std']:.3f} | {'yes' if c['every_seed'] else 'no'} | "
                     + f"{'yes' if c['margin_over_2std'] else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    ap.add_argument("--exp-show", type=Path, default=None, help="read this `dvc exp show --json` output instead")
    ap.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                    help="only runs with this param value, e.g. colorizer.composite_l1=true (repeatable)")
    args = ap.parse_args()
    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.exit(f"--where {item!r}: expected KEY=VALUE, e.g. colorizer.composite_l1=true")
        where[key] = value
    if args.exp_show:
        data = json.loads(args.exp_show.read_text())
    else:
        proc = subprocess.run(["dvc", "exp", "show", "--json"], cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"dvc exp show failed: {proc.stderr.strip()}")
        data = json.loads(proc.stdout)
    runs = runs_by_seed(data, where)
    if len(runs) < 2:
        sys.exit(f"found {len(runs)} seed(s) with evaluation metrics{' matching --where' if where else ''}; "
                 "run more seeds (see --help)")
    table = seed_table(runs)
    print(markdown(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
