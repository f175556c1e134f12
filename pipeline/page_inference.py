"""Running the published networks on whole pages at their own resolution (`onepunch scan`,
`onepunch colorize`, `onepunch evaluate`): tiled with blended overlaps when large, in bf16
where the hardware computes it natively, the page's own ink multiplied over the colors.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.data.imaging import is_colored
from pipeline.inference import ink_multiply
from pipeline.models.pixels import to_model_input, to_uint8_image


def working_size(width: int, height: int, work_size: int | None) -> tuple[int, int]:
    """(w, h) of a page to run at: its own size, or shrunk so its long side is work_size
    (never enlarged). The networks trained on crops at page line widths: a page runs at its
    own resolution unless its lines are far wider than a page's (very high-dpi scans)."""
    long_side = max(width, height)
    if work_size is None or long_side <= work_size:
        return width, height
    scale = work_size / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


TILE = 1024  # tile side of `run_tiled`; a 1024 x 1448 page runs in two tiles
TILE_OVERLAP = 128  # pixels shared by neighbouring tiles, blended linearly
WHOLE_LIMIT = 1600 * 1600  # pages up to this many pixels run whole (no seams at all)


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _ramp(n: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """Blend weights along one tile side: rising over the overlap, flat inside; flat at the
    page's own edges."""
    i = torch.arange(n, dtype=torch.float32)
    w = torch.minimum((i + 1) / (overlap + 1), (n - i) / (overlap + 1)).clamp(max=1.0)
    if first:
        w[: n // 2] = 1.0
    if last:
        w[n // 2:] = 1.0
    return w


@torch.no_grad()
def run_tiled(fn, x: torch.Tensor, out_channels: int, tile: int = TILE, overlap: int = TILE_OVERLAP,
              whole_limit: int = WHOLE_LIMIT) -> torch.Tensor:
    """fn over a (1, C, H, W) page: whole when it has at most whole_limit pixels, else in
    overlapping tile x tile windows blended linearly across the overlaps (no visible seams,
    memory bounded by one tile whatever the page size)."""
    _, _, h, w = x.shape
    if h * w <= whole_limit:
        return fn(x).float()
    out = torch.zeros((1, out_channels, h, w), dtype=torch.float32, device=x.device)
    weight = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
    step = max(1, tile - overlap)
    ys, xs = _starts(h, tile, step), _starts(w, tile, step)
    for y in ys:
        for x0 in xs:
            th, tw = min(tile, h - y), min(tile, w - x0)
            y_w = _ramp(th, overlap, y == ys[0], y == ys[-1]).to(x.device)
            x_w = _ramp(tw, overlap, x0 == xs[0], x0 == xs[-1]).to(x.device)
            wgt = (y_w[:, None] * x_w[None, :])[None, None]
            out[..., y:y + th, x0:x0 + tw] += fn(x[..., y:y + th, x0:x0 + tw]).float() * wgt
            weight[..., y:y + th, x0:x0 + tw] += wgt
    return out / weight


PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Does this CPU compute bf16 natively (AVX512-BF16 or AMX)? Elsewhere bf16 is emulated
    and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': bf16 on CUDA and on CPUs with native bf16, fp32 otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: allowed values are {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or cpu_has_native_bf16() else "fp32"


def autocast(precision: str, device: torch.device):
    """bf16 autocast for inference (the weights stay fp32), or nothing for fp32."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    x = _to_tensor(_resized(img.convert("RGB"), working_size(w, h, work_size)), device)
    with autocast(precision, device):
        out = _to_image(run_tiled(model, x, 1))
    return out.resize((w, h), Image.Resampling.BICUBIC) if out.size != (w, h) else out


INK_MODES = ("multiply", "none")


@torch.no_grad()
def colorize_layers(colorizer: torch.nn.Module, scangen: torch.nn.Module | None, img: Image.Image,
                    work_size: int | None, device: torch.device, treat_as: str = "auto",
                    precision: str = "fp32", hints: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[Image.Image, Image.Image]:
    """Scan or colored page (RGB PIL) -> (color layer RGB, line art 'L'), both at the page's size.

    Runs at the page's own resolution (tiled when large). A colored input goes through the
    scan generator first, as in the original pipeline; its line art is then the generated
    scan, else the page itself, pixel-exact. hints: (ids (H, W), colors (K, 3)) in page
    pixels (`pipeline.hint_files.read_hints`), spread over the regions of the scan the
    network sees. precision: see `resolve_precision` (bf16 autocast: 1.93 s instead of
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
        if h * w <= WHOLE_LIMIT:
            groups.setdefault((h, w), []).append(i)
        else:
            with autocast(precision, device):
                colors[i] = run_tiled(colorizer, x, 3)
    for idx in groups.values():
        with autocast(precision, device):
            out = colorizer(torch.cat([prepared[i][0] for i in idx]).contiguous(memory_format=torch.channels_last))
        for k, i in enumerate(idx):
            colors[i] = out[k:k + 1].float()
    return [_finish(c, img, scan, colored) for c, img, (_, scan, colored) in zip(colors, imgs, prepared)]


def _prepare(colorizer, scangen, img: Image.Image, work_size: int | None, device: torch.device, treat_as: str,
             precision: str, hints) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(the colorizer's input (1, C, h', w'), the scan it colorizes (1, 1, h', w'), colored?)"""
    from pipeline.inference import with_hints

    w, h = img.size
    work = _resized(img.convert("RGB"), working_size(w, h, work_size))
    colored = treat_as == "color" or (treat_as == "auto" and is_colored(work))
    if colored:
        if scangen is None:
            raise ValueError("a colored page needs the scan generator: models/scan_generator.pt is missing "
                             "(`dvc pull models/scan_generator.pt`, or name one with --scan-model)")
        with autocast(precision, device):
            scan = run_tiled(scangen, _to_tensor(work, device), 1).clamp(-1, 1)
    else:
        scan = _to_tensor(work.convert("L"), device)
    scan_u8 = to_uint8_image(scan)[0, 0].cpu().numpy()  # (h', w') what the colorizer sees
    hint_u8 = None
    if hints is not None:
        from pipeline.hint_files import resize_hints
        from pipeline.models.hints import encode_hints

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


def compose(colors: Image.Image, line_art: Image.Image, ink: str) -> Image.Image:
    if ink == "none":
        return colors
    return Image.fromarray(ink_multiply(np.asarray(colors), np.asarray(line_art)), mode="RGB")
