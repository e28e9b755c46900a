"""Images sent to the server, decoded defensively: PNG or JPEG only, the size read from the
header and refused before a pixel is decoded when it is too large (decompression bombs, huge
dimensions), truncated or damaged files refused whole, the EXIF orientation applied, any mode
converted to RGB as the run's own images were. Every refusal is a :class:`~niwt.errors.DataError`
whose message names the upload and says what to do; nothing half-decoded is ever kept.
"""

from __future__ import annotations

import io
import logging
import unicodedata
import warnings
import zlib
from dataclasses import dataclass

from niwt.data.files.images import to_rgb
from niwt.errors import DataError
from niwt.messages import quote

__all__ = ["FORMATS", "MAX_PIXELS", "MAX_NAME", "Upload", "decode_image", "upload_name"]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("PNG", "JPEG")
"""The image formats the server decodes (Pillow's names); anything else is refused unread."""

MAX_PIXELS = 40_000_000
"""The most pixels (width x height) of an image the server decodes: 40 MP, a large camera's photo;
a 20,000 x 20,000 image (400 MP, 1.2 GB of RGB) is refused from its header."""

MAX_NAME = 200
"""The most characters of an upload's name kept for the page (it is only ever shown, never a path)."""

_ORIENTATION = 0x0112  # the EXIF tag of the orientation
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, MemoryError)


def _png_size(data: bytes) -> tuple[int, int] | None:
    """The width and height a PNG's header declares (None for another file)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def upload_name(name: object) -> str:
    """An upload's file name as the page shows it: control characters dropped, at most
    :data:`MAX_NAME` characters, ``"image"`` when nothing is left. Only a label: never a path."""
    text = name if isinstance(name, str) else ""
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")).strip()
    return (text[: MAX_NAME - 1] + "…" if len(text) > MAX_NAME else text) or "image"


@dataclass(frozen=True, eq=False)
class Upload:
    """A decoded upload.

    Attributes:
        image: the RGB PIL image, oriented as its EXIF says.
        width, height: its size as stored in the file (before orientation).
        format: ``"PNG"`` or ``"JPEG"``; mode: its colour mode in the file (``"RGBA"``, ``"L"`` ...).
        notes: what was done to it on the way (converted to RGB, rotated by its EXIF orientation).
    """

    image: object
    width: int
    height: int
    format: str
    mode: str
    notes: tuple[str, ...] = ()


def decode_image(data: bytes, name: str = "the upload", *, max_pixels: int = MAX_PIXELS) -> Upload:
    """Decode one uploaded image file.

    Args:
        data: the file's bytes.
        name: what the upload is called in messages (its file name on the page).
        max_pixels: the most pixels decoded (:data:`MAX_PIXELS`).

    Raises:
        DataError: an empty upload, not a PNG or JPEG file, more than ``max_pixels`` pixels,
            or a file that is truncated or damaged (each said, with what to do).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    shown = quote(name, 60)
    if not data:
        raise DataError(f"{shown} is empty (0 bytes): choose a PNG or JPEG image file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # a bomb stops here, never decodes
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise DataError(f"{shown} is not a PNG or JPEG image (it starts with {data[:8]!r}); choose a PNG or "
                            "JPEG image file") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            size = _png_size(data)
            what = f"is {size[0]} x {size[1]} pixels ({size[0] * size[1] / 1e6:.0f} million)" if size else \
                f"is far too large to decode ({err})"
            raise DataError(f"{shown} {what}; the server decodes images of at most {max_pixels // 1_000_000} "
                            "million pixels: send a smaller image") from None
        except _DECODE_ERRORS as err:
            raise DataError(f"{shown} is a damaged or truncated image file ({err}); save it again, whole, as PNG or "
                            "JPEG and send it again") from None
        with image:
            width, height = image.size
            kind, mode = str(image.format), str(image.mode)
            if width < 1 or height < 1 or width * height > max_pixels:
                raise DataError(f"{shown} is {width} x {height} pixels ({width * height / 1e6:.0f} million); the "
                                f"server decodes images of at most {max_pixels // 1_000_000} million pixels: send a "
                                "smaller image")
            try:
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning, *_DECODE_ERRORS) as err:
                raise DataError(f"{shown} is a damaged or truncated {kind} file ({err}); save it again, whole, "
                                "and send it again") from None
            notes = []
            oriented = image
            try:
                orientation = int(image.getexif().get(_ORIENTATION, 1) or 1)
                if orientation != 1:
                    oriented = ImageOps.exif_transpose(image)
                    notes.append(f"turned upright by its EXIF orientation ({orientation})")
            except (KeyError, TypeError, *_DECODE_ERRORS) as err:  # a damaged EXIF block: the pixels stand as stored
                log.warning("%s: its EXIF orientation cannot be read (%s); used as stored", shown, err)
                notes.append("EXIF orientation unreadable: used as stored")
            if mode != "RGB":
                notes.append(f"a {mode} image, converted to RGB" + (" (transparent pixels over white)"
                                                                    if "A" in mode or "transparency" in image.info
                                                                    else ""))
            rgb = to_rgb(oriented)
            rgb.load()
    return Upload(rgb, width, height, kind, mode, tuple(notes))
