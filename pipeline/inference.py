"""Running the published networks: on uint8 arrays in batches (stages), and on one PIL image
of any size (the CLI).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from pipeline.models.pixels import to_model_input, to_uint8_image
from pipeline.training.runtime import Runtime


@torch.no_grad()
def run_batched(model: nn.Module, images, out_channels: int, rt: Runtime, batch: int = 64,
                progress: bool = False, desc: str = "") -> np.ndarray:
    """Inference over uint8 (N, H, W, C) images -> uint8 (N, H, W, out_channels)."""
    from tqdm import tqdm

    model.eval()
    out = []
    for chunk in tqdm(list(iterate_batches(images, batch)), disable=not progress, desc=desc, unit="batch"):
        x = to_model_input(torch.from_numpy(chunk), rt.device, rt.memory_format)
        with rt.autocast():
            y = model(x)
        out.append(to_uint8_image(y).permute(0, 2, 3, 1).cpu().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:3], out_channels), np.uint8)


def iterate_batches(array: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Sequential batches for inference (make_pairs, evaluation)."""
    for i in range(0, len(array), batch_size):
        yield np.ascontiguousarray(array[i:i + batch_size])


def generate_scans(model: nn.Module, color: np.ndarray, rt: Runtime, batch: int = 64,
                   progress: bool = False) -> np.ndarray:
    """uint8 (N, H, W, 3) colored images -> uint8 (N, H, W, 1) scans."""
    return run_batched(model, color, 1, rt, batch, progress, desc="scans")


def colorize_arrays(model: nn.Module, scans: np.ndarray, rt: Runtime, batch: int = 64) -> np.ndarray:
    """uint8 (N, H, W, 1) scans -> uint8 (N, H, W, 3) colorizations."""
    return run_batched(model, scans, 3, rt, batch)


def working_size(width: int, height: int, work_size: int) -> tuple[int, int]:
    """(w, h) with the long side = work_size (never upscaling past 4x), aspect kept."""
    long_side = max(width, height)
    scale = min(work_size / long_side, 4.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


@torch.no_grad()
def scan_image(model: torch.nn.Module, img: Image.Image, work_size: int, device: torch.device) -> Image.Image:
    """RGB PIL image -> 'L' scan at the same size."""
    w, h = img.size
    small = img.resize(working_size(w, h, work_size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    x = torch.from_numpy(np.array(small, dtype=np.uint8)).permute(2, 0, 1)[None].float()
    x = (x / 127.5 - 1).to(device).contiguous(memory_format=torch.channels_last)
    y = model(x)[0, 0].float().clamp(-1, 1)
    out = Image.fromarray(((y + 1) * 127.5).round().to(torch.uint8).cpu().numpy(), mode="L")
    return out.resize((w, h), Image.Resampling.BICUBIC) if out.size != (w, h) else out


def is_colored(img: Image.Image, threshold: float = 12.0) -> bool:
    """Does an RGB image carry color (rather than being a grey scan saved as RGB)?
    Mean chroma (max - min channel) on a 0..255 scale, on a small thumbnail."""
    thumb = np.asarray(img.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.int16)
    return float((thumb.max(-1) - thumb.min(-1)).mean()) > threshold


@torch.no_grad()
def colorize_image(colorizer: torch.nn.Module, scangen: torch.nn.Module | None, img: Image.Image,
                   work_size: int, device: torch.device, treat_as: str = "auto") -> Image.Image:
    """Scan or colored page (RGB PIL) -> colorized RGB at the same size. A colored input
    goes through the scan generator first, as in the original pipeline."""
    w, h = img.size
    small = img.resize(working_size(w, h, work_size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    colored = treat_as == "color" or (treat_as == "auto" and is_colored(small))
    if colored:
        if scangen is None:
            raise ValueError("a colored page needs the scan generator: models/scan_generator.pt is missing "
                             "(`dvc pull models/scan_generator.pt`, or name one with --scan-model)")
        x = torch.from_numpy(np.array(small, dtype=np.uint8)).permute(2, 0, 1)[None].float()
        scan = scangen((x / 127.5 - 1).to(device))  # (1, 1, h, w) in [-1, 1]
    else:
        g = np.array(small.convert("L"), dtype=np.uint8)
        scan = (torch.from_numpy(g)[None, None].float() / 127.5 - 1).to(device)
    y = colorizer(scan.contiguous(memory_format=torch.channels_last))[0].float().clamp(-1, 1)
    out = Image.fromarray(((y + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy(), mode="RGB")
    return out.resize((w, h), Image.Resampling.BICUBIC) if out.size != (w, h) else out
