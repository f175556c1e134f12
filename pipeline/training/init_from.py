"""Fine-tuning: start a stage's generator from a published model file (`*.init_from`).

The file must hold the architecture the params build, key for key: a fine-tune that
silently dropped or re-initialised layers would not be a fine-tune. A mismatch names each
differing key with the file's and the params' values; a missing, corrupt or foreign file
is refused by `load_model` with its own message. The discriminators start fresh (a
published file carries only the generator).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from pipeline.digests import file_digest

# architecture keys that are not named as in params, and the params key that sets them
_PARAM_OF = {
    "colorizer": {"in_channels": "hints_max (0: no hint channels, 1 input channel; else 5)"},
    "cyclegan": {"width": "generator_width", "input_skip": "generator_skip"},
}


class InitFromError(ValueError):
    """The model file to start from does not fit the params."""


def start_from(model: nn.Module, path: str | Path, load: Callable[[Path], nn.Module], key: str) -> dict:
    """Copy the weights of the published model at `path` into `model`, built from params
    section `key` ("colorizer", "cyclegan"). Returns what to record: the path and digest."""
    path = Path(path)
    try:
        published = load(path)
    except FileNotFoundError as exc:
        raise InitFromError(f"{key}.init_from = {str(path)!r}: {exc}") from None
    except ValueError as exc:
        raise InitFromError(f"{key}.init_from = {str(path)!r}: {exc}") from None
    ours, theirs = model.to_config_dict(), published.to_config_dict()
    differ = [k for k in sorted(ours.keys() | theirs.keys()) if ours.get(k) != theirs.get(k)]
    if differ:
        names = _PARAM_OF.get(key, {})
        detail = "; ".join(f"{k}: file {theirs.get(k)!r}, params {ours.get(k)!r} ({key}.{names.get(k, k)})"
                           for k in differ)
        raise InitFromError(f"{key}.init_from = {str(path)!r}: the file's architecture does not match the params: "
                            f"{detail}. Set those params to the file's values to fine-tune it")
    model.load_state_dict(published.state_dict())
    return {"init_from": str(path), "init_sha256": file_digest(path)}
