"""Published model files (`models/*.pt`) and the architecture dicts inside them.

A published file is a plain dict — format tag, version, the architecture as a dict, the
weights, a few facts (training image size, steps) — so it loads with
`torch.load(weights_only=True)` and rebuilds without params.yaml. Both model families
(scan generator, colorizer) write and read it through these functions.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from pipeline.files import open_atomic
from pipeline.validation import (
    MODEL_IMAGE_SIZE,
    MODEL_WEIGHTS,
    in_range,
    is_int,
    short_repr,
)


def config_from_dict(cls: type, config: Mapping[str, Any], require_all: bool = False) -> Any:
    """Build architecture dataclass `cls` from a plain dict, naming any unknown, missing or
    mistyped key. `require_all`: keys with defaults are required too (a checkpoint missing
    one would silently get today's default, not the architecture it was trained with)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"{cls.__name__}: expected a dict of architecture keys, got {type(config).__name__}")
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    unknown = [k for k in config if k not in names]
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; allowed: {names}")
    missing = [f.name for f in fields if f.name not in config
               and (require_all or f.default is dataclasses.MISSING)]
    if missing:
        raise ValueError(f"{cls.__name__}: missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in config.items():
        expected = hints[key]
        if typing.get_origin(expected) is tuple:  # e.g. mults: a list after the dict round trip
            ok = isinstance(value, (list, tuple)) and all(type(v) is int for v in value)
            value, allowed = (tuple(value) if ok else value), "a list of integers"
        else:
            # exact type: True is an int in Python, but not a valid channel count
            ok, allowed = type(value) is expected, expected.__name__
        if not ok:
            raise ValueError(f"{cls.__name__}.{key} must be {allowed}, got {type(value).__name__} {short_repr(value)}")
        kwargs[key] = value
    return cls(**kwargs)


def publish_model(model: nn.Module, path: str | Path, fmt: str, version: int, **facts: Any) -> None:
    """Write weights + `model.to_config_dict()` + facts atomically (the bare network's,
    out of a DDP or `torch.compile` wrapper)."""
    from pipeline.runtime import unwrap

    model = unwrap(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with open_atomic(path) as f:
        torch.save({"format": fmt, "version": version, "config": model.to_config_dict(), "state_dict": state,
                    **facts}, f)


def load_model(path: str | Path, fmt: str, version: int, build: Callable[[Mapping[str, Any]], nn.Module],
               what: str, how_to_get: str, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a published model in eval mode; `model.image_size` is the size it trained at.

    Errors name the file and say what to do: a missing file how to get it (`how_to_get`),
    an unreadable or foreign file what it is not.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {what} here; {how_to_get}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        found = blob.get("format") if isinstance(blob, dict) else None
        raise ValueError(f"{path}: not a OnePunchGAN {what} (format {short_repr(found)})")
    if blob.get("version") != version:
        raise ValueError(f"{path}: {what} format version {short_repr(blob.get('version'))}, this code reads {version}")
    lacking = [k for k in ("config", "state_dict") if k not in blob]
    if lacking:
        raise ValueError(f"{path}: a {what} file without {' or '.join(lacking)}; {how_to_get}")
    weights = blob["state_dict"]
    if not isinstance(weights, Mapping):
        raise ValueError(f"{path}: state_dict is a {type(weights).__name__}, not a dict of weights")
    # the declared architecture is built without memory first: a small file declaring
    # `width: 8192` would otherwise allocate hundreds of GB before its weights were looked at
    try:
        with torch.device("meta"), _ShapesOnly():
            declared = build(blob["config"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except RuntimeError as exc:  # e.g. a width whose weight count overflows int64
        why = str(exc).partition("\n")[0][:200]
        raise ValueError(f"{path}: the architecture it declares cannot be built ({why})") from None
    _check_weights_fit(path, blob["config"], declared.state_dict(), weights)
    model = build(blob["config"])
    try:
        model.load_state_dict(weights)  # every key and shape checked above
    except RuntimeError as exc:  # a weight of a dtype that cannot be copied in
        detail = " ".join(line.strip() for line in str(exc).splitlines())[:300]
        raise ValueError(f"{path}: weights do not fit the architecture it declares: {detail}") from None
    size = blob.get("image_size", 256)
    if not (is_int(size) and MODEL_IMAGE_SIZE[0] <= size <= MODEL_IMAGE_SIZE[1]):
        raise ValueError(f"{path}: image_size = {short_repr(size)}: must be {in_range(MODEL_IMAGE_SIZE)}")
    model.image_size = size
    return model.to(device).eval()


class _ShapesOnly(TorchFunctionMode):
    """With torch.device("meta"): skip random initialisation, which on meta tensors changes
    nothing but costs seconds the first time (normal_ imports torch's Python reference ops)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.normal_, torch.Tensor.uniform_) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def _check_weights_fit(path: Path, config: Any, declared: Mapping[str, torch.Tensor], weights: Mapping) -> None:
    """Refuse weights that are not exactly the declared architecture's (keys and shapes), and
    architectures too big to be a published model; `declared` holds meta tensors."""
    total = sum(t.numel() for t in declared.values())
    if total > MODEL_WEIGHTS:
        arch = ", ".join(f"{k} = {short_repr(v, 40)}" for k, v in list(config.items())[:12])
        raise ValueError(f"{path}: the architecture it declares ({arch}) has {total:,} weights; a published model "
                         f"has at most {MODEL_WEIGHTS:,}: a corrupt or foreign file")
    missing = [k for k in declared if k not in weights]
    unexpected = [k[:80] if isinstance(k, str) else short_repr(k, 40) for k in weights if k not in declared]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the architecture it declares: "
                         f"missing {_few(missing)}, unexpected {_few(unexpected)}")
    wrong = [f"{k} is {_shape(weights[k])}, the architecture needs {_shape(t)}" for k, t in declared.items()
             if not (isinstance(weights[k], torch.Tensor) and weights[k].shape == t.shape)]
    if wrong:
        raise ValueError(f"{path}: weights do not fit the architecture it declares: {_few(wrong)}")


def _shape(value: Any) -> str:
    return "x".join(map(str, value.shape)) if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"


def _few(keys: list[str], n: int = 3) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")
