"""Images read lazily from disk: a torch ``Dataset`` over relative file paths under a dataset root.

Paths are checked when the dataset is built (no absolute path, no ``..``); each image is decoded
when it is asked for, converted to RGB and passed through an :class:`ImageTransform`. A file that
cannot be decoded raises :class:`~niwt.errors.DataError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from niwt.data.files.images import (
    IMAGE_EXTENSIONS,
    ImageCheck,
    ImageTransform,
    check_images,
    open_rgb,
    unreadable_warning,
)
from niwt.data.files.text import check_relative_path
from niwt.errors import ConfigError, DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageTransform",
    "ImageCheck",
    "ImageFileDataset",
    "check_images",
    "open_rgb",
    "unreadable_warning",
]


class ImageFileDataset(Dataset):
    """Images under ``root`` decoded on access: item ``i`` is ``(image [3, H, W] float32, label)``.

    Args:
        root: the dataset root every path is relative to.
        paths: relative image paths (POSIX or Windows separators).
        labels: one int label per path; ``-1`` is returned for every item when ``None``.
        transform: the preprocessing; ``None`` only converts to a [0, 1] tensor at the file's size.
        source: where the paths were read from, for messages (defaults to "the image list").

    Raises:
        DataError: for an absolute path or one with ``..``, or labels of the wrong length.
        ConfigError: if ``transform`` is not an :class:`ImageTransform` or ``None``.
    """

    def __init__(
        self,
        root: Path | str,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray | None = None,
        transform: ImageTransform | None = None,
        source: str = "the image list",
    ) -> None:
        if transform is not None and not isinstance(transform, ImageTransform):
            raise ConfigError(f"`transform` must be an ImageTransform or None, got {type(transform).__name__}")
        self.root = Path(root)
        self.paths = tuple(check_relative_path(str(p), source, None) for p in paths)
        if labels is None:
            self.labels = np.full(len(self.paths), -1, dtype=np.int64)
        else:
            self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
            if self.labels.size != len(self.paths):
                raise DataError(f"`labels` must give one label per path: {self.labels.size} labels, "
                                f"{len(self.paths)} paths")
        self.transform = transform
        self._compose = (transform or ImageTransform(resize=None, crop=None, normalize=False)).build()

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> Path:
        """The file of item ``index``."""
        return self.root / self.paths[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self.paths) <= index < len(self.paths):
            raise IndexError(f"image index {index} out of range for {len(self.paths)} images")
        image = open_rgb(self.path(index))
        return self._compose(image), int(self.labels[index])

    def check(self, decode: bool = False) -> ImageCheck:
        """Check every file exists and opens (see :func:`check_images`)."""
        return check_images(self.root, self.paths, decode=decode)

    def __repr__(self) -> str:
        transform = self.transform.to_dict() if self.transform else None
        return f"ImageFileDataset({len(self)} images under {str(self.root)!r}, transform={transform})"
