"""Reading a user's color hints for one page (`onepunch colorize PAGE --hints FILE`).

Two forms, both in page pixels:

- a transparent PNG (any image with an alpha channel) the size of the page, with colored
  dots or strokes painted on it: what anyone gets by painting on a layer in an editor and
  exporting that layer. Every pixel at least half opaque is hint; each connected stroke is
  one hint in its mean color;
- JSON: `[{"x": 120, "y": 340, "color": "#d04040"}, ...]`; each point becomes a dot of
  radius `POINT_RADIUS`.

Anything that does not fit the page is refused with a `HintFileError` naming the file and
the problem; nothing is guessed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from pipeline.validation import short_repr

POINT_RADIUS = 2  # pixels: a JSON point's dot
ALPHA_LEVEL = 128  # PNG pixels at least this opaque are hint
MAX_HINTS = 10_000
# MAX_HINTS points of ~50 bytes each fit in well under 1 MiB; anything far larger is not a hint file
MAX_JSON_BYTES = 4 << 20
# longer JSON integers cannot be page pixels; Python itself refuses to convert past 4300 digits
_MAX_DIGITS = 30
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")  # fullmatch: "#fff\n" is not a color
_POINT_FORM = '{"x": 120, "y": 340, "color": "#d04040"}'


class HintFileError(ValueError):
    """A hint file that cannot be used for this page; the message names the file and why."""


def parse_color(text, where: str) -> tuple[int, int, int]:
    if not isinstance(text, str) or not _COLOR.fullmatch(text):
        raise HintFileError(f"{where}: color {short_repr(text)} is not '#rrggbb' (or '#rgb')")
    h = text[1:]
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def read_hints(path: Path, page_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(hint_ids (H, W) int32, -1 where none; colors (K, 3) uint8) for a page of (w, h)."""
    path = Path(path)
    if not path.is_file():
        raise HintFileError(f"hint file {path}: no such file")
    if path.suffix.lower() == ".json":
        return _from_json(path, page_size)
    return _from_image(path, page_size)


class _LongNumber(Exception):
    """A JSON integer of more than _MAX_DIGITS digits (its digit count in args[0])."""


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_DIGITS:
        raise _LongNumber(len(digits.lstrip("-")))
    return int(digits)


def _from_json(path: Path, page_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    where = f"hint file {path}"
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise HintFileError(f"{where}: {size} bytes, at most {MAX_JSON_BYTES} ({MAX_HINTS} points); "
                                f"expected a list of points in page pixels, [{_POINT_FORM}, ...]")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HintFileError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise HintFileError(f"{where}: not JSON ({exc})") from None
    return hints_from_points(parse_points(text, where), page_size, where)


def parse_points(text: str, source: str):
    """JSON text -> its value, for `hints_from_points`; anything `json.loads` refuses (or a
    5000-digit number, or 100,000 nested brackets) is a HintFileError naming `source`."""
    expected = f"expected a list of points in page pixels, [{_POINT_FORM}, ...]"
    try:
        return json.loads(text, parse_int=_parse_int)
    except _LongNumber as exc:
        raise HintFileError(f"{source}: a number of {exc.args[0]} digits; {expected}") from None
    except RecursionError:
        raise HintFileError(f"{source}: nested too deeply; {expected}") from None
    except ValueError as exc:  # JSONDecodeError
        raise HintFileError(f"{source}: not JSON ({str(exc)[:200]}); {expected}") from None


def hints_from_points(data, page_size: tuple[int, int], source: str) -> tuple[np.ndarray, np.ndarray]:
    """JSON points [{"x", "y", "color"}] (already parsed) -> (hint_ids, colors) as `read_hints`;
    errors name `source` (a file, or "the hints" of a web upload)."""
    w, h = page_size
    if not isinstance(data, list):
        raise HintFileError(f"{source}: expected a list of points, [{_POINT_FORM}, ...], got {type(data).__name__}")
    if len(data) > MAX_HINTS:
        raise HintFileError(f"{source}: {len(data)} points; at most {MAX_HINTS}")
    ids = np.full((h, w), -1, np.int32)
    colors = np.zeros((len(data), 3), np.uint8)
    yy, xx = np.mgrid[-POINT_RADIUS:POINT_RADIUS + 1, -POINT_RADIUS:POINT_RADIUS + 1]
    disk = yy ** 2 + xx ** 2 <= POINT_RADIUS ** 2
    for k, point in enumerate(data):
        where = f"{source}, point {k}"
        if not isinstance(point, dict) or not {"x", "y", "color"} <= set(point):
            raise HintFileError(f"{where}: expected {_POINT_FORM}, got {short_repr(point)}")
        x, y = point["x"], point["y"]
        if not all(_is_coordinate(v) for v in (x, y)):
            raise HintFileError(f"{where}: x and y must be numbers (finite, in page pixels), "
                                f"got x={short_repr(x, 40)}, y={short_repr(y, 40)}")
        if not (0 <= x < w and 0 <= y < h):
            raise HintFileError(f"{where}: ({short_repr(x, 40)}, {short_repr(y, 40)}) is outside the {w}x{h} page; "
                                f"x in [0, {w}), y in [0, {h})")
        colors[k] = parse_color(point["color"], where)
        cy, cx = int(y), int(x)
        for dy, dx in zip(yy[disk].tolist(), xx[disk].tolist()):
            if 0 <= cy + dy < h and 0 <= cx + dx < w:
                ids[cy + dy, cx + dx] = k
    return ids, colors


def _is_coordinate(value) -> bool:
    """An int (not a bool) or a finite float: an int of any length compares with the page size
    exactly, where numpy's isfinite raises on ints past 64 bits."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _from_image(path: Path, page_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError
    from scipy import ndimage

    try:
        with Image.open(path) as im:
            if im.size != tuple(page_size):
                raise HintFileError(f"hint file {path}: it is {im.size[0]}x{im.size[1]} but the page is "
                                    f"{page_size[0]}x{page_size[1]}; paint the hints on a layer the page's size")
            has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            if not has_alpha:
                raise HintFileError(f"hint file {path}: no transparency ({im.mode}); paint the hints on a "
                                    "transparent layer and export that layer as PNG")
            rgba = np.asarray(im.convert("RGBA"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise HintFileError(f"hint file {path}: not a readable image or JSON ({exc})") from None
    marked = rgba[..., 3] >= ALPHA_LEVEL
    strokes, n = ndimage.label(marked, structure=np.ones((3, 3), bool))
    if n == 0:
        raise HintFileError(f"hint file {path}: fully transparent, no hints on it")
    if n > MAX_HINTS:
        raise HintFileError(f"hint file {path}: {n} separate strokes; at most {MAX_HINTS}")
    rgb = rgba[..., :3].astype(np.float64)
    sums = np.stack([np.bincount(strokes.ravel(), rgb[..., c].ravel(), n + 1)[1:] for c in range(3)], 1)
    counts = np.bincount(strokes.ravel(), minlength=n + 1)[1:]
    colors = np.rint(sums / counts[:, None]).astype(np.uint8)
    return (strokes - 1).astype(np.int32), colors


def resize_hints(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Hint ids (H, W) at another (w, h), nearest neighbour (ids are labels, not values);
    a dot never vanishes: every hint keeps at least the pixel its centre maps to."""
    h, w = ids.shape
    if (w, h) == tuple(size):
        return ids
    nw, nh = size
    ys = np.minimum((np.arange(nh) + 0.5) * h / nh, h - 1).astype(int)
    xs = np.minimum((np.arange(nw) + 0.5) * w / nw, w - 1).astype(int)
    out = ids[ys[:, None], xs[None, :]]
    present = set(np.unique(out).tolist())
    for k in np.unique(ids[ids >= 0]).tolist():
        if k not in present:
            yy, xx = np.nonzero(ids == k)
            out[min(nh - 1, int(yy.mean() * nh / h)), min(nw - 1, int(xx.mean() * nw / w))] = k
    return out
