"""One way to refuse a bad value, and the one set of ranges both places that check them use.

params.yaml is validated by `pipeline.config`; a model file's architecture is validated by
the architecture dataclasses in `pipeline.models` when a published model is rebuilt. Both
check the same keys (widths, depths, levels) against the ranges below and word their errors
the same way: the dotted key, the value, and what is allowed.
"""

from __future__ import annotations

from typing import Any

# architecture ranges: deeper or wider than this is a typo, not an architecture
N_DOWN = (0, 5)  # stride-2 downsamplings of the weak generators (2**5 = 32×)
N_RES = (0, 32)  # residual blocks at the weak generators' bottleneck
DISC_LAYERS = (1, 6)  # stride-2 blocks of the PatchGAN; 3 gives the 70×70 receptive field
UNET_LEVELS = (1, 7)  # resolution levels of the U-Net (len(mults)); 2**6 = 64× downsampling

# seeds (`seed`, `select.split_seed`, `source.synthetic.seed`): torch.manual_seed takes
# [-2**63, 2**64) and fails past it, numpy's legacy seed takes seed % 2**32, random.seed takes
# abs(seed), the split hash keeps seed & 0xFFFFFFFF, and the stages add offsets (seed + rank,
# seed + 5 + 1000 * rank). Within [0, 2**31 - 1] every RNG takes every offset seed and no two
# seeds give the same stream.
SEED = (0, 2**31 - 1)
MODEL_IMAGE_SIZE = (8, 8192)  # the working size a published model trained at (and `--work-size`)


def require(ok: bool, key: str, allowed: str, value: Any, error: type[ValueError] = ValueError) -> None:
    """Raise `error("<key> = <value>: must be <allowed>")` unless `ok`."""
    if not ok:
        raise error(f"{key} = {value!r}: must be {allowed}")


def is_int(value: Any) -> bool:
    """An integer, and not a bool (True is an int in Python, but not a channel count)."""
    return type(value) is int


def in_range(bounds: tuple[int, int]) -> str:
    return f"an integer in [{bounds[0]}, {bounds[1]}]"
