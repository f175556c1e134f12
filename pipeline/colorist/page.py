"""A whole page through the published networks at its own resolution (`onepunch scan`,
`onepunch colorize`, `onepunch evaluate`, `onepunch serve`): tiled with blended overlaps when
large (`pipeline.colorist.tiling`), in bf16 where the hardware computes it natively, the
page's own ink multiplied over the colors (`pipeline.colorist.ink`).

The networks trained on crops at page line widths: a page runs at its own resolution unless
`work_size` shrinks it (very high-dpi scans, whose lines are far wider than a page's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from pipeline.colorist.ink import INK_MODES, compose
from pipeline.colorist.tiling import run_tiled, runs_whole
from pipeline.imaging import is_colored, shrink_to_fit
from pipeline.models.colorizer import with_hints
from pipeline.pixels import to_model_input, to_uint8_image
from pipeline.runtime import inference_autocast, setup_runtime


@dataclass
class Networks:
    """The published networks a page goes through, on their device."""

    colorizer: nn.Module | None
    scan_generator: nn.Module | None  # None: colored pages cannot be colorized
    device: torch.device


def load_networks(colorizer: Path | None, scan_generator: Path | None, device: str = "auto",
                  scan_generator_required: bool = False) -> Networks:
    """Load the published networks for a user's pages, in eval mode and channels_last.

    The scan generator is loaded when named and present; `scan_generator_required` (the user
    named it) makes a missing file an error instead of "no scan generator".
    """
    from pipeline.models.colorizer import load_colorizer
    from pipeline.models.scan_generator import load_scan_generator

    rt = setup_runtime(device, autotune=False)
    g = load_colorizer(colorizer, rt.device).to(memory_format=torch.channels_last) if colorizer else None
    scangen = None
    if scan_generator is not None and (scan_generator_required or Path(scan_generator).is_file()):
        scangen = load_scan_generator(scan_generator, rt.device).to(memory_format=torch.channels_last)
    return Networks(g, scangen, rt.device)


def _to_tensor(img: Image.Image, device: torch.device) -> torch.Tensor:
    """PIL 'L' or 'RGB' -> (1, C, H, W) float in [-1, 1], channels_last."""
    a = np.array(img, dtype=np.uint8)
    return to_model_input(torch.from_numpy(a[..., None] if a.ndim == 2 else a)[None], device)


def _to_image(y: torch.Tensor) -> Image.Image:
    """(1, C, H, W) in [-1, 1] -> PIL 'L' (C = 1) or 'RGB'."""
    a = to_uint8_image(y)[0].permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(a[..., 0], mode="L") if a.shape[-1] == 1 else Image.fromarray(a, mode="RGB")


def _resized(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


@torch.no_grad()
def scan_image(model: torch.nn.Module, img: Image.Image, work_size: int | None, device: torch.device,
               precision: str = "fp32") -> Image.Image:
    """RGB PIL image -> 'L' scan at the same size (run at the page's resolution, tiled)."""
    w, h = img.size
    x = _to_tensor(_resized(img.convert("RGB"), shrink_to_fit(w, h, work_size)), device)
    with inference_autocast(precision, device):
        out = _to_image(run_tiled(model, x, 1))
    return out.resize((w, h), Image.Resampling.BICUBIC) if out.size != (w, h) else out


AUTO_MODES = ("network", "none")


@torch.no_grad()
def colorize_layers(colorizer: torch.nn.Module | None, scangen: torch.nn.Module | None, img: Image.Image,
                    work_size: int | None, device: torch.device, treat_as: str = "auto",
                    precision: str = "fp32", hints: tuple[np.ndarray, np.ndarray] | None = None,
                    auto: str = "network") -> tuple[Image.Image, Image.Image]:
    """Scan or colored page (RGB PIL) -> (color layer RGB, line art 'L'), both at the page's size.

    Runs at the page's own resolution (tiled when large). A colored input goes through the
    scan generator first, as in the original pipeline; its line art is then the generated
    scan, else the page itself, pixel-exact. hints: (ids (H, W), colors (K, 3)) in page
    pixels (`pipeline.colorist.hint_files.read_hints`), spread over the regions of the scan
    the network sees (`pipeline.colorist.regions`). auto: what the areas no hint reaches get,
    "network": the colorizer's own colors (it sees the hints too); "none": nothing, the page
    as drawn, and the hinted regions their hints' flat colors (no network runs: LazyBrush's
    way). precision: see `pipeline.runtime.resolve_precision` (bf16 autocast: 1.93 s instead
    of 3.23 s for a 1024x1448 page on a 2-core CPU with AMX, benchmarks/bench_page.py; within
    2 grey levels of fp32).
    """
    return colorize_layers_batch(colorizer, scangen, [img], work_size, device, treat_as, precision, [hints],
                                 auto)[0]


@torch.no_grad()
def colorize_layers_batch(colorizer: torch.nn.Module | None, scangen: torch.nn.Module | None,
                          imgs: list[Image.Image], work_size: int | None, device: torch.device,
                          treat_as: str = "auto", precision: str = "fp32", hints: list | None = None,
                          auto: str = "network") -> list[tuple[Image.Image, Image.Image]]:
    """`colorize_layers` for several pages at once: pages of one working size that run whole
    go through the colorizer as one batch (what a GPU wants); the others one by one. Same
    results as page by page (GroupNorm and the attention are per image)."""
    if auto not in AUTO_MODES:
        raise ValueError(f"auto {auto!r}: allowed values are {', '.join(AUTO_MODES)}")
    hints = hints or [None] * len(imgs)
    prepared = [_prepare(colorizer if auto == "network" else None, scangen, img, work_size, device, treat_as,
                         precision, h) for img, h in zip(imgs, hints)]
    if auto == "none":
        return [_finish(_flat_hints(page), img, page) for img, page in zip(imgs, prepared)]
    colors: list[torch.Tensor | None] = [None] * len(imgs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, page in enumerate(prepared):
        h, w = page.x.shape[-2:]
        if runs_whole(h, w):
            groups.setdefault((h, w), []).append(i)
        else:
            with inference_autocast(precision, device):
                colors[i] = run_tiled(colorizer, page.x, 3)
    for idx in groups.values():
        with inference_autocast(precision, device):
            out = colorizer(torch.cat([prepared[i].x for i in idx]).contiguous(memory_format=torch.channels_last))
        for k, i in enumerate(idx):
            colors[i] = out[k:k + 1].float()
    return [_finish(_inside_edges(c, page), img, page) for c, img, page in zip(colors, imgs, prepared)]


def _inside_edges(colors: torch.Tensor, page: _Prepared) -> Image.Image:
    """The network's colors (1, 3, h', w'), stopped at the outlines of the scan it saw
    (`pipeline.colorist.regions.inside_edges`: no halo across a line)."""
    from pipeline.colorist.regions import inside_edges, regions

    labels = page.labels
    if labels is None:
        labels, _ = regions(to_uint8_image(page.scan)[0, 0].cpu().numpy())
    return Image.fromarray(inside_edges(np.asarray(_to_image(colors)), labels), "RGB")


@dataclass
class _Prepared:
    x: torch.Tensor | None  # the colorizer's input (1, C, h', w'); None without a colorizer
    scan: torch.Tensor  # the scan it colorizes (1, 1, h', w')
    colored: bool  # the page came in colored (its line art is the generated scan)
    hint_u8: np.ndarray | None  # (h', w', 4) hint channels
    labels: np.ndarray | None  # (h', w') the regions the hints spread over


def _prepare(colorizer, scangen, img: Image.Image, work_size: int | None, device: torch.device, treat_as: str,
             precision: str, hints) -> _Prepared:
    w, h = img.size
    work = _resized(img.convert("RGB"), shrink_to_fit(w, h, work_size))
    colored = treat_as == "color" or (treat_as == "auto" and is_colored(work))
    if colored:
        if scangen is None:
            raise ValueError("a colored page needs the scan generator: models/scan_generator.pt is missing "
                             "(`dvc pull models/scan_generator.pt`, or name one with --scan-model)")
        with inference_autocast(precision, device):
            scan = run_tiled(scangen, _to_tensor(work, device), 1).clamp(-1, 1)
    else:
        scan = _to_tensor(work.convert("L"), device)
    scan_u8 = to_uint8_image(scan)[0, 0].cpu().numpy()  # (h', w') what the colorizer sees
    hint_u8 = labels = None
    if hints is not None:
        from pipeline.colorist.hint_files import resize_hints
        from pipeline.colorist.hints import encode_hints
        from pipeline.colorist.regions import regions

        ids = resize_hints(hints[0], (scan_u8.shape[1], scan_u8.shape[0]))
        labels, _ = regions(scan_u8)
        hint_u8 = encode_hints(scan_u8, ids, hints[1], labels)
    x = None
    if colorizer is not None:
        x = with_hints(colorizer, scan_u8[None, ..., None], None if hint_u8 is None else hint_u8[None])
        x = to_model_input(torch.from_numpy(x), device)  # (1, 1 [+ 4], h', w')
    return _Prepared(x, scan, colored, hint_u8, labels)


def _flat_hints(page: _Prepared) -> Image.Image:
    """`auto="none"`: the hints' flat colors over their regions, white paper elsewhere."""
    from pipeline.colorist.hints import hint_layer

    h, w = page.scan.shape[-2:]
    if page.hint_u8 is None:
        return Image.new("RGB", (w, h), (255, 255, 255))
    return Image.fromarray(hint_layer(page.hint_u8, page.labels), "RGB")


def _finish(colors: Image.Image, img: Image.Image, page: _Prepared) -> tuple[Image.Image, Image.Image]:
    w, h = img.size
    if colors.size != (w, h):
        colors = colors.resize((w, h), Image.Resampling.BICUBIC)
    line_art = img.convert("L") if not page.colored else _to_image(page.scan).resize((w, h), Image.Resampling.BICUBIC)
    return colors, line_art


def colorize_image(colorizer: torch.nn.Module | None, scangen: torch.nn.Module | None, img: Image.Image,
                   work_size: int | None, device: torch.device, treat_as: str = "auto",
                   ink: str = "multiply", precision: str = "fp32",
                   hints: tuple[np.ndarray, np.ndarray] | None = None, auto: str = "network",
                   tone: str = "descreen") -> Image.Image:
    """Scan or colored page (RGB PIL) -> colorized RGB at the same size (`colorize_layers`).

    ink="multiply" composes the page as a colorist does (`pipeline.colorist.ink.compose`:
    the page's own strokes, pixel-exact, over the colors, black fills in a dark shade of
    their color, screentone descreened into shading, or kept with tone="keep"); "none"
    returns the color layer as it is.
    """
    if ink not in INK_MODES:
        raise ValueError(f"ink {ink!r}: allowed values are {', '.join(INK_MODES)}")
    colors, line_art = colorize_layers(colorizer, scangen, img, work_size, device, treat_as, precision, hints, auto)
    return compose(colors, line_art, ink, tone)
