"""Image files on disk without torch: the transform record, decoding to RGB, checking many files.

:mod:`niwt.data.files.image_dataset` adds the torch ``Dataset`` on top; the loaders and ``inspect``
use only this module, so reading a dataset's metadata does not import torch.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from niwt.data.files.text import is_file
from niwt.errors import ConfigError, DataError
from niwt.messages import first_names, short_name

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageTransform",
    "ImageCheck",
    "open_rgb",
    "to_rgb",
    "probe_image",
    "check_images",
    "list_image_files",
    "unreadable_warning",
    "screen_images",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
"""File name endings (lower-cased) taken as images when a class folder is listed."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _positive_or_none(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"`ImageTransform.{name}` must be a positive integer or None, got {value!r}")


def _triple(name: str, value: object, positive: bool) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"`ImageTransform.{name}` must be three numbers (R, G, B), got {value!r}") from None
    if len(out) != 3 or (positive and min(out) <= 0):
        raise ConfigError(
            f"`ImageTransform.{name}` must be three {'positive ' if positive else ''}numbers (R, G, B), got {value!r}"
        )
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageTransform:
    """The torchvision-style preprocessing of every image: resize, centre crop, to tensor, normalise.

    Attributes:
        resize: the shorter side is resized to this many pixels (aspect kept); ``None`` keeps the size.
        crop: side of the centre square crop after resizing; ``None`` skips cropping.
        normalize: subtract ``mean`` and divide by ``std`` per channel after scaling to [0, 1].
        mean: per-channel mean (ImageNet statistics by default).
        std: per-channel standard deviation.
    """

    resize: int | None = 256
    crop: int | None = 224
    normalize: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        _positive_or_none("resize", self.resize)
        _positive_or_none("crop", self.crop)
        if not isinstance(self.normalize, bool):
            raise ConfigError(f"`ImageTransform.normalize` must be true or false, got {self.normalize!r}")
        object.__setattr__(self, "mean", _triple("mean", self.mean, positive=False))
        object.__setattr__(self, "std", _triple("std", self.std, positive=True))

    def to_dict(self) -> dict[str, object]:
        return {"resize": self.resize, "crop": self.crop, "normalize": self.normalize,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> ImageTransform:
        """Build from :meth:`to_dict` output.

        Raises:
            ConfigError: for an unknown key or a bad value.
        """
        unknown = set(values) - {"resize", "crop", "normalize", "mean", "std"}
        if unknown:
            raise ConfigError(f"unknown ImageTransform key(s) {sorted(unknown)}; valid: resize, crop, normalize, mean, std")
        return cls(**values)  # type: ignore[arg-type]

    def build(self):  # -> torchvision.transforms.Compose, imported lazily
        """The torchvision ``Compose`` applying this transform to a PIL RGB image."""
        from torchvision import transforms

        steps = []
        if self.resize is not None:
            steps.append(transforms.Resize(self.resize))
        if self.crop is not None:
            steps.append(transforms.CenterCrop(self.crop))
        steps.append(transforms.ToTensor())
        if self.normalize:
            steps.append(transforms.Normalize(self.mean, self.std))
        return transforms.Compose(steps)


def to_rgb(image):  # PIL.Image.Image -> PIL.Image.Image
    """Grey, palette, CMYK, 16-bit and alpha images as RGB (transparent pixels over white)."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v * (1 / 256)).convert("L")
    return image.convert("RGB")


def open_rgb(path: Path | str, upright: bool = False):  # -> PIL.Image.Image
    """Decode one image file fully and return it as an RGB PIL image.

    ``upright`` turns it by its EXIF orientation first (a phone photo stored sideways), as ``predict``,
    ``explain`` and ``serve`` show a photo; a dataset's images are read as stored, as torchvision reads them.

    Raises:
        DataError: naming the file, when it is missing or cannot be decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if upright:
                try:
                    turned = ImageOps.exif_transpose(image)
                except (KeyError, TypeError, ValueError, SyntaxError, OSError):  # a damaged EXIF block
                    turned = image
                return to_rgb(turned)
            return to_rgb(image)
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}; restore it or remove it from the dataset's lists") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"cannot decode image {path}: {exc}; replace the file or remove it from the dataset"
        ) from exc


def probe_image(path: Path, decode: bool = False) -> str | None:
    """Why an image file cannot be used (``"missing"`` or the decoder's message), or ``None`` if it can.

    Args:
        path: the file.
        decode: decode every pixel (slow, finds truncated files); otherwise only the header is read.
    """
    from PIL import Image, UnidentifiedImageError

    if not is_file(path):
        return "missing"
    try:
        with Image.open(path) as image:
            if decode:
                image.load()
            elif image.size[0] < 1 or image.size[1] < 1:
                return "empty image"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return str(exc) or type(exc).__name__
    return None


@dataclass(frozen=True)
class ImageCheck:
    """What :func:`check_images` found.

    Attributes:
        n_checked: how many files were checked.
        missing: relative paths of files that do not exist.
        unreadable: ``(relative path, reason)`` of files that exist but cannot be decoded.
    """

    n_checked: int
    missing: tuple[str, ...] = ()
    unreadable: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"n_checked": self.n_checked, "missing": list(self.missing),
                "unreadable": [list(item) for item in self.unreadable]}


def check_images(root: Path, paths: Sequence[str], *, decode: bool = False, workers: int = 8) -> ImageCheck:
    """Check that every ``root / path`` exists and opens as an image (in parallel threads).

    Args:
        root: the folder the paths are relative to.
        paths: relative paths.
        decode: decode every pixel instead of the header only.
        workers: threads used (file access dominates).
    """
    root = Path(root)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(paths) or 1))) as pool:
        reasons = list(pool.map(lambda p: probe_image(root / p, decode), paths))
    missing = tuple(p for p, r in zip(paths, reasons) if r == "missing")
    unreadable = tuple((p, r) for p, r in zip(paths, reasons) if r is not None and r != "missing")
    return ImageCheck(len(paths), missing, unreadable)


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (by extension, hidden files skipped), sorted by name."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _first(names: Sequence[str], k: int = 5) -> str:
    return first_names(names, k, show=short_name)


def unreadable_warning(
    bad: Sequence[str], total: int, *, root: Path | str, action: str = "left out of every split"
) -> str | None:
    """Turn the unreadable files found among ``total`` into one warning (count and first names).

    Args:
        bad: relative paths of the unreadable files.
        total: how many files were checked.
        root: the folder they are relative to, for the message.
        action: what the caller does with them, stated in the warning.

    Returns:
        The warning text (for a loader's ``notes``), or ``None`` when ``bad`` is empty.

    Raises:
        DataError: when every file is unreadable (a wrong root or format, not a few bad files).
    """
    if not bad:
        return None
    if total and len(bad) >= total:
        raise DataError(
            f"none of the {total} image files under {root} can be decoded (first: {_first(list(bad), 3)}); "
            f"check that the folder holds the dataset's images and that they are not corrupted"
        )
    message = (
        f"{len(bad)} of {total} image files under {root} cannot be decoded and are {action}: {_first(list(bad))}; "
        f"replace or delete them to silence this warning"
    )
    warnings.warn(message, UserWarning, stacklevel=3)
    logger.debug(message)
    return message


def screen_images(
    root: Path, paths: Sequence[str], *, listed_in: str, decode: bool = False
) -> tuple[list[bool], tuple[str, ...]]:
    """Check a loader's image list: missing files are an error, a few unreadable ones a warning.

    Args:
        root: the folder the paths are relative to.
        paths: the dataset's relative image paths.
        listed_in: where the list comes from (a file name or ``"the class folders"``), for messages.
        decode: decode every pixel instead of the header only.

    Returns:
        ``(keep, notes)``: per path whether it is kept, and the warning text (if any) for the notes.

    Raises:
        DataError: for any missing file (count and first names), or when no file can be decoded.
    """
    found = check_images(root, paths, decode=decode)
    if found.missing:
        raise DataError(
            f"{len(found.missing)} of {len(paths)} image files listed in {listed_in} are missing under {root} "
            f"(first: {_first(list(found.missing))}); point the loader at the folder that holds them, restore "
            f"the files, or remove their lines"
        )
    bad = {p for p, _ in found.unreadable}
    message = unreadable_warning(sorted(bad), len(paths), root=root)
    return [p not in bad for p in paths], ((message,) if message else ())
