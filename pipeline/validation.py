"""One way to refuse a bad value, and the one set of ranges both places that check them use.

params.yaml is validated by `pipeline.config`; a model file's architecture is validated by
the architecture dataclasses in `pipeline.models` when a published model is rebuilt. Both
check the same keys (widths, depths, levels) against the ranges below and word their errors
the same way: the dotted key, the value, and what is allowed.
"""

from __future__ import annotations

import reprlib
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
# weights in a published model: 2**28 (1 GiB as float32) is ~200x the default colorizer's 1.4M;
# a file declaring more is corrupt or foreign, and building it would exhaust memory
MODEL_WEIGHTS = 1 << 28


def require(ok: bool, key: str, allowed: str, value: Any, error: type[ValueError] = ValueError) -> None:
    """Raise `error("<key> = <value>: must be <allowed>")` unless `ok`."""
    if not ok:
        raise error(f"{key} = {short_repr(value)}: must be {allowed}")


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr: 3 levels deep, 4 items per container, `limit` characters per scalar."""

    def __init__(self, limit: int):
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 4
        self.maxstring = self.maxlong = self.maxother = limit

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() of an int past 4300 digits raises, and is slow before that
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)


def short_repr(value: Any, limit: int = 80) -> str:
    """repr(value) in at most `limit` characters, at a cost bounded by `limit`: a value read from
    a file (YAML aliases of aliases, a 5000-digit number, a 10 MB string) goes into a message
    as its beginning, never expanded in full."""
    text = _ShortRepr(limit).repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_int(value: Any) -> bool:
    """An integer, and not a bool (True is an int in Python, but not a channel count)."""
    return type(value) is int


def in_range(bounds: tuple[int, int]) -> str:
    return f"an integer in [{bounds[0]}, {bounds[1]}]"
