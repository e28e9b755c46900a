"""Uploads decoded defensively: PNG and JPEG of any mode as RGB, upright by their EXIF orientation;
everything else refused with a message that names the upload and says what to do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from niwt.errors import DataError
from niwt.serve.images import decode_image, upload_name
from tests.serve._helpers import huge_png, png, png_declaring, truncated_png


def _jpeg(size=(60, 40), orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    image = Image.new("RGB", size)
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))  # left half red
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buf, format="JPEG", exif=exif, quality=95)
    return buf.getvalue()


def _noisy_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_png_and_jpeg_of_any_mode_become_rgb():
    for array, mode in ((np.zeros((5, 7), np.uint8), "L"), (np.zeros((5, 7, 4), np.uint8), "RGBA"),
                        (np.zeros((5, 7, 3), np.uint8), "RGB"), (np.zeros((5, 7), np.uint16), "I;16")):
        upload = decode_image(png(array), "x.png")
        assert upload.image.mode == "RGB" and upload.image.size == (7, 5) and upload.mode == mode
    upload = decode_image(_jpeg(), "x.jpg")
    assert (upload.format, upload.width, upload.height, upload.notes) == ("JPEG", 60, 40, ())


def test_the_exif_orientation_is_applied():
    upload = decode_image(_jpeg(orientation=6), "side.jpg")
    assert upload.image.size == (40, 60) and (upload.width, upload.height) == (60, 40)
    assert upload.notes == ("turned upright by its EXIF orientation (6)",)
    top = np.asarray(upload.image)[:5].mean((0, 1))  # the red half is now on top
    assert top[0] > 200 and top[1] < 60
    assert decode_image(_jpeg(orientation=3), "upside.jpg").image.size == (60, 40)


@pytest.mark.parametrize("data, message", [
    (b"", "'a.png' is empty (0 bytes)"),
    (b"<svg xmlns='...'/>", "'a.png' is not a PNG or JPEG image (it starts with b'<svg xml'); choose a PNG or JPEG"),
    (b"BM" + b"\x00" * 100, "is not a PNG or JPEG image"),
    (truncated_png(), "'a.png' is a damaged or truncated PNG file"),
    (huge_png(), "'a.png' is 20000 x 20000 pixels (400 million); the server decodes images of at most 40 million"),
    (png_declaring(8000, 6000), "'a.png' is 8000 x 6000 pixels (48 million); the server decodes images of at most 40"),
    (png_declaring(40_000_001, 1), "is 40000001 x 1 pixels"),
    (_jpeg()[:300], "'a.png' is a damaged or truncated image file"),
    (_noisy_jpeg()[:4000], "'a.png' is a damaged or truncated JPEG file"),
])
def test_bad_uploads_are_refused_with_what_to_do(data, message):
    with pytest.raises(DataError) as err:
        decode_image(data, "a.png")
    assert message in str(err.value)


def test_the_pixel_cap_can_be_lowered():
    with pytest.raises(DataError, match="at most 0 million"):
        decode_image(png(np.zeros((10, 10, 3), np.uint8)), "a.png", max_pixels=99)


def test_upload_names_are_labels():
    assert upload_name("photo.jpg") == "photo.jpg"
    assert upload_name("a\x00b\nc\u202e") == "abc"
    assert upload_name(None) == upload_name("  ") == "image"
    assert len(upload_name("x" * 1000)) == 200
