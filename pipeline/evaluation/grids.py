"""Image grids: the evaluation grid (`eval/grid.png`, shown by `dvc plots show`), and the
layout and crop the training sample grids use (DVCLive, every `sample_every` steps; drawn by
`pipeline.training.train_cyclegan` and `pipeline.training.train_colorizer`)."""

from __future__ import annotations

import numpy as np
import torch


def image_grid(rows: list[np.ndarray], scale: int):
    """PIL grid of uint8 (N, H, W, 1 or 3) rows, one image per column, enlarged `scale`×
    with nearest-neighbour (the pixels a 64-px model sees stay visible)."""
    import torchvision
    from PIL import Image

    tensors = [torch.from_numpy(np.ascontiguousarray(r)).permute(0, 3, 1, 2).expand(-1, 3, -1, -1) for r in rows]
    grid = torchvision.utils.make_grid(torch.cat(tensors), nrow=len(rows[0]), padding=2, pad_value=128)
    img = Image.fromarray(grid.permute(1, 2, 0).numpy())
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


SAMPLE_SIDE = 256  # training sample grids show at most this much of each image, at 2x


def sample_crop(images: np.ndarray, side: int = SAMPLE_SIDE) -> np.ndarray:
    """The centre `side` x `side` of (N, H, W, C) images larger than that (page-sized
    training images would make a grid of hundreds of megapixels); smaller ones unchanged."""
    h, w = images.shape[1:3]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return images[:, top:top + side, left:left + side]


EVALUATION_ROWS = ("true_scan", "scan_approximation", "colorized_scangen", "colorized_greyscale", "hints_given",
                   "hinted_scangen", "ground_truth")


def evaluation_grid(shown: dict[str, np.ndarray], n: int = 8):
    """One column per holdout image (n spread over the holdout); rows: true scan, scan
    approximation, colorization (generated-scan model), colorization (greyscale model), the
    hints given (dots on the scan) and the colorization with them, ground truth — those
    present in `shown`. Images of 256 px and more are shown 1:1, smaller ones enlarged."""
    total = len(shown["ground_truth"])
    idx = np.linspace(0, total - 1, min(n, total)).astype(int)
    side = shown["ground_truth"].shape[1]
    return image_grid([shown[key][idx] for key in EVALUATION_ROWS if key in shown],
                      scale=max(1, min(3, 256 // side)))


def hint_dots(scans: np.ndarray, hint_ids: list[np.ndarray], colors: list[np.ndarray]) -> np.ndarray:
    """uint8 (N, H, W, 3): the scans with each hint drawn as a dot in its color, ringed in
    black so a white or pale hint shows too."""
    from scipy import ndimage

    out = np.repeat(np.asarray(scans), 3, -1)
    for img, ids, cols in zip(out, hint_ids, colors):
        dots = ndimage.grey_dilation(ids + 1, size=(5, 5)) - 1  # hint k (or -1) over a 5x5 dot
        ring = ndimage.binary_dilation(dots >= 0, iterations=1) & ~ndimage.binary_erosion(dots >= 0)
        img[ring] = 0
        inner = ndimage.binary_erosion(dots >= 0)
        img[inner] = cols[dots[inner]]
    return out
