"""`onepunch scan` / `onepunch colorize` over a batch of a user's own files, any size or mode.

An image is decoded robustly (alpha onto white, CMYK, palette, 16-bit, EXIF rotation,
a decompression-bomb cap) and run through the network at its own resolution (fully
convolutional, tiled with blended overlaps when large; `--work-size` shrinks very large
scans first), and a colorization is composed with the page's own ink multiplied over the
predicted colors. Failures are reported per file, naming the file; one bad file never
stops a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.files import atomic_path, remove_leftovers
from pipeline.page_inference import (
    colorize_layers,
    colorize_layers_batch,
    compose,
    is_colored,
    resolve_precision,
    scan_image,
)

MAX_PIXELS = 200_000_000
# Webtoon strips run 690x40000 (58:1) and longer; past 1000:1 a file is not a page.
MAX_PAGE_ASPECT = 1000


@dataclass
class FileResult:
    source: Path
    output: Path | None = None
    error: str | None = None
    note: str | None = None  # e.g. why the output name differs from NAME.<suffix>.png


def default_output(src: Path, out_dir: Path | None, suffix: str) -> Path:
    folder = out_dir if out_dir is not None else src.parent
    return folder / f"{src.stem}.{suffix}.png"


def plan_outputs(paths: list[Path], out_dir: Path | None, suffix: str) -> list[FileResult]:
    """One result per input with the output it will be written to, or the reason it won't.

    - The same file given twice is done once.
    - No output ever replaces an input of the run: an input whose output would be another
      input (`page.png page.color.png`) is refused, naming both.
    - Inputs whose outputs would collide (`a/x.png b/x.png -o out`, `base.png base.jpg`)
      get unique names: the first keeps NAME.<suffix>.png, the next NAME-2.<suffix>.png, ...
    """
    inputs = {_key(p) for p in paths if p.exists()}
    taken: dict[Path, Path] = {}  # output key -> the input it belongs to
    seen: dict[Path, Path] = {}
    results = []
    for path in paths:
        res = FileResult(path)
        results.append(res)
        if path.exists() and _key(path) in seen:
            res.error = f"given twice (same file as {seen[_key(path)]}); done once"
            continue
        if path.exists():
            seen[_key(path)] = path
        out = default_output(path, out_dir, suffix)
        if _key(out) in inputs:
            res.error = (f"its output {out} is also an input of this run; refusing to overwrite it "
                         "(write elsewhere with --out-dir)")
            continue
        first, n = out, 1
        while _key(out) in taken or _key(out) in inputs:
            n += 1
            out = first.with_name(f"{path.stem}-{n}.{suffix}.png")
        if n > 1:
            res.note = f"renamed: {first.name} is taken by {taken.get(_key(first), first)}"
        taken[_key(out)] = path
        res.output = out
    return results


def _key(path: Path) -> Path:
    """What makes two paths the same file: the resolved path (symlinks and `..` followed)."""
    return Path(path).resolve()


def scan_files(paths: list[Path], model_path: Path, out_dir: Path | None = None, work_size: int | None = None,
               device: str = "auto", progress: bool = True, precision: str = "auto") -> list[FileResult]:
    """`onepunch scan`: colored images -> line-art scans, each written next to its input
    (or into out_dir) as NAME.scan.png. work_size None: at each image's own resolution."""
    from pipeline.models.weak_generator import load_scan_generator
    from pipeline.training.runtime import setup_runtime

    _check_out_dir(out_dir)
    rt = setup_runtime(device, autotune=False)
    resolve_precision(precision, rt.device)  # a bad value fails before any file is read
    model = load_scan_generator(model_path, rt.device).to(memory_format=torch.channels_last)
    return _process_files(paths, out_dir, "scan",
                          lambda img: (scan_image(model, img, work_size, rt.device, precision), None),
                          MAX_PIXELS, progress)


def colorize_files(paths: list[Path], model_path: Path, scan_model_path: Path | None, out_dir: Path | None = None,
                   work_size: int | None = None, device: str = "auto", treat_as: str = "auto",
                   max_pixels: int = MAX_PIXELS, progress: bool = True,
                   scan_model_required: bool = False, ink: str = "multiply",
                   precision: str = "auto", hints: Path | None = None, layers: bool = False,
                   colored_pages: str = "copy", batch: int = 0) -> list:
    """`onepunch colorize`: scans or colored pages -> NAME.color.png at the input's size,
    run at its own resolution (work_size None) with its ink multiplied over (`ink`).

    A folder or `.cbz` among the inputs is a chapter (`pipeline.chapters`): its pages in
    natural order into NAME.color/ or NAME.color.cbz, resumable; colored_pages "copy" passes
    already-colored pages through, "colorize" runs them through the scan generator too.
    hints: a hint file for the one page given (`pipeline.hint_files`). layers: a layered
    NAME.color.psd beside each PNG (`pipeline.layered_file`). batch: pages of a chapter per
    forward pass (0: CHAPTER_BATCH_GPU on CUDA, 1 on the CPU, where batching gains nothing).

    `scan_model_required`: the user named the scan generator, so a missing file is an
    error; otherwise (the default path) only colored inputs fail without it.
    """
    from pipeline.chapters import chapter_output, colorize_chapter, is_chapter
    from pipeline.models.unet import load_colorizer
    from pipeline.models.weak_generator import load_scan_generator
    from pipeline.training.runtime import setup_runtime

    if colored_pages not in COLORED_PAGES:
        raise ValueError(f"colored pages {colored_pages!r}: allowed values are {', '.join(COLORED_PAGES)}")
    chapters = [p for p in paths if is_chapter(p)]
    if hints is not None and (len(paths) != 1 or chapters):
        raise ValueError("--hints FILE goes with exactly one page (hints are in that page's pixels)")
    if layers and chapters:
        raise ValueError("--layers writes NAME.color.psd beside a page's PNG; give pages, not chapters")
    _check_out_dir(out_dir)
    rt = setup_runtime(device, autotune=False)
    resolve_precision(precision, rt.device)
    colorizer = load_colorizer(model_path, rt.device).to(memory_format=torch.channels_last)
    if hints is not None:
        from pipeline.models.hints import takes_hints

        if not takes_hints(colorizer):
            raise ValueError(f"{model_path} was trained without hints (colorizer.hints_max: 0); "
                             "drop --hints or use a colorizer trained with them")
    scangen = None
    if scan_model_path is not None and (scan_model_required or Path(scan_model_path).is_file()):
        scangen = load_scan_generator(scan_model_path, rt.device)

    def layers_of(img, page_hints=None):
        return colorize_layers(colorizer, scangen, img, work_size, rt.device, treat_as, precision, page_hints)

    def convert(img):
        page_hints = None
        if hints is not None:
            from pipeline.hint_files import read_hints

            page_hints = read_hints(hints, img.size)
        colors, line_art = layers_of(img, page_hints)
        return compose(colors, line_art, ink), (colors, line_art)

    def write_extra(output: Path, extra) -> None:
        if layers:
            from pipeline.layered_file import write_psd

            write_psd(output.with_suffix(".psd"), *extra, ink_visible=ink == "multiply")

    results = []
    files = [p for p in paths if not is_chapter(p)]
    if files:
        results += _process_files(files, out_dir, "color", convert, max_pixels, progress, write_extra)
    settings = {"model": _digest(model_path), "scan_model": _digest(scan_model_path) if scangen else None,
                "work_size": work_size, "treat_as": treat_as, "ink": ink, "precision": precision}
    if batch < 0:
        raise ValueError(f"batch {batch}: must be >= 0 (0: automatic)")
    batch = batch or (CHAPTER_BATCH_GPU if rt.device.type == "cuda" else 1)

    def convert_batch(imgs):
        return [compose(c, a, ink) for c, a in colorize_layers_batch(colorizer, scangen, imgs, work_size, rt.device,
                                                                       treat_as, precision)]

    for chapter in chapters:
        results.append(colorize_chapter(
            chapter, chapter_output(chapter, out_dir), lambda img: convert(img)[0], is_colored, settings,
            copy_colored=colored_pages == "copy" and treat_as != "color", progress=progress,
            max_pixels=max_pixels, max_aspect=MAX_PAGE_ASPECT, batch=batch, convert_batch=convert_batch))
    return results


CHAPTER_BATCH_GPU = 8


COLORED_PAGES = ("copy", "colorize")


def _digest(path: Path | None) -> str | None:
    """What identifies a model file for resuming a chapter: its size and mtime."""
    if path is None or not Path(path).is_file():
        return None
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _check_out_dir(out_dir: Path | None) -> None:
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir}: is a file, not a folder")


def _process_files(paths: list[Path], out_dir: Path | None, suffix: str, convert, max_pixels: int,
                   progress: bool, write_extra=None) -> list[FileResult]:
    """Decode each file, convert it, write its planned output atomically; one result per
    file, failures named and kept, never raised. convert returns (image, extra); extra,
    when not None, goes to write_extra(output, extra) after the image is written."""
    from tqdm import tqdm

    from pipeline.data.imaging import DecodeError, decode_image

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results = plan_outputs(paths, out_dir, suffix)
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
                write_extra(res.output, extra)
        except DecodeError as exc:
            res.output, res.error = None, f"{exc.reason}: {exc.detail}"
        except (OSError, ValueError) as exc:
            res.output, res.error = None, str(exc)
    return results
