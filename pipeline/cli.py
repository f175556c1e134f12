"""`onepunch`: the command-line face of the pipeline library.

No logic lives here: each command parses its arguments and calls the same library
functions the DVC stages call. Heavy imports (pyarrow, Pillow, torch) happen inside the
commands, so `onepunch --help` answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_SCAN_MODEL = Path("models/scan_generator.pt")

app = typer.Typer(
    help="OnePunchGAN: manga/line-art colorization trained on tag-filtered Danbooru2020.\n\n"
    "The training pipeline itself runs with `dvc repro`; these commands work on single "
    "files and folders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _report(results) -> None:
    """One line per file; failures in red on stderr; exit code 1 if any failed."""
    failed = [r for r in results if r.error]
    for r in results:
        if r.output is not None:  # a chapter with failed pages still has its other pages written
            typer.echo(f"{r.source} -> {r.output}" + (f" ({r.note})" if r.note else ""))
        if r.error:
            typer.secho(f"{r.source}: {r.error}", fg=typer.colors.RED, err=True)
    typer.echo(f"{len(results) - len(failed)} written, {len(failed)} failed")
    if failed:
        raise typer.Exit(code=1)


def _fail(message: str, code: int = 2) -> None:
    """Refuse with one red line on stderr: exit code 2 (bad usage), 1 (the work failed)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def _report_damage(stats) -> None:
    """Damaged inputs (the lines before the damage were kept) in red on stderr; exit 1."""
    for name, reason in sorted(stats.damaged.items()):
        typer.secho(f"{name}: {reason}; the lines before the damage were kept", fg=typer.colors.RED, err=True)
    if stats.damaged:
        raise typer.Exit(code=1)


def _output_problem(path: Path, folder: bool = False) -> str | None:
    """Why an output file (or, `folder`, an output folder) cannot be written at `path`, or
    None. Missing folders are fine (the writers make them), but not a file where one must be
    made, nor an existing folder this process may not write into: checked before any work,
    so a run never fails at its very end."""
    import os

    if folder and path.exists() and not path.is_dir():
        return "is a file, not a folder"
    if not folder and path.is_dir():
        return "is a folder; give a file name"
    existing = path if folder else path.parent
    while not os.path.lexists(existing):  # `a.txt/new/x.png`: stops at a.txt
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write into {existing} (permission denied)"
    return None


def _check_output_file(out: Path, option: str = "--out") -> None:
    """An output file path must be writable (`_output_problem`)."""
    problem = _output_problem(out)
    if problem:
        _fail(f"{option} {out}: {problem}")


def _check_output_dir(out_dir: Path | None, option: str = "--out-dir") -> None:
    """An output folder (None: beside each input) must be a folder that can be written into
    or made (`_output_problem`)."""
    problem = None if out_dir is None else _output_problem(out_dir, folder=True)
    if problem:
        _fail(f"{option} {out_dir}: {problem}")


def _same_file(a: Path, b: Path) -> bool:
    """Do two paths name one file (`./`, `..`, links followed; hard links by inode)?"""
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return a.resolve() == b.resolve()


def _check_work_size(work_size: int | None) -> None:
    from pipeline.validation import MODEL_IMAGE_SIZE

    lo, hi = MODEL_IMAGE_SIZE
    if work_size is not None and not lo <= work_size <= hi:
        _fail(f"--work-size {work_size}: must be between {lo} and {hi}")


@app.command("check-params")
def check_params(
    path: Annotated[Path, typer.Argument(help="params file to validate")] = Path("params.yaml"),
) -> None:
    """Validate a params file (types, ranges, unknown keys) without running anything."""
    from pipeline.config import ParamsError, load_params

    try:
        params = load_params(path)
    except (ParamsError, FileNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(f"{path}: ok (source: {params.source.kind}, image size: {params.images.size}px)")


@app.command()
def synthetic(
    out: Annotated[Path, typer.Argument(help="folder to write the mini-Danbooru2020 mirror into")],
    n_color: Annotated[int, typer.Option(help="colored illustrations")] = 600,
    n_scan: Annotated[int, typer.Option(help="line-art scans")] = 600,
    n_distractors: Annotated[int, typer.Option(help="posts the tag filter must reject")] = 120,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same bytes)")] = 2020,
) -> None:
    """Generate a synthetic Danbooru2020 mirror (metadata/, 512px/, groundtruth/)."""
    from pipeline.config import ParamsError, SyntheticConfig, build
    from pipeline.data.synthetic.dataset import generate_dataset

    try:
        cfg = build(SyntheticConfig, {"seed": seed, "n_color": n_color, "n_scan": n_scan,
                                      "n_distractors": n_distractors}, "synthetic")
    except ParamsError as exc:
        _fail(str(exc))
    stats = generate_dataset(cfg, out)
    typer.echo(f"wrote {out}: {stats}")


@app.command("synthetic-page")
def synthetic_page(
    out: Annotated[Path, typer.Argument(help="PNG to write: the page's line-art scan")],
    truth: Annotated[Optional[Path], typer.Option(help="also write the page's colored ground truth here")] = None,
    seed: Annotated[int, typer.Option(help="page seed (same seed, same page)")] = 0,
    width: Annotated[int, typer.Option(help="page width in pixels")] = 1024,
    height: Annotated[int, typer.Option(help="page height in pixels")] = 1448,
) -> None:
    """Draw a manga page of panels with the default dataset's recurring cast: a page no
    model trained on, to try `onepunch colorize` on at page resolution."""
    from pipeline.data.synthetic.pages import render_page
    from pipeline.files import atomic_path

    if not (256 <= width <= 8192 and 256 <= height <= 8192):
        _fail(f"page size {width}x{height}: both sides must be between 256 and 8192")
    for path, option in ((out, "OUT"), (truth, "--truth")):
        if path is not None and path.suffix.lower() != ".png":
            _fail(f"{option} {path}: give a .png file name")
        if path is not None:
            _check_output_file(path, option)
    if truth is not None and _same_file(out, truth):
        _fail(f"--truth {truth}: is OUT {out} too; give the truth its own file name")
    scan, color = render_page(seed, (width, height))
    for path, img, option in ((out, scan, "OUT"), (truth, color, "--truth")):
        if path is not None:
            try:
                with atomic_path(path) as tmp:  # makes the missing folders
                    img.save(tmp, format="PNG")
            except OSError as exc:
                _fail(f"{option} {path}: {exc.strerror or exc}", code=1)
            typer.echo(f"wrote {path}")


@app.command("synthetic-series")
def synthetic_series(
    out: Annotated[Path, typer.Argument(help="folder to write the series into (a `folder` source), "
                                        "e.g. data/own/series: color/ and lineart/ pages")],
    heldout: Annotated[Path | None, typer.Option(
        help="also write held-out (scan, color) pairs here, for `onepunch evaluate`")] = None,
    pages: Annotated[int, typer.Option(help="colored pages to fine-tune on")] = 20,
    lineart: Annotated[int, typer.Option(help="black-and-white pages (the CycleGAN's scan domain)")] = 20,
    heldout_pages: Annotated[int, typer.Option(help="held-out page pairs")] = 8,
    cast_seed: Annotated[int, typer.Option(help="the series' cast (2020 is the default dataset's)")] = 7,
    cast_size: Annotated[int, typer.Option(help="recurring characters, each with fixed colors")] = 4,
) -> None:
    """Draw a synthetic manga series, every figure one of its small cast with fixed colors:
    colored and black-and-white pages to fine-tune on, and held-out pairs to measure it."""
    from pipeline.data.synthetic.pages import write_series

    for name, value, low in (("--pages", pages, 1), ("--lineart", lineart, 0), ("--heldout-pages", heldout_pages, 1),
                             ("--cast-size", cast_size, 1)):
        if not low <= value <= 10_000:
            _fail(f"{name} {value}: must be between {low} and 10000")
    if not 0 <= cast_seed < 2**31:
        _fail(f"--cast-seed {cast_seed}: must be between 0 and 2147483647")
    for path, option in ((out, "OUT"), (heldout, "--heldout")):
        if path is not None and path.exists() and not path.is_dir():
            _fail(f"{option} {path}: a file is in the way; give a folder")
    counts = write_series(out, heldout, pages, lineart, heldout_pages, cast_seed, cast_size)
    typer.echo(f"wrote {counts['color']} colored and {counts['lineart']} line-art pages to {out}"
               + (f", {counts['heldout']} held-out pairs to {heldout}" if heldout is not None else ""))


@app.command()
def metadata(
    inputs: Annotated[list[Path], typer.Argument(help="metadata shards (.gz/.xz/.tar.xz too) or a folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write")] = Path("metadata.parquet"),
    block_mb: Annotated[int, typer.Option(help="MB of JSON parsed per batch (bounds memory)")] = 32,
    select: Annotated[Optional[Path], typer.Option(
        help="params file: write only the posts its select: rules keep (one fused pass, ~2x faster)")] = None,
) -> None:
    """Convert Danbooru2020 metadata JSON lines into one typed, deduplicated Parquet table.

    With --select, parse only what the tag filter needs and write the selected posts.
    """
    from pipeline.config import ParamsError, load_params
    from pipeline.data.metadata.filter import filter_metadata
    from pipeline.data.metadata.read import discover_metadata_files
    from pipeline.data.metadata.table import build_metadata_table

    _check_output_file(out)
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            try:
                files.extend(discover_metadata_files(p))
            except FileNotFoundError as exc:
                _fail(str(exc))
        elif p.is_file():
            files.append(p)
        else:
            _fail(f"{p}: no such file or folder")
    if select is not None:
        try:
            cfg = load_params(select).select
        except (ParamsError, FileNotFoundError) as exc:
            _fail(str(exc))
        try:
            stats, counts = filter_metadata(files, out, cfg, block_mb=block_mb)
        except OSError as exc:
            _fail(f"{exc.filename or out}: {exc.strerror or exc}")
        typer.echo(f"wrote {out}: {counts['selected']} selected of {stats.rows_out} posts "
                   f"({sum(stats.malformed.values())} malformed lines)")
        for key, value in sorted(counts.items()):
            typer.echo(f"{key:>24}: {value}")
        _report_damage(stats)
        return
    try:
        stats = build_metadata_table(files, out, block_mb=block_mb)
    except OSError as exc:
        _fail(f"{exc.filename or out}: {exc.strerror or exc}")
    m = stats.as_metrics()
    typer.echo(f"wrote {out}: {m['rows']} posts from {m['lines']} lines "
               f"({m['malformed_lines']} malformed, {m['duplicate_ids_dropped']} duplicate ids)")
    _report_damage(stats)


@app.command("select")
def select_cmd(
    metadata_parquet: Annotated[Path, typer.Argument(help="Parquet table from `onepunch metadata`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file of selected posts")] = Path("selected.parquet"),
    params: Annotated[Path, typer.Option(help="params file with the select: rules")] = Path("params.yaml"),
) -> None:
    """Apply the tag rules of a params file; print counts per domain and rejection reason."""
    from pipeline.config import ParamsError, load_params
    from pipeline.data.select import select_posts
    from pipeline.files import write_parquet

    if not metadata_parquet.is_file():
        _fail(f"{metadata_parquet}: no such file")
    _check_output_file(out)
    try:
        cfg = load_params(params).select
    except (ParamsError, FileNotFoundError) as exc:
        _fail(str(exc))
    selected, counts = select_posts(metadata_parquet, cfg)
    write_parquet(out, selected)
    for key, value in sorted(counts.items()):
        typer.echo(f"{key:>24}: {value}")


@app.command("prepare-image")
def prepare_image_cmd(
    image: Annotated[Path, typer.Argument(help="any image file Pillow can read")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")] = Path("prepared.png"),
    size: Annotated[int, typer.Option(help="output side in pixels")] = 256,
    fit: Annotated[str, typer.Option(help="pad (white) or crop")] = "pad",
    grey: Annotated[bool, typer.Option(help="1-channel output, as scans are stored")] = False,
    max_pixels: Annotated[Optional[int], typer.Option(help="decompression-bomb cap")] = 100_000_000,
) -> None:
    """Show what the images stage makes of one file (decode, alpha on white, fit to square)."""
    from PIL import Image

    from pipeline.files import atomic_path
    from pipeline.imaging import DecodeError, prepare_image

    if fit not in ("pad", "crop"):
        _fail(f"--fit {fit!r}: allowed values are pad, crop")
    if not 8 <= size <= 8192:
        _fail(f"--size {size}: must be between 8 and 8192")
    if max_pixels is not None and max_pixels < 1:
        _fail(f"--max-pixels {max_pixels}: must be >= 1")
    if not image.is_file():
        _fail(f"{image}: no such file")
    if _same_file(image, out):
        _fail(f"--out {out}: is the input {image}; write the prepared image to another file")
    _check_output_file(out)
    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        _fail(f"--out {out}: unknown image extension {out.suffix!r}; use .png, .jpg, .webp, .tif or .bmp")
    try:
        arr = prepare_image(image, size=size, fit=fit, channels=1 if grey else 3,
                            max_pixels=max_pixels or 100_000_000, name=str(image))
    except DecodeError as exc:
        _fail(f"{image}: {exc.reason}: {exc}")
    try:
        with atomic_path(out) as tmp:
            Image.fromarray(arr[..., 0] if grey else arr).save(tmp, format=fmt)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        _fail(f"--out {out}: {exc.strerror or exc}", code=1)
    typer.echo(f"wrote {out} ({size}x{size})")


@app.command()
def scan(
    images: Annotated[list[Path], typer.Argument(help="colored images (any size or mode: RGBA, palette, greyscale...)")],
    model: Annotated[Path, typer.Option(help="scan generator from `dvc repro` or `dvc pull`")] = Path(
        "models/scan_generator.pt"),
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", "-o",
                                                    help="folder for NAME.scan.png (default: next to each input)")] = None,
    work_size: Annotated[Optional[int], typer.Option(
        help="shrink images whose long side is larger to this before running [default: each image's own "
             "resolution]")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    precision: Annotated[str, typer.Option(
        help="auto: bf16 on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16; measured 1.7x faster "
             "than fp32), else fp32; or fp32, bf16")] = "auto",
) -> None:
    """Turn colored images into line-art scans with the trained scan generator.

    Each output has its input's exact size. Unreadable files are reported by name and
    skipped; the exit code is 1 if any file failed.
    """
    from pipeline.colorist.batch_files import scan_files

    if device not in ("auto", "cpu", "cuda"):
        _fail(f"--device {device!r}: allowed values are auto, cpu, cuda")
    _check_work_size(work_size)
    _check_output_dir(out_dir)
    try:
        results = scan_files(images, model, out_dir, work_size, device, precision=precision)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    _report(results)


@app.command()
def colorize(
    images: Annotated[list[Path], typer.Argument(
        help="line-art scans or colored pages (any size or mode), folders of pages or .cbz chapters",
        readable=False)],  # an unreadable one is named and skipped with the rest done, not a usage error
    model: Annotated[Path, typer.Option(help="colorizer from `dvc repro` or `dvc pull`")] = Path("models/colorizer.pt"),
    hints: Annotated[Optional[Path], typer.Option(
        help="color hints for the one page given: a transparent PNG the page's size with colored dots or "
             "strokes (a layer painted in an editor), or JSON [{\"x\": 10, \"y\": 20, \"color\": \"#rrggbb\"}] "
             "in page pixels")] = None,
    layers: Annotated[bool, typer.Option(
        "--layers", help="also write NAME.color.psd: ink (multiply) over the colors, flat colors hidden below; "
                         "opens in Krita, GIMP and Photoshop")] = False,
    colored_pages: Annotated[str, typer.Option(
        help="in a chapter, pages that are already colored: copy (pass them through) or colorize")] = "copy",
    batch: Annotated[int, typer.Option(
        help="pages of a chapter per forward pass (same-size pages); 0: 8 on a GPU, 1 on the CPU")] = 0,
    scan_model: Annotated[Optional[Path], typer.Option(
        help="scan generator, for colored inputs [default: models/scan_generator.pt, if present]")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", "-o",
                                                    help="folder for NAME.color.png (default: next to each input)")] = None,
    treat_as: Annotated[str, typer.Option(help="auto (detect), scan or color")] = "auto",
    work_size: Annotated[Optional[int], typer.Option(
        help="shrink pages whose long side is larger to this before running (for very high-dpi scans) "
             "[default: each page's own resolution]")] = None,
    ink: Annotated[str, typer.Option(
        help="multiply: the page's own strokes multiplied over the colors, as a colorist composes (black "
             "fills in a dark shade of their color, screentone as --tone says); none: the color layer as it "
             "is")] = "multiply",
    tone: Annotated[str, typer.Option(
        help="screentone: descreen (its dots become the shading of the color beneath) or keep "
             "(the dots multiplied over the colors as drawn)")] = "descreen",
    auto: Annotated[str, typer.Option(
        help="what no hint reaches: network (the colorizer's own colors) or none (the page as drawn; only "
             "the hinted regions are colored, flat; needs --hints, runs no network)")] = "network",
    max_pixels: Annotated[int, typer.Option(help="refuse images with more pixels than this")] = 200_000_000,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    precision: Annotated[str, typer.Option(
        help="auto: bf16 on CUDA and on CPUs with native bf16 (AMX / AVX512-BF16; measured 1.7x faster "
             "than fp32), else fp32; or fp32, bf16")] = "auto",
) -> None:
    """Colorize line art or manga pages. Colored inputs are first turned into scans.

    Pages run at their own resolution (tiled when large) and keep their own ink, pixel
    for pixel. Each output has its input's exact size and aspect. A folder or .cbz is a
    chapter: its pages in natural order (page2 before page10) into NAME.color/ or
    NAME.color.cbz; an interrupted chapter resumes where it stopped. Unreadable or
    too-large files are reported by name and skipped; the exit code is 1 if any failed.
    """
    from pipeline.colorist.batch_files import colorize_files

    if device not in ("auto", "cpu", "cuda"):
        _fail(f"--device {device!r}: allowed values are auto, cpu, cuda")
    if treat_as not in ("auto", "scan", "color"):
        _fail(f"--treat-as {treat_as!r}: allowed values are auto, scan, color")
    _check_work_size(work_size)
    if precision not in ("auto", "fp32", "bf16"):
        _fail(f"--precision {precision!r}: allowed values are auto, fp32, bf16")
    if ink not in ("multiply", "none"):
        _fail(f"--ink {ink!r}: allowed values are multiply, none")
    if tone not in ("descreen", "keep"):
        _fail(f"--tone {tone!r}: allowed values are descreen, keep")
    if auto not in ("network", "none"):
        _fail(f"--auto {auto!r}: allowed values are network, none")
    if auto == "none" and hints is None:
        _fail("--auto none colors only the regions hints reach: give --hints FILE (or use --auto network)")
    if max_pixels < 1:
        _fail(f"--max-pixels {max_pixels}: must be >= 1")
    if scan_model is not None and not scan_model.is_file():
        _fail(f"--scan-model {scan_model}: no such file; run `dvc repro train_cyclegan` or "
              "`dvc pull models/scan_generator.pt`")
    if colored_pages not in ("copy", "colorize"):
        _fail(f"--colored-pages {colored_pages!r}: allowed values are copy, colorize")
    if hints is not None and not hints.is_file():
        _fail(f"--hints {hints}: no such file")
    if batch < 0:
        _fail(f"--batch {batch}: must be >= 0 (0: 8 on a GPU, 1 on the CPU)")
    _check_output_dir(out_dir)
    try:
        results = colorize_files(images, model, scan_model or DEFAULT_SCAN_MODEL, out_dir, work_size, device,
                                 treat_as, max_pixels, scan_model_required=scan_model is not None, ink=ink,
                                 precision=precision, hints=hints, layers=layers, colored_pages=colored_pages,
                                 batch=batch, auto=auto, tone=tone)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    _report(results)


@app.command()
def evaluate(
    pairs: Annotated[Path, typer.Argument(help="folder with scan/NAME.* and color/NAME.* (matching names), "
                                                "or NAME_bw.* beside NAME_color.*")],
    model: Annotated[Path, typer.Option(help="colorizer from `dvc repro` or `dvc pull`")] = Path("models/colorizer.pt"),
    scan_model: Annotated[Optional[Path], typer.Option(
        help="scan generator to measure too [default: models/scan_generator.pt, if present]")] = None,
    json_out: Annotated[Path, typer.Option("--json", help="JSON file to write")] = Path("evaluation.json"),
    work_size: Annotated[Optional[int], typer.Option(
        help="shrink pairs whose long side is larger to this before running [default: their own resolution]")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Measure the models on your own (scan, color) pairs: PSNR, SSIM, ΔE2000, colorfulness
    and line fidelity of colorize(scan) vs. the color page; L1/PSNR/SSIM of scangen(color)
    vs. the scan. Prints a table and writes JSON; unmatched or unreadable files are named."""
    from pipeline.evaluation.user_pairs import evaluate_pairs, format_table
    from pipeline.files import write_json

    if device not in ("auto", "cpu", "cuda"):
        _fail(f"--device {device!r}: allowed values are auto, cpu, cuda")
    _check_work_size(work_size)
    _check_output_file(json_out, "--json")
    if scan_model is not None and not scan_model.is_file():
        _fail(f"--scan-model {scan_model}: no such file")
    scan_model = scan_model or (DEFAULT_SCAN_MODEL if DEFAULT_SCAN_MODEL.is_file() else None)
    try:
        result = evaluate_pairs(pairs, model, scan_model, device, work_size)
    except (OSError, ValueError) as exc:  # OSError: FileNotFoundError, an unreadable folder
        _fail(str(exc))
    for message in result["skipped"]:
        typer.secho(message, fg=typer.colors.YELLOW, err=True)
    if result["pairs"] == 0:
        _fail(f"{pairs}: no readable (scan, color) pair to measure")
    typer.echo(format_table(result))  # first: a write that fails still leaves the figures on screen
    try:
        write_json(json_out, result)
    except OSError as exc:
        _fail(f"--json {json_out}: {exc.strerror or exc}", code=1)
    typer.echo(f"wrote {json_out}")


@app.command()
def summary(
    metrics: Annotated[Path, typer.Argument(help="the evaluate stage's metrics")] = Path("metrics/evaluate.json"),
) -> None:
    """The pipeline's results beside their baselines, in 100 columns (what `make repro` ends with)."""
    from pipeline.evaluation.summary import load_evaluation, summary_table

    try:
        typer.echo(summary_table(load_evaluation(metrics)))
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 opens it to the network")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8765,
    model: Annotated[Path, typer.Option(help="colorizer from `dvc repro` or `dvc pull`")] = Path("models/colorizer.pt"),
    scan_model: Annotated[Path, typer.Option(
        help="scan generator, for colored pages dropped on the page")] = DEFAULT_SCAN_MODEL,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    max_mb: Annotated[float, typer.Option(help="largest upload, in MB")] = 40.0,
    max_megapixels: Annotated[float, typer.Option(
        help="largest page, in megapixels (decompression-bomb guard)")] = 40.0,
) -> None:
    """A local web page: drop a page, dot hint colors, colorize, compare, download the PNG and
    the layered PSD. Runs offline; binds 127.0.0.1 unless told otherwise."""
    if not model.is_file():
        _fail(f"--model {model}: no colorizer here; run `dvc repro` or `dvc pull` first")
    if not 0 < port < 65536:
        _fail(f"--port {port}: must be between 1 and 65535")
    if device not in ("auto", "cpu", "cuda"):
        _fail(f"--device {device!r}: allowed values are auto, cpu, cuda")
    import math

    from pipeline.colorist.serve import (
        PAGE_MEGAPIXELS,
        UPLOAD_MB,
        ServeSettings,
        create_app,
    )

    for option, value, (low, high) in (("--max-mb", max_mb, UPLOAD_MB),
                                       ("--max-megapixels", max_megapixels, PAGE_MEGAPIXELS)):
        if not (math.isfinite(value) and low <= value <= high):  # NaN passes every comparison
            _fail(f"{option} {value}: must be between {low:g} and {high:g}")
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: binding {host}: anyone who can reach this machine on port {port} can use the page "
                   "and its uploads", err=True)
    try:  # the model is loaded here, once: a file that cannot serve stops the start
        app = create_app(ServeSettings(model, scan_model, device, int(max_mb * 1e6), int(max_megapixels * 1e6),
                                       host=host))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # RuntimeError: --device cuda without CUDA
        _fail(str(exc))
    typer.echo(f"serving on http://{host}:{port}/ (Ctrl-C stops it and removes every upload)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    app()
