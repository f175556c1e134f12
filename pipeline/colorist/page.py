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


@torch.no_grad()
def colorize_layers(colorizer: torch.nn.Module, scangen: torch.nn.Module | None, img: Image.Image,
                    work_size: int | None, device: torch.device, treat_as: str = "auto",
                    precision: str = "fp32", hints: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[Image.Image, Image.Image]:
    """Scan or colored page (RGB PIL) -> (color layer RGB, line art 'L'), both at the page's size.

    Runs at the page's own resolution (tiled when large). A colored input goes through the
    scan generator first, as in the original pipeline; its line art is then the generated
    scan, else the page itself, pixel-exact. hints: (ids (H, W), colors (K, 3)) in page
    pixels (`pipeline.colorist.hint_files.read_hints`), spread over the regions of the scan the
    network sees. precision: see `pipeline.runtime.resolve_precision` (bf16 autocast: 1.93 s instead of
    3.23 s for a 1024x1448 page on a 2-core CPU with AMX, benchmarks/bench_page.py; within
    2 grey levels of fp32).
    """
    return colorize_layers_batch(colorizer, scangen, [img], work_size, device, treat_as, precision, [hints])[0]


@torch.no_grad()
def colorize_layers_batch(colorizer: torch.nn.Module, scangen: torch.nn.Module | None, imgs: list[Image.Image],
                          work_size: int | None, device: torch.device, treat_as: str = "auto",
                          precision: str = "fp32", hints: list | None = None) -> list[tuple[Image.Image, Image.Image]]:
    """`colorize_layers` for several pages at once: pages of one working size that run whole
    go through the colorizer as one batch (what a GPU wants); the others one by one. Same
    results as page by page (GroupNorm and the attention are per image)."""
    hints = hints or [None] * len(imgs)
    prepared = [_prepare(colorizer, scangen, img, work_size, device, treat_as, precision, h)
                for img, h in zip(imgs, hints)]
    colors: list[torch.Tensor | None] = [None] * len(imgs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (x, *_) in enumerate(prepared):
        h, w = x.shape[-2:]
        if runs_whole(h, w):
            groups.setdefault((h, w), []).append(i)
        else:
            with inference_autocast(precision, device):
                colors[i] = run_tiled(colorizer, x, 3)
    for idx in groups.values():
        with inference_autocast(precision, device):
            out = colorizer(torch.cat([prepared[i][0] for i in idx]).contiguous(memory_format=torch.channels_last))
        for k, i in enumerate(idx):
            colors[i] = out[k:k + 1].float()
    return [_finish(c, img, scan, colored) for c, img, (_, scan, colored) in zip(colors, imgs, prepared)]


def _prepare(colorizer, scangen, img: Image.Image, work_size: int | None, device: torch.device, treat_as: str,
             precision: str, hints) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(the colorizer's input (1, C, h', w'), the scan it colorizes (1, 1, h', w'), colored?)"""
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
    hint_u8 = None
    if hints is not None:
        from pipeline.colorist.hint_files import resize_hints
        from pipeline.colorist.hints import encode_hints

        ids = resize_hints(hints[0], (scan_u8.shape[1], scan_u8.shape[0]))
        hint_u8 = encode_hints(scan_u8, ids, hints[1])[None]
    x = with_hints(colorizer, scan_u8[None, ..., None], hint_u8)  # (1, h', w', 1 [+ 4]) uint8
    return to_model_input(torch.from_numpy(x), device), scan, colored


def _finish(colors_t: torch.Tensor, img: Image.Image, scan: torch.Tensor, colored: bool
            ) -> tuple[Image.Image, Image.Image]:
    w, h = img.size
    colors = _to_image(colors_t)
    if colors.size != (w, h):
        colors = colors.resize((w, h), Image.Resampling.BICUBIC)
    line_art = img.convert("L") if not colored else _to_image(scan).resize((w, h), Image.Resampling.BICUBIC)
    return colors, line_art


def colorize_image(colorizer: torch.nn.Module, scangen: torch.nn.Module | None, img: Image.Image,
                   work_size: int | None, device: torch.device, treat_as: str = "auto",
                   ink: str = "multiply", precision: str = "fp32",
                   hints: tuple[np.ndarray, np.ndarray] | None = None) -> Image.Image:
    """Scan or colored page (RGB PIL) -> colorized RGB at the same size (`colorize_layers`).

    ink="multiply" composes the page as a colorist does: the page's own line art,
    pixel-exact, multiplied over the predicted colors; "none" returns the network's color
    layer as it is.
    """
    if ink not in INK_MODES:
        raise ValueError(f"ink {ink!r}: allowed values are {', '.join(INK_MODES)}")
    colors, line_art = colorize_layers(colorizer, scangen, img, work_size, device, treat_as, precision, hints)
    return compose(colors, line_art, ink)


