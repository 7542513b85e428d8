"""Uploaded pictures: every kind of bad file is refused with a reason; awkward but valid ones
(transparency, CMYK, 16-bit, animation) are converted and say so; preparation matches the data."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from aigc.data import imageinput
from aigc.data.imageinput import ImageInputError, from_array, load_and_prepare, open_image, prepare


def png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def digit_on_paper(w=200, h=160, dark_on_light=True, x0=30, y0=20):
    """A vertical bar with a foot (a '1'), off-centre on a page."""
    a = np.zeros((h, w), np.uint8)
    a[y0:y0 + 100, x0 + 20:x0 + 34] = 255
    a[y0 + 90:y0 + 100, x0:x0 + 50] = 255
    return Image.fromarray(255 - a if dark_on_light else a)


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A small PNG whose header declares a huge picture."""
    data = bytearray(png(Image.new("L", (8, 8))))
    ihdr = 8 + 8                      # signature, then length + 'IHDR'
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


# -- refused -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data,msg", [
    (b"", "empty"),
    (b"hello, this is a text file\n", "not a picture"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not a picture"),
    (bytes(range(256)) * 40, "not a picture"),
    (bomb_png(), "declares"),
    (bomb_png(20_000, 20_000), "declares"),
    (png(Image.new("L", (1, 1))), "only 1 x 1"),
    (png(Image.new("RGB", (400, 3))), "at least 8"),
])
def test_bad_files_refused_with_a_reason(data, msg):
    with pytest.raises(ImageInputError, match=msg):
        open_image(data)


def test_truncated_picture_refused():
    noise = Image.fromarray((np.random.default_rng(0).random((120, 120)) * 255).astype(np.uint8))
    for fmt in ("PNG", "JPEG"):
        data = png(noise, format=fmt)
        with pytest.raises(ImageInputError, match="damaged or truncated"):
            open_image(data[: len(data) // 2])


def test_too_large_file_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(imageinput, "MAX_FILE_BYTES", 1000)
    p = tmp_path / "big.png"
    p.write_bytes(png(Image.fromarray((np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8))))
    with pytest.raises(ImageInputError, match="limit"):
        open_image(p)
    with pytest.raises(ImageInputError, match="no file"):
        open_image(tmp_path / "missing.png")


def test_blank_picture_refused():
    with pytest.raises(ImageInputError, match="blank"):
        load_and_prepare(png(Image.new("L", (64, 64), 255)))


# -- awkward but valid -----------------------------------------------------------------------------------
def test_rgba_dark_strokes_on_transparent():
    a = np.zeros((100, 100, 4), np.uint8)
    a[20:80, 45:55] = (0, 0, 0, 255)                    # black ink, transparent elsewhere
    p = load_and_prepare(png(Image.fromarray(a, "RGBA")))
    assert any("transparent background filled with white" in n for n in p.notes)
    assert p.image.shape == (28, 28, 1) and p.image.max() == 255 and p.image[0, 0, 0] == 0


def test_rgba_light_strokes_on_transparent():
    a = np.zeros((100, 100, 4), np.uint8)
    a[20:80, 45:55] = (255, 255, 255, 255)
    p = load_and_prepare(png(Image.fromarray(a, "RGBA")))
    assert any("filled with black" in n for n in p.notes)
    assert not any("inverted" in n for n in p.notes) and p.image.max() == 255


def test_cmyk_16bit_palette_and_animated():
    base = digit_on_paper()
    cmyk = load_and_prepare(png(base.convert("CMYK"), format="JPEG"))
    assert any("CMYK" in n for n in cmyk.notes) and cmyk.image.max() > 200
    a16 = (np.asarray(base, np.uint16) * 257)
    im16 = Image.fromarray(a16)
    assert im16.mode.startswith("I;16")
    p16 = load_and_prepare(png(im16))
    assert any("bit-depth" in n for n in p16.notes)
    p8 = load_and_prepare(png(base))
    assert np.abs(p16.image.astype(int) - p8.image.astype(int)).max() <= 2
    pal = load_and_prepare(png(base.convert("P")))
    assert np.abs(pal.image.astype(int) - p8.image.astype(int)).max() <= 2
    frames = [base, Image.new("L", base.size, 0)]
    gif = png(frames[0], format="GIF", save_all=True, append_images=frames[1:], loop=0)
    g = load_and_prepare(gif)
    assert any("animated GIF: the first frame is used" in n for n in g.notes)
    assert np.abs(g.image.astype(int) - p8.image.astype(int)).max() <= 2


# -- preparation -----------------------------------------------------------------------------------------
def test_digit_prepared_like_mnist():
    p = load_and_prepare(png(digit_on_paper(dark_on_light=True)), dataset="mnist")
    assert any("inverted" in n for n in p.notes)
    g = p.image[..., 0].astype(float)
    ys, xs = np.nonzero(g > 50)
    assert ys.max() - ys.min() + 1 in (19, 20, 21)                   # fits the 20-pixel box
    cy, cx = (g * np.arange(28)[:, None]).sum() / g.sum(), (g * np.arange(28)[None]).sum() / g.sum()
    assert abs(cy - 13.5) < 1.0 and abs(cx - 13.5) < 1.0             # centred by mass
    q = load_and_prepare(png(digit_on_paper(dark_on_light=False, x0=120, y0=50, w=300, h=200)), dataset="mnist")
    assert not any("inverted" in n for n in q.notes)
    assert np.abs(q.image.astype(int) - p.image.astype(int)).mean() < 8   # position and polarity removed


def test_object_style_fills_the_frame():
    a = np.full((90, 60), 255, np.uint8)
    a[10:80, 15:45] = 40                                                  # a dark garment on white
    p = prepare(Image.fromarray(a), style="object")
    ys, xs = np.nonzero(p.image[..., 0] > 50)
    assert ys.max() - ys.min() + 1 >= 27
    assert imageinput.style_for("fashion-mnist") == "object" and imageinput.style_for("mnist") == "digit"


def test_sketchpad_array():
    a = np.zeros((280, 280, 4), np.uint8)
    a[60:220, 130:150] = (0, 0, 0, 255)
    p = from_array(a)
    assert p.image.shape == (28, 28, 1) and p.image.max() == 255
    with pytest.raises(ImageInputError):
        from_array(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageInputError, match="blank"):
        from_array(np.zeros((100, 100, 4), np.uint8))
    with pytest.raises(ImageInputError):
        from_array(np.zeros((50, 50), np.float64))
