"""pipeline.imaging on a bad-image corpus built here, in memory: every oddity the README's "images" section
lists for real Danbooru files, at a few pixels each."""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

from pipeline.imaging import (
    DECODE_ERROR_REASONS,
    DecodeError,
    decode_image,
    fit_to_square,
    fitted_size,
    prepare_image,
)

MAX_PIXELS = 1_000_000


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(size=(64, 64), seed=0) -> Image.Image:
    """Incompressible content, so a cut lands in pixel data rather than the header."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR declaring any size, with (almost) no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def line_art(size=64) -> Image.Image:
    """Black strokes on white, the scan domain."""
    img = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, size - 8, size - 8), outline=0, width=3)
    draw.line((0, size // 2, size, size // 3), fill=0, width=2)
    return img


def reason(data, **kw) -> str:
    with pytest.raises(DecodeError) as info:
        decode_image(data, max_pixels=kw.pop("max_pixels", MAX_PIXELS), **kw)
    assert info.value.reason in DECODE_ERROR_REASONS
    return info.value.reason


# --- not images, broken images -----------------------------------------------------------


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # an ugoira: a zip of frames
        z.writestr("000000.jpg", encode(noise((8, 8)), "JPEG"))
    return buf.getvalue()


@pytest.mark.parametrize("data", [
    _zip_bytes(),
    b"FWS\x0a" + bytes(60),  # swf
    b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"webm" + bytes(40),  # EBML header of a webm
    b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>",
    b"",
    bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
], ids=["zip", "swf", "webm", "html", "empty", "garbage"])
def test_non_images_are_not_an_image(data):
    assert reason(data) == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_rejected_or_decoded_when_allowed(fmt):
    data = encode(noise(), fmt)
    cut = data[: len(data) * 2 // 3]
    assert reason(cut) == "truncated"
    out = prepare_image(cut, size=32, fit="pad", channels=3, max_pixels=MAX_PIXELS, allow_truncated=True)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # the global was restored


def test_truncated_webp_and_header_cuts():
    webp = encode(noise(), "WEBP")
    assert reason(webp[: len(webp) // 2]) == "truncated"  # libwebp only says "no decoder"
    assert reason(encode(noise(), "PNG")[:20]) == "truncated"  # cut inside the IHDR


def test_allow_truncated_restores_global_after_failure():
    with pytest.raises(DecodeError):
        decode_image(b"not an image", max_pixels=MAX_PIXELS, allow_truncated=True)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_error_names_the_file_and_survives_pickling(tmp_path):
    path = tmp_path / "123.png"
    path.write_bytes(b"<html></html>")
    with pytest.raises(DecodeError) as info:
        decode_image(path, max_pixels=MAX_PIXELS)
    assert str(path) in str(info.value)
    with pytest.raises(DecodeError, match="post 7"):
        decode_image(b"", max_pixels=MAX_PIXELS, name="post 7")
    clone = pickle.loads(pickle.dumps(info.value))  # raised in worker processes
    assert (clone.reason, str(clone)) == (info.value.reason, str(info.value))


def test_missing_file_is_not_a_decode_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        decode_image(tmp_path / "nope.jpg", max_pixels=MAX_PIXELS)


# --- sizes ---------------------------------------------------------------------------------


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded (the point of checking the header)."""
    def load(self):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_bomb_header_rejected_without_decoding(no_pixel_decoding):
    tiny = png_header_only(30000, 30000)
    assert len(tiny) < 100
    assert reason(tiny, max_pixels=10**12) == "too_large"  # Pillow's own guard, translated
    assert reason(png_header_only(12000, 12000), max_pixels=100_000_000) == "too_large"  # ours


def test_real_image_over_max_pixels_rejected_before_decoding(no_pixel_decoding):
    assert reason(encode(noise((40, 30)), "PNG"), max_pixels=40 * 30 - 1) == "too_large"


def test_max_pixels_overrides_pillows_warning_band(monkeypatch):
    # Pillow warns between MAX_IMAGE_PIXELS and twice that; max_pixels is the decision.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(encode(noise((40, 40)), "PNG"), max_pixels=MAX_PIXELS).size == (40, 40)
    assert reason(encode(noise((50, 50)), "PNG")) == "too_large"  # beyond Pillow's hard limit


def test_corrupt_pixel_data_is_decode_error():
    data = bytearray(encode(noise(), "PNG"))
    data[len(data) // 2 : len(data) // 2 + 50] = bytes(50)  # zeroed bytes inside the zlib stream
    assert reason(bytes(data)) == "decode_error"


def test_bad_sizes():
    assert reason(png_header_only(0, 10)) == "bad_size"
    assert reason(b"GIF89a\x00\x00\x10\x00" + bytes(40)) == "bad_size"
    assert reason(encode(Image.new("L", (500, 2)), "PNG")) == "bad_size"  # 250:1


# --- modes ---------------------------------------------------------------------------------


def test_cmyk_jpeg_adobe_inverted():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG")  # pure red
    assert "adobe" in Image.open(io.BytesIO(data)).info  # Pillow writes inverted Adobe CMYK
    img = decode_image(data, max_pixels=MAX_PIXELS)
    assert img.mode == "RGB"
    np.testing.assert_allclose(img.getpixel((8, 8)), (255, 0, 0), atol=6)


def test_palette_png_with_transparency_composites_on_white():
    img = Image.new("P", (8, 4), 0)
    img.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)  # index 0 black (transparent), 1 red
    img.paste(1, (4, 0, 8, 4))
    out = decode_image(encode(img, "PNG", transparency=0), max_pixels=MAX_PIXELS)
    assert out.getpixel((1, 1)) == (255, 255, 255)  # not black
    assert out.getpixel((6, 1)) == (200, 0, 0)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_line_art_on_transparent_comes_out_black_on_white(mode):
    strokes = line_art()
    alpha = strokes.point(lambda v: 255 - v)  # opaque where the ink is
    alpha.putpixel((0, 0), 128)  # one half-transparent ink pixel
    ink = Image.new("L", strokes.size, 0)  # the hidden colour is black everywhere
    img = Image.merge("LA", (ink, alpha)).convert(mode)
    out = np.asarray(decode_image(encode(img, "PNG"), max_pixels=MAX_PIXELS))
    expected = np.asarray(strokes.convert("RGB"))
    ink_mask, paper = expected == 0, expected == 255
    paper[0, 0] = False
    assert (out[ink_mask] == 0).all() and (out[paper] == 255).all()
    assert abs(int(out[0, 0, 0]) - 127) <= 1  # 50% black over white
    luma = prepare_image(encode(img, "PNG"), size=64, fit="pad", channels=1, max_pixels=MAX_PIXELS)
    np.testing.assert_array_equal(luma[..., 0], out[..., 0])


def test_rgb_and_grey_with_trns_colour_key():
    img = Image.new("RGB", (4, 4), (10, 20, 30))
    img.putpixel((0, 0), (200, 100, 50))
    out = decode_image(encode(img, "PNG", transparency=(10, 20, 30)), max_pixels=MAX_PIXELS)
    assert out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (200, 100, 50)
    grey = decode_image(encode(Image.new("L", (4, 4), 0), "PNG", transparency=0), max_pixels=MAX_PIXELS)
    assert grey.getpixel((0, 0)) == (255, 255, 255)


def test_16bit_png_gradient_is_rescaled_not_clipped():
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)[None].repeat(16, axis=0)
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = np.asarray(decode_image(data, max_pixels=MAX_PIXELS))[0, :, 0]
    assert out[0] == 0 and out[-1] == 255
    assert (np.diff(out.astype(int)) >= 0).all() and len(np.unique(out)) > 200
    assert abs(int(out[128]) - 128) <= 1  # linear: not 255 from the middle on


@pytest.mark.parametrize("values, mode", [
    (np.linspace(0, 65535, 64).astype(np.int32), "I"),
    (np.linspace(0, 1, 64).astype(np.float32), "F"),
])
def test_int32_and_float_greyscale_rescaled(values, mode):
    img = Image.fromarray(values[None].repeat(2, axis=0))
    assert img.mode == mode
    out = np.asarray(decode_image(encode(img, "TIFF"), max_pixels=MAX_PIXELS))[0, :, 0]
    assert (out[0], out[-1]) == (0, 255)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel_become_grey_rgb(mode):
    src = line_art().convert(mode)
    out = np.asarray(decode_image(encode(src, "PNG"), max_pixels=MAX_PIXELS))
    assert out.shape == (64, 64, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    np.testing.assert_array_equal(out[..., 0], np.asarray(src.convert("L")))


def test_lab_is_converted_colorimetrically():
    def lab(value):
        return decode_image(encode(Image.new("LAB", (4, 4), value), "TIFF"), max_pixels=MAX_PIXELS).getpixel((0, 0))
    np.testing.assert_allclose(lab((255, 128, 128)), (255, 255, 255), atol=3)  # L*=100 is white
    r, g, b = lab((135, 208, 195))  # L*=53 a*=+80 b*=+67: sRGB red
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("fmt, kw", [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_animation_keeps_first_frame(fmt, kw):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **kw)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert decode_image(data, max_pixels=MAX_PIXELS).getpixel((4, 4)) == (255, 0, 0)


def test_wrong_extension_decodes(tmp_path):
    path = tmp_path / "1234.jpg"
    path.write_bytes(encode(line_art(), "PNG"))
    out = prepare_image(path, size=16, fit="pad", channels=1, max_pixels=MAX_PIXELS)
    assert out.shape == (16, 16, 1) and out.min() < 100 and out.max() == 255


def _two_tone_with_orientation(size, orientation) -> bytes:
    """Stored wide: left half red, right half blue; orientation 6 displays it rotated
    90 degrees clockwise, i.e. tall with red on top."""
    img = Image.new("RGB", size, (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    exif = img.getexif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes())


def test_exif_rotated_jpeg_comes_out_upright():
    out = decode_image(_two_tone_with_orientation((32, 16), 6), max_pixels=MAX_PIXELS)
    assert out.size == (16, 32)
    assert out.getpixel((8, 2))[0] > 200 and out.getpixel((8, 29))[2] > 200


def test_exif_rotation_with_draft_pads_the_upright_image():
    # draft_size is in upright coordinates: a 256x64 stored, 64x256 upright JPEG asked for
    # (16, 64) decodes at 1/4 scale, not at full size for a misread request.
    tall = _two_tone_with_orientation((256, 64), 6)
    assert decode_image(tall, max_pixels=MAX_PIXELS, draft_size=(16, 64)).size == (16, 64)
    out = prepare_image(_two_tone_with_orientation((256, 128), 6), size=32, fit="pad", channels=3,
                        max_pixels=MAX_PIXELS)
    assert (out[:, :7] == 255).all() and (out[:, -7:] == 255).all()  # tall: white left/right
    assert out[2, 16, 0] > 200 and out[-3, 16, 2] > 200  # red top, blue bottom


# --- draft mode ----------------------------------------------------------------------------


def test_draft_never_decodes_below_the_request():
    data = encode(noise((512, 384)), "JPEG")
    assert decode_image(data, max_pixels=MAX_PIXELS, draft_size=(128, 96)).size == (128, 96)
    assert decode_image(data, max_pixels=MAX_PIXELS, draft_size=(130, 96)).size == (256, 192)
    assert decode_image(data, max_pixels=MAX_PIXELS).size == (512, 384)


def test_draft_result_close_to_full_decode():
    drawing = line_art(512).convert("RGB")
    ImageDraw.Draw(drawing).rectangle((100, 300, 400, 420), fill=(220, 80, 90), outline=0, width=4)
    data = encode(drawing, "JPEG", quality=90)
    for size in (128, 96):  # an exact 1/4 draft, and a 1/4 draft + LANCZOS to 96
        fast = prepare_image(data, size=size, fit="pad", channels=3, max_pixels=MAX_PIXELS)
        full = np.asarray(fit_to_square(decode_image(data, max_pixels=MAX_PIXELS), size))
        assert np.abs(fast.astype(int) - full).mean() < 4


# --- fit_to_square -------------------------------------------------------------------------


def test_pad_keeps_aspect_and_pads_white():
    src = Image.new("RGB", (40, 10), (255, 0, 0))
    out = fit_to_square(src, 16, "pad")
    assert out.size == (16, 16) and src.size == (40, 10)  # pure: input untouched
    a = np.asarray(out)
    assert (a[:6] == 255).all() and (a[10:] == 255).all()  # 40x10 -> 16x4, rows 6..9
    assert (a[6:10] == (255, 0, 0)).all()
    assert (np.asarray(fit_to_square(src.convert("L"), 16, fill=0))[:6] == 0).all()


def test_crop_keeps_the_centre():
    src = Image.new("RGB", (30, 10), (0, 0, 255))
    src.paste((255, 0, 0), (10, 0, 20, 10))  # the central square is red
    out = np.asarray(fit_to_square(src, 20, "crop"))
    assert out.shape == (20, 20, 3)
    assert (out[:, 5:-5] == (255, 0, 0)).all()
    # LANCZOS reads a few source pixels past the crop box, as resize-then-crop would:
    # a trace of blue at the borders, no more.
    assert (out[..., 0] > 190).all() and (out[..., 2] < 64).all()


@pytest.mark.parametrize("fit", ["pad", "crop"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("src_size", [(1, 1), (1000, 1), (1, 700), (7, 5)])
def test_fit_shapes(fit, mode, src_size):
    src = Image.new(mode, src_size, 0)
    out = fit_to_square(src, 12, fit)
    assert out.size == (12, 12) and out.mode == mode
    a = np.asarray(out)
    assert a.min() == 0  # the content survives, however thin
    if fit == "crop" or src_size[0] == src_size[1]:
        assert a.max() == 0  # no padding
    else:
        assert a.max() == 255


def test_fitted_size():
    assert fitted_size((400, 100), 64, "pad") == (64, 16)
    assert fitted_size((400, 100), 64, "crop") == (256, 64)
    assert fitted_size((10000, 1), 64, "pad") == (64, 1)


def test_prepare_image_output_and_arguments():
    data = encode(noise((100, 60)), "JPEG")
    rgb = prepare_image(data, size=24, fit="crop", channels=3, max_pixels=MAX_PIXELS)
    grey = prepare_image(data, size=24, fit="crop", channels=1, max_pixels=MAX_PIXELS)
    assert rgb.shape == (24, 24, 3) and grey.shape == (24, 24, 1) and rgb.dtype == grey.dtype == np.uint8
    assert rgb.flags.writeable
    luma = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.abs(luma.astype(int) - grey[..., 0]).mean() < 3  # same BT.601 luma
    with pytest.raises(ValueError, match="channels"):
        prepare_image(data, size=24, fit="pad", channels=2, max_pixels=MAX_PIXELS)
    with pytest.raises(ValueError, match="pad"):
        prepare_image(data, size=24, fit="stretch", channels=3, max_pixels=MAX_PIXELS)
