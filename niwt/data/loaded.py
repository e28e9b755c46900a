"""What every file-format loader returns: the ``ZSLData`` record plus where its images live on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from niwt.data.files.images import ImageTransform
from niwt.data.record import ZSLData
from niwt.errors import DataError

__all__ = ["LoadedDataset"]


@dataclass(frozen=True, eq=False)
class LoadedDataset:
    """A dataset read from files.

    ``data.images`` is always ``None``: images stay on disk and are read through
    :meth:`image_dataset`; ``data.features`` holds pre-extracted features when the format has them.

    Attributes:
        data: the checked GZSL record (image ``i`` of ``data`` is ``image_paths[i]``).
        image_root: the folder the image paths are relative to, or ``None`` without images.
        image_paths: one relative path per row of ``data.labels``, or ``None`` without images.
        transform: the preprocessing images get when read, or ``None`` without images.
        format: the loader's format name (``"awa2"``, ``"cub"``, ``"xlsa17"``, ``"folder"``).
        notes: what the loader decided that is not in the files (seeded draws, replaced values,
            files left out), in the order it happened.
    """

    data: ZSLData
    image_root: Path | None
    image_paths: tuple[str, ...] | None
    transform: ImageTransform | None
    format: str
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = int(self.data.labels.shape[0])
        if self.image_paths is not None:
            if self.image_root is None:
                raise DataError("`image_paths` need an `image_root` they are relative to")
            if len(self.image_paths) != n:
                raise DataError(f"`image_paths` must give one path per image ({n}), got {len(self.image_paths)}")
        if self.data.images is not None:
            raise DataError("a LoadedDataset keeps images on disk: `data.images` must be None")

    @property
    def has_images(self) -> bool:
        return self.image_paths is not None

    def image_dataset(self, idx: np.ndarray | None = None, transform: ImageTransform | None = None):
        """A torch ``Dataset`` reading images ``idx`` (all when ``None``) lazily, with their labels.

        Args:
            idx: rows of ``data.labels`` (e.g. ``data.trainval_idx``).
            transform: overrides :attr:`transform` when given.

        Raises:
            DataError: if the dataset has no image files (feature-only formats).
        """
        from niwt.data.files.image_dataset import ImageFileDataset

        if self.image_paths is None or self.image_root is None:
            raise DataError(
                f"dataset {self.data.name!r} ({self.format}) has no image files; load it with an image root "
                f"to read images, or use its features"
            )
        rows = np.arange(len(self.image_paths)) if idx is None else np.asarray(idx, dtype=np.int64).reshape(-1)
        return ImageFileDataset(
            self.image_root,
            [self.image_paths[i] for i in rows],
            self.data.labels[rows],
            transform if transform is not None else self.transform,
            source=f"the {self.format} image list",
        )

    def to_dict(self) -> dict[str, object]:
        d = self.data
        features = None if d.features is None else list(np.shape(d.features))
        return {
            "format": self.format,
            "name": d.name,
            "n_classes": d.n_classes,
            "n_attributes": int(d.knowledge.shape[1]),
            "n_seen": int(d.seen_classes.size),
            "n_unseen": int(d.unseen_classes.size),
            "n_train_classes": int(d.train_classes.size),
            "n_val_classes": int(d.val_classes.size),
            "n_images": int(d.labels.size),
            "n_trainval": int(d.trainval_idx.size),
            "n_test_seen": int(d.test_seen_idx.size),
            "n_test_unseen": int(d.test_unseen_idx.size),
            "features": features,
            "split_origin": d.split_origin,
            "image_root": None if self.image_root is None else str(self.image_root),
            "transform": None if self.transform is None else self.transform.to_dict(),
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        where = f"images under {str(self.image_root)!r}" if self.image_paths is not None else "no image files"
        return f"LoadedDataset({self.format}, {where}, {len(self.notes)} notes, data={self.data!r})"
