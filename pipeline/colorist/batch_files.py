"""`onepunch scan` / `onepunch colorize` over a batch of a user's own files, any size or mode.

An image is decoded robustly (alpha onto white, CMYK, palette, 16-bit, EXIF rotation,
a decompression-bomb cap) and run through the network at its own resolution (fully
convolutional, tiled with blended overlaps when large; `--work-size` shrinks very large
scans first), and a colorization is composed with the page's own ink multiplied over the
predicted colors. Failures are reported per file, naming the file; one bad file never
stops a batch.

Two runs writing into one folder at once never take each other's output names: each run
claims its names (`pipeline.files.claim_names`) and renames around what another live run
claimed for another input, as it does for a collision within the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.colorist.ink import compose
from pipeline.colorist.page import (
    colorize_layers,
    colorize_layers_batch,
    load_networks,
    scan_image,
)
from pipeline.colorist.psd import PsdTooLarge
from pipeline.digests import file_stamp
from pipeline.files import (
    atomic_path,
    claim_names,
    hold_lock,
    names_claimed_by_others,
    remove_leftovers,
)
from pipeline.imaging import is_colored
from pipeline.runtime import resolve_precision

MAX_PIXELS = 200_000_000
# Webtoon strips run 690x40000 (58:1) and longer; past 1000:1 a file is not a page.
MAX_PAGE_ASPECT = 1000
OUTPUTS_LOCK = ".onepunch-outputs.lock"  # in an output folder, while a run claims its names


@dataclass
class FileResult:
    source: Path
    output: Path | None = None
    error: str | None = None
    note: str | None = None  # e.g. why the output name differs from NAME.<suffix>.png


def default_output(src: Path, out_dir: Path | None, suffix: str) -> Path:
    folder = out_dir if out_dir is not None else src.parent
    return folder / f"{src.stem}.{suffix}.png"


def plan_outputs(paths: list[Path], out_dir: Path | None, suffix: str,
                 claimed: dict[Path, tuple[int, str]] | None = None) -> list[FileResult]:
    """One result per input with the output it will be written to, or the reason it won't.

    - The same file given twice is done once.
    - No output ever replaces an input of the run: an input whose output would be another
      input (`page.png page.color.png`) is refused, naming both.
    - Inputs whose outputs would collide (`a/x.png b/x.png -o out`, `base.png base.jpg`)
      get unique names: the first keeps NAME.<suffix>.png, the next NAME-2.<suffix>.png, ...
    - So do outputs that another live run claimed for another input (`claimed`: output ->
      (its PID, its input), from `pipeline.files.names_claimed_by_others`).
    """
    claimed = claimed or {}
    inputs = {_key(p) for p in paths if _exists(p)}
    taken: dict[Path, Path] = {}  # output key -> the input it belongs to
    seen: dict[Path, Path] = {}
    results = []
    for path in paths:
        res = FileResult(path)
        results.append(res)
        exists = _exists(path)
        if exists and _key(path) in seen:
            res.error = f"given twice (same file as {seen[_key(path)]}); done once"
            continue
        if exists:
            seen[_key(path)] = path
        out = default_output(path, out_dir, suffix)
        if _key(out) in inputs:
            res.error = (f"its output {out} is also an input of this run; refusing to overwrite it "
                         "(write elsewhere with --out-dir)")
            continue
        first, n = out, 1
        while _key(out) in taken or _key(out) in inputs or _claimed_for_another(claimed, out, path):
            n += 1
            out = first.with_name(f"{path.stem}-{n}.{suffix}.png")
        if n > 1 and _key(first) not in taken and _claimed_for_another(claimed, first, path):
            pid, other = claimed[_key(first)]
            res.note = f"renamed: {first.name} is being written by another run (PID {pid}) from {other}"
        elif n > 1:
            res.note = f"renamed: {first.name} is taken by {taken.get(_key(first), first)}"
        taken[_key(out)] = path
        res.output = out
    return results


def _key(path: Path) -> Path:
    """What makes two paths the same file: the resolved path (symlinks and `..` followed)."""
    return Path(path).resolve()


def _claimed_for_another(claimed: dict[Path, tuple[int, str]], out: Path, path: Path) -> bool:
    """Has another live run claimed `out` for an input other than `path`? (For the same
    input both runs write the same pixels: the last rename wins, both whole.)"""
    other = claimed.get(_key(out))
    return other is not None and other[1] != str(_key(path))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # in a folder we may not search: it fails by name when it is read
        return False


@contextmanager
def _claimed_outputs(paths: list[Path], out_dir: Path | None, suffix: str) -> Iterator[list[FileResult]]:
    """plan_outputs, with this run's output names claimed against other runs writing into
    the same folders, for as long as the block runs. The planning is done under each
    output folder's lock, so two runs that start together never pick one name."""
    folders = sorted({default_output(p, out_dir, suffix).parent.resolve() for p in paths})
    with ExitStack() as run:
        with ExitStack() as planning:
            claimed: dict[Path, tuple[int, str]] = {}
            for folder in folders:  # in one order in every run: two runs never wait on each other
                try:
                    planning.enter_context(hold_lock(folder / OUTPUTS_LOCK, wait=True))
                    claimed.update({_key(folder / n): c for n, c in names_claimed_by_others(folder).items()})
                except OSError:
                    continue  # a folder we cannot write in: its outputs fail by name when written
            results = plan_outputs(paths, out_dir, suffix, claimed)
            for folder in folders:
                mine = {r.output.name: str(_key(r.source)) for r in results
                        if r.output is not None and r.output.parent.resolve() == folder}
                try:
                    if mine:
                        run.enter_context(claim_names(folder, mine))
                except OSError:
                    continue
        yield results


def scan_files(paths: list[Path], model_path: Path, out_dir: Path | None = None, work_size: int | None = None,
               device: str = "auto", progress: bool = True, precision: str = "auto") -> list[FileResult]:
    """`onepunch scan`: colored images -> line-art scans, each written next to its input
    (or into out_dir) as NAME.scan.png. work_size None: at each image's own resolution."""
    _check_out_dir(out_dir)
    resolve_precision(precision, torch.device("cpu"))  # a bad value fails before any model is read
    nets = load_networks(None, model_path, device, scan_generator_required=True)
    return _process_files(paths, out_dir, "scan",
                          lambda img: (scan_image(nets.scan_generator, img, work_size, nets.device, precision), None),
                          MAX_PIXELS, progress)


def colorize_files(paths: list[Path], model_path: Path, scan_model_path: Path | None, out_dir: Path | None = None,
                   work_size: int | None = None, device: str = "auto", treat_as: str = "auto",
                   max_pixels: int = MAX_PIXELS, progress: bool = True,
                   scan_model_required: bool = False, ink: str = "multiply",
                   precision: str = "auto", hints: Path | None = None, layers: bool = False,
                   colored_pages: str = "copy", batch: int = 0, auto: str = "network", tone: str = "descreen") -> list:
    """`onepunch colorize`: scans or colored pages -> NAME.color.png at the input's size,
    run at its own resolution (work_size None) with its ink multiplied over (`ink`).

    A folder or `.cbz` among the inputs is a chapter (`pipeline.colorist.chapters`): its pages in
    natural order into NAME.color/ or NAME.color.cbz, resumable; colored_pages "copy" passes
    already-colored pages through, "colorize" runs them through the scan generator too.
    hints: a hint file for the one page given (`pipeline.colorist.hint_files`). layers: a layered
    NAME.color.psd beside each PNG (`pipeline.colorist.psd`). batch: pages of a chapter per
    forward pass (0: CHAPTER_BATCH_GPU on CUDA, 1 on the CPU, where batching gains nothing).
    auto: "network" (the colorizer colors what no hint reaches) or "none" (only the hinted
    regions are colored, flat; no network runs). tone: screentone "descreen"d into shading or
    "keep" (`pipeline.colorist.ink`).

    `scan_model_required`: the user named the scan generator, so a missing file is an
    error; otherwise (the default path) only colored inputs fail without it.
    """
    from pipeline.colorist.chapters import chapter_output, colorize_chapter, is_chapter
    from pipeline.colorist.ink import TONE_MODES
    from pipeline.colorist.page import AUTO_MODES
    from pipeline.models.colorizer import require_hints

    if auto not in AUTO_MODES:
        raise ValueError(f"auto {auto!r}: allowed values are {', '.join(AUTO_MODES)}")
    if tone not in TONE_MODES:
        raise ValueError(f"tone {tone!r}: allowed values are {', '.join(TONE_MODES)}")
    if colored_pages not in COLORED_PAGES:
        raise ValueError(f"colored pages {colored_pages!r}: allowed values are {', '.join(COLORED_PAGES)}")
    chapters = [p for p in paths if is_chapter(p)]
    if hints is not None and (len(paths) != 1 or chapters):
        raise ValueError("--hints FILE goes with exactly one page (hints are in that page's pixels)")
    if layers and chapters:
        raise ValueError("--layers writes NAME.color.psd beside a page's PNG; give pages, not chapters")
    if auto == "none" and hints is None:
        raise ValueError("--auto none colors only the regions hints reach: give --hints (or use --auto network)")
    _check_out_dir(out_dir)
    resolve_precision(precision, torch.device("cpu"))  # a bad value fails before any model is read
    nets = load_networks(model_path if auto == "network" else None, scan_model_path, device,
                         scan_generator_required=scan_model_required)
    colorizer, scangen, dev = nets.colorizer, nets.scan_generator, nets.device
    if hints is not None and auto == "network":
        require_hints(colorizer, str(model_path))

    def layers_of(img, page_hints=None):
        return colorize_layers(colorizer, scangen, img, work_size, dev, treat_as, precision, page_hints, auto)

    def convert(img):
        page_hints = None
        if hints is not None:
            from pipeline.colorist.hint_files import read_hints

            page_hints = read_hints(hints, img.size)
        colors, line_art = layers_of(img, page_hints)
        return compose(colors, line_art, ink, tone), (colors, line_art)

    def write_extra(output: Path, extra) -> None:
        if layers:
            from pipeline.colorist.psd import write_psd

            write_psd(output.with_suffix(".psd"), *extra, ink_visible=ink == "multiply", tone=tone)

    results = []
    files = [p for p in paths if not is_chapter(p)]
    if files:
        results += _process_files(files, out_dir, "color", convert, max_pixels, progress, write_extra)
    settings = {"model": file_stamp(model_path), "scan_model": file_stamp(scan_model_path) if scangen else None,
                "work_size": work_size, "treat_as": treat_as, "ink": ink, "precision": precision, "tone": tone}
    if batch < 0:
        raise ValueError(f"batch {batch}: must be >= 0 (0: automatic)")
    batch = batch or (CHAPTER_BATCH_GPU if dev.type == "cuda" else 1)

    def convert_batch(imgs):
        return [compose(c, a, ink, tone) for c, a in colorize_layers_batch(colorizer, scangen, imgs, work_size, dev,
                                                                             treat_as, precision)]

    taken: dict[Path, Path] = {}  # chapter output -> the chapter it belongs to, in this run
    for chapter in chapters:
        output = first = chapter_output(chapter, out_dir)
        if _key(chapter) in {_key(c) for c in taken.values()}:
            continue  # the same chapter given twice: done once
        n = 1
        while _key(output) in taken:  # `a/ch.cbz b/ch.cbz -o out`: ch.color.cbz, ch-2.color.cbz
            n += 1
            output = chapter_output(chapter, out_dir, n)
        taken[_key(output)] = chapter
        res = colorize_chapter(
            chapter, output, lambda img: convert(img)[0], is_colored, settings,
            copy_colored=colored_pages == "copy" and treat_as != "color", progress=progress,
            max_pixels=max_pixels, max_aspect=MAX_PAGE_ASPECT, batch=batch, convert_batch=convert_batch)
        if n > 1:
            res.renamed = f"renamed: {first.name} is taken by {taken[_key(first)]}"
        results.append(res)
    return results


CHAPTER_BATCH_GPU = 8


COLORED_PAGES = ("copy", "colorize")


def _check_out_dir(out_dir: Path | None) -> None:
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir}: is a file, not a folder")


def _process_files(paths: list[Path], out_dir: Path | None, suffix: str, convert, max_pixels: int,
                   progress: bool, write_extra=None) -> list[FileResult]:
    """Decode each file, convert it, write its planned output atomically; one result per
    file, failures named and kept, never raised. convert returns (image, extra); extra,
    when not None, goes to write_extra(output, extra) after the image is written."""
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    with _claimed_outputs(paths, out_dir, suffix) as results:
        _write_outputs(results, suffix, convert, max_pixels, progress, write_extra)
    return results


def _write_outputs(results: list[FileResult], suffix: str, convert, max_pixels: int, progress: bool,
                   write_extra) -> None:
    from tqdm import tqdm

    from pipeline.imaging import DecodeError, decode_image

    for res in tqdm(results, desc=suffix, unit="img", disable=not progress):
        if res.error:
            continue
        path = res.source
        try:
            if not path.is_file():
                raise FileNotFoundError("no such file")
            img = decode_image(path, max_pixels=max_pixels, name=str(path), max_aspect=MAX_PAGE_ASPECT)
            out, extra = convert(img)
            remove_leftovers(res.output.parent, res.output.name)  # a killed earlier run's
            # zlib level 3: a 1024x1448 page encodes in 82 ms instead of 180 ms at Pillow's
            # default 6, for files 2% larger
            with atomic_path(res.output) as tmp:
                out.save(tmp, format="PNG", compress_level=3)
            if write_extra is not None and extra is not None:
                try:
                    write_extra(res.output, extra)
                except PsdTooLarge as exc:  # the PNG stands; any other failure fails the page
                    res.note = str(exc)
        except DecodeError as exc:
            res.output, res.error = None, f"{exc.reason}: {exc.detail}"
        except (OSError, ValueError) as exc:
            res.output, res.error = None, str(exc)
