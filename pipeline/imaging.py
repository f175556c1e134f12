"""Decode real-world Danbooru files into fixed-size training arrays (Pillow + numpy).

Danbooru2020's `original/` tree is what users uploaded, so the images stage meets every
oddity an image file can have. Each conversion here exists because of one of them:

- Not images at all (ugoira zips, swf, webm, HTML error pages, empty files) and images
  Pillow cannot parse are reported as a `DecodeError` with a fixed `reason`, so the
  stage can count and skip them instead of crashing a worker.
- Decompression bombs: a few-KB PNG may declare 30000x30000 pixels. The declared size
  is checked against `max_pixels` right after the header is read, before any pixel
  buffer is allocated; Pillow's own guard (which rejects beyond
  2 x `Image.MAX_IMAGE_PIXELS`) is translated into the same reason.
- Truncated uploads are rejected by default; `allow_truncated` decodes what is there.
- Animated GIF/PNG/WebP: the first frame, which is what a thumbnail shows.
- Colour modes: the model wants 8-bit RGB (or luma). CMYK JPEGs (Pillow undoes Adobe's
  inverted CMYK while decoding), YCbCr, HSV and LAB convert directly; 16-bit and float
  greyscale are *rescaled* to 8 bits, because convert("L") clips them to 255 and a
  16-bit scan would come out almost all white.
- Transparency is composited onto white: line art is often black strokes on a fully
  transparent background whose hidden colour is black too, so dropping the alpha
  channel would turn the whole drawing black. White is the paper colour of a scan.
- EXIF orientation is applied, so phone photos of pages come out upright.
- Speed: most training images are far larger than the 64-256 px training size. For
  JPEG, libjpeg can decode straight to 1/2, 1/4 or 1/8 scale (DCT scaling, "draft
  mode"), which skips most of the inverse DCT and colour conversion; the request is
  chosen so that the decoded image is never smaller than what the final fit needs, so
  nothing is upsampled that had the resolution to start with. The rest of the way is
  LANCZOS (the best of Pillow's filters on line art, downsampling and upsampling alike).
  Trade-off, measured by benchmarks/bench_images.py: DCT scaling filters like a box
  (area average), so when the ratio is an exact power of two (Danbooru's 512px set ->
  256 or 64) the result is area-averaged rather than Lanczos-sharp, a mean difference of
  about 3/255 concentrated on line edges, for about 5x the throughput of a full decode
  plus LANCZOS resize. The entropy decode that remains is the floor for JPEG.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

# Why a file was rejected. Fixed, so the images stage can tally failures by reason.
DECODE_ERROR_REASONS = (
    "not_an_image",  # zip/swf/webm/html/garbage/empty: no image format recognised
    "truncated",  # the file ends before the image does
    "too_large",  # declared width*height above max_pixels (decompression-bomb cap)
    "bad_size",  # a zero side, or an aspect ratio beyond MAX_ASPECT
    "decode_error",  # anything else Pillow refuses
)
FITS = ("pad", "crop")

# Past 50:1 a padded square keeps < 2% of its height for the drawing (about 1 px at
# 64 px), and a centre crop keeps < 2% of it: nothing a model can learn from.
MAX_ASPECT = 50

# Two-step resize: integer `reduce()` (box averaging, cheap) down to within this factor
# of the target, then LANCZOS for the rest. Pillow documents >= 3 as "indistinguishable
# from fair resampling in most cases"; benchmarks/bench_images.py measures it.
REDUCING_GAP = 3.0
RESAMPLE = Image.Resampling.LANCZOS

_HIGH_DEPTH_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_DRAFTABLE = ("JPEG", "MPO")  # the formats for which Pillow implements draft()
_EXIF_ORIENTATION = 0x0112
_ORIENTATION_TRANSPOSE = {  # EXIF orientation -> the transpose that makes it upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # those that swap width and height

# Image formats recognisable from their first bytes: used only to tell "an image Pillow
# could not parse" (decode_error/truncated/bad_size) from "not an image at all".
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_HEADER_DIMS = {"PNG": (16, ">II"), "GIF": (6, "<HH")}  # offset and layout of width, height


class DecodeError(ValueError):
    """An input that cannot become a training image; `reason` is in DECODE_ERROR_REASONS."""

    def __init__(self, reason: str, detail: str, name: str = "") -> None:
        assert reason in DECODE_ERROR_REASONS, reason
        self.reason, self.detail, self.name = reason, detail, name
        where = f"{name}: " if name else ""
        super().__init__(f"{where}{reason}: {detail}")

    def __reduce__(self):
        # Raised in worker processes: the default pickling would call __init__(message).
        return (DecodeError, (self.reason, self.detail, self.name))


def decode_image(
    data: bytes | Path,
    *,
    max_pixels: int,
    allow_truncated: bool = False,
    draft_size: tuple[int, int] | None = None,
    name: str = "",
    max_aspect: float = MAX_ASPECT,
) -> Image.Image:
    """File bytes or a path -> an opaque, upright "RGB" image.

    max_aspect: refuse images whose long side exceeds this many times the short side
    (training images: MAX_ASPECT; a user's webtoon strip through the CLI: far more).

    draft_size: (width, height) of the upright image the caller needs at least; a large
    JPEG is then decoded at 1/2, 1/4 or 1/8 scale, never below that size in either side.
    Other formats ignore it. Raises DecodeError (see DECODE_ERROR_REASONS);
    FileNotFoundError for a missing path.

    Effective pixel cap: min(max_pixels, 2 * PIL.Image.MAX_IMAGE_PIXELS). Pillow's
    warning band in between is silenced, because max_pixels is the caller's decision.
    """
    if draft_size is not None and min(draft_size) < 1:
        raise ValueError(f"draft_size must be two sides >= 1, got {draft_size}")
    return _decode(data, "RGB", max_pixels, allow_truncated, name, lambda _: draft_size, max_aspect)


def is_colored(img: Image.Image, threshold: float = 12.0) -> bool:
    """Does an RGB image carry color (rather than being a grey scan saved as RGB)?
    Mean chroma (max - min channel) on a 0..255 scale, on a small thumbnail."""
    thumb = np.asarray(img.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.int16)
    return float((thumb.max(-1) - thumb.min(-1)).mean()) > threshold


def shrink_to_fit(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """(w, h) of a width x height image shrunk so its long side is at most `long_side`,
    keeping its aspect; never enlarged (None: its own size)."""
    if width < 1 or height < 1:
        raise ValueError(f"image size {width}x{height}: both sides must be >= 1")
    longest = max(width, height)
    if long_side is None or longest <= long_side:
        return width, height
    scale = long_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def fitted_size(src: tuple[int, int], size: int, fit: str) -> tuple[int, int]:
    """The size `src` is resized to before padding ("pad": long side = size) or
    cropping ("crop": short side = size)."""
    w, h = src
    scale = size / (max(w, h) if fit == "pad" else min(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_to_square(img: Image.Image, size: int, fit: str = "pad", fill: int = 255) -> Image.Image:
    """Resize `img` into a size x size square, keeping its aspect ratio.

    "pad": the long side becomes `size`, centred on a square of `fill` (white by
    default, the paper colour). "crop": the short side becomes `size`, centre crop.
    Returns a new image; works for any size down to 1x1, in "RGB" and "L".
    """
    _check_fit(fit)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    w, h = img.size
    if fit == "crop":
        # Resample only the central square of the source: no full-size intermediate,
        # which for a 1:40 strip would be 40x the output.
        m = min(w, h)
        box = ((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2)
        return _resize(img, (size, size), box)
    tw, th = fitted_size((w, h), size, fit)
    resized = _resize(img, (tw, th), (0, 0, w, h))
    if (tw, th) == (size, size):
        return resized
    canvas = Image.new(img.mode, (size, size), (fill,) * len(img.getbands()))
    canvas.paste(resized, ((size - tw) // 2, (size - th) // 2))
    return canvas


def prepare_image(
    data: bytes | Path,
    *,
    size: int,
    fit: str,
    channels: int,
    max_pixels: int,
    allow_truncated: bool = False,
    name: str = "",
) -> np.ndarray:
    """File bytes or a path -> uint8 array (size, size, channels): RGB (3) or luma (1).

    What the images stage calls per file, in worker processes. Raises DecodeError.
    """
    _check_fit(fit)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (luma) or 3 (RGB), got {channels}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    # For luma, a JPEG decodes its Y plane alone (the same BT.601 luma convert("L")
    # computes), skipping chroma upsampling and colour conversion.
    mode = "L" if channels == 1 else "RGB"
    img = _decode(data, mode, max_pixels, allow_truncated, name,
                  lambda src: fitted_size(src, size, fit))
    if img.size != (size, size):  # a drafted 512px JPEG often lands exactly on size
        img = fit_to_square(img, size, fit)
    return np.array(img).reshape(size, size, channels)  # a writable copy, not a view


def prepare_labels(
    data: bytes | Path,
    *,
    size: int,
    fit: str,
    max_pixels: int,
    name: str = "",
    fill: int = 0,
) -> np.ndarray:
    """A map of codes ('L' PNG, one code per pixel, e.g. materials) -> uint8 (size, size),
    fitted like `prepare_image` but resized nearest-neighbour (a code is never blended with
    its neighbour's into a third) and padded with `fill`. Raises DecodeError."""
    _check_fit(fit)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    img = _decode(data, "L", max_pixels, False, name, lambda src: None)
    w, h = img.size
    if fit == "crop":
        m = min(w, h)
        box = ((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2)
        return np.array(img.resize((size, size), Image.Resampling.NEAREST, box=box))
    tw, th = fitted_size((w, h), size, fit)
    canvas = Image.new("L", (size, size), fill)
    canvas.paste(img.resize((tw, th), Image.Resampling.NEAREST), ((size - tw) // 2, (size - th) // 2))
    return np.array(canvas)


# --- decoding ---------------------------------------------------------------------------


def _decode(
    data: bytes | os.PathLike | str,
    mode: str,
    max_pixels: int,
    allow_truncated: bool,
    name: str,
    draft_request: Callable[[tuple[int, int]], tuple[int, int] | None],
    max_aspect: float = MAX_ASPECT,
) -> Image.Image:
    """The shared decode path; `draft_request(upright_size)` -> minimum decoded size."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        name = name or os.fspath(data)
        data = Path(data).read_bytes()  # FileNotFoundError is the caller's business
    data = bytes(data)
    with _translate_errors(data, name), _truncated_images_allowed(allow_truncated):
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; max_pixels decides.
            # (catch_warnings is process-global state too: same trade-off as below.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w < 1 or h < 1:
            raise DecodeError("bad_size", f"declared size {w}x{h}", name)
        if w * h > max_pixels:
            raise DecodeError("too_large", f"{w}x{h} = {w * h} pixels > max_pixels {max_pixels}", name)
        if max(w, h) > max_aspect * min(w, h):
            raise DecodeError("bad_size", f"{w}x{h}: aspect ratio beyond {max_aspect:g}:1", name)
        if img.format in _DRAFTABLE:
            _draft(img, mode, draft_request)
        img.load()  # frame 0 only: animated files keep their first frame
        transpose = _ORIENTATION_TRANSPOSE.get(_orientation(img))
        if transpose is not None:
            img = img.transpose(transpose)
        return _flatten(img, mode)


def _orientation(img: Image.Image) -> int:
    """EXIF (or XMP) orientation, 1 = as stored."""
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF is common and harmless: keep the pixels as stored
        return 1


def _draft(img: Image.Image, mode: str, draft_request) -> None:
    """Ask libjpeg for a DCT-scaled decode no smaller than the request (upright sizes)."""
    transposed = _orientation(img) in _TRANSPOSING_ORIENTATIONS
    w, h = img.size
    request = draft_request((h, w) if transposed else (w, h))
    if request is not None:
        img.draft(mode, request[::-1] if transposed else request)


def _flatten(img: Image.Image, mode: str) -> Image.Image:
    """Any Pillow mode -> opaque 8-bit `mode` ("RGB" or "L"), alpha over white."""
    if img.mode in _HIGH_DEPTH_GREY:
        img = _grey_to_8bit(img)
    # Alpha in all its disguises: a tRNS colour/index in info, a palette with alpha,
    # premultiplied modes. Bring each to straight LA/RGBA, then composite.
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert("LA" if img.mode == "L" else "RGBA")
    elif img.mode in ("La", "RGBa"):
        img = img.convert(img.mode.upper())
    if img.mode in ("LA", "RGBA"):
        return _composite_on_white(img, mode)
    if img.mode == mode:
        return img
    if mode == "L" and img.mode != "RGB":
        img = img.convert("RGB")  # CMYK/YCbCr/HSV/1 -> L: through RGB, always supported
    return img.convert(mode)


def _composite_on_white(img: Image.Image, mode: str) -> Image.Image:
    alpha = img.getchannel("A")
    colour = img.convert(mode)
    if alpha.getextrema() == (255, 255):  # declared alpha, fully opaque: nothing to do
        return colour
    out = Image.new(mode, img.size, (255,) * len(mode))
    out.paste(colour, mask=alpha)  # out = colour*a + white*(1-a)
    return out


def _grey_to_8bit(img: Image.Image) -> Image.Image:
    """Rescale 16-bit / 32-bit int / float greyscale into 0..255 (convert() would clip)."""
    a = np.asarray(img)
    if img.mode.startswith("I;16"):
        scaled = a / 257.0  # 65535 -> 255 exactly
    else:
        # Bit depth is not recorded for "I" and "F": infer the range from the data.
        a = np.nan_to_num(a.astype(np.float64))
        lo, hi = float(a.min()), float(a.max())
        if img.mode == "F" and lo >= 0 and hi <= 1:
            scaled = a * 255  # normalised float
        elif lo >= 0 and hi <= 255:
            scaled = a  # already 8-bit values
        elif lo >= 0 and hi <= 65535:
            scaled = a / 257.0  # 16-bit values (older Pillow opened 16-bit PNGs as "I")
        else:
            scaled = (a - lo) * (255.0 / (hi - lo))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


# --- errors -----------------------------------------------------------------------------


@contextmanager
def _truncated_images_allowed(allowed: bool) -> Iterator[None]:
    """Scope Pillow's LOAD_TRUNCATED_IMAGES to one decode.

    It is a module global read inside ImageFile.load(), so there is no per-image switch.
    Trade-off: while it is set, any other *thread* of this process decoding an image
    also tolerates truncation. The images stage decodes in worker processes, one image
    at a time each, so nothing else observes it there; the finally restores it even when
    decoding fails. Truncated data decodes to black (PNG/GIF) or grey (JPEG) below the
    cut; WebP decodes nothing and stays "truncated".
    """
    if not allowed:
        yield
        return
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


@contextmanager
def _translate_errors(data: bytes, name: str) -> Iterator[None]:
    """Whatever Pillow raises on an untrusted file -> DecodeError with a reason."""
    try:
        yield
    except (DecodeError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError("too_large", str(exc), name) from None
    except Exception as exc:  # untrusted input: any exception is a property of the file
        raise DecodeError(*_classify(exc, data), name) from exc


def _classify(exc: Exception, data: bytes) -> tuple[str, str]:
    detail = f"{type(exc).__name__}: {exc}"
    if "truncated" in str(exc).lower() or isinstance(exc, EOFError) or _declares_more(data):
        return "truncated", detail
    if not isinstance(exc, UnidentifiedImageError):
        return "decode_error", detail
    # Pillow could not even read the header: is this an image at all?
    fmt = next((f for sig, f in _SIGNATURES if data.startswith(sig)), None)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "WEBP"
    if fmt is None:
        return "not_an_image", f"no image format recognised ({len(data)} bytes, starts {data[:16]!r})"
    if fmt in _HEADER_DIMS:
        start, layout = _HEADER_DIMS[fmt]
        end = start + struct.calcsize(layout)
        if len(data) < end:
            return "truncated", f"{fmt} file of {len(data)} bytes ends inside its header"
        w, h = struct.unpack(layout, data[start:end])
        if w == 0 or h == 0:  # Pillow refuses these as "not identified"
            return "bad_size", f"{fmt} header declares {w}x{h}"
    return "decode_error", f"{fmt} header could not be parsed: {detail}"


def _declares_more(data: bytes) -> bool:
    """A RIFF (WebP) file states its length; libwebp only says "could not create decoder"."""
    return data[:4] == b"RIFF" and len(data) >= 8 and struct.unpack("<I", data[4:8])[0] + 8 > len(data)


def _check_fit(fit: str) -> None:
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")


def _resize(img: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    return img.resize(size, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
