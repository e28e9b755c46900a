"""Turn an image list, its labels, class knowledge and a class split into a :class:`LoadedDataset`.

Shared by the formats whose images are files (AwA2 release, CUB-200-2011, a folder of one's own
classes): unreadable images are left out with a warning; each seen class's images are divided into
``trainval`` / ``test_seen`` with a seed, unless a published image split (xlsa17's, read by
:func:`niwt.data.formats.xlsa17.xlsa17_image_split`) is given (:func:`split_image_rows`, which
``inspect`` counts with too); every decision lands in the notes and the split's origin in the record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from niwt.data.files.images import ImageTransform, screen_images
from niwt.data.formats.splits import ClassSplit, ImageSplit, split_seen_images
from niwt.data.loaded import LoadedDataset
from niwt.data.record import ZSLData
from niwt.errors import DataError
from niwt.messages import quote_names

__all__ = ["ImageRows", "split_image_rows", "assemble_image_dataset"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ImageRows:
    """The image split of a dataset's kept images, as :func:`split_image_rows` makes it.

    Attributes:
        trainval, test_seen, test_unseen: sorted ``int64`` positions among the kept images.
        origin: where the split comes from, for the record (``ZSLData.split_origin``).
        notes: how it was made (the seeded draw, or the published split's files).
    """

    trainval: np.ndarray
    test_seen: np.ndarray
    test_unseen: np.ndarray
    origin: str
    notes: tuple[str, ...]


def split_image_rows(
    labels: np.ndarray,
    keep: Sequence[bool] | np.ndarray,
    split: ClassSplit,
    *,
    test_seen_fraction: float,
    seed: int,
    image_split: ImageSplit | None = None,
) -> ImageRows:
    """Divide the kept images of a list into trainval / test_seen / test_unseen.

    Without ``image_split``, ``test_seen_fraction`` of each seen class's kept images are held out
    at random (seeded); with it, its rows are mapped onto the kept images (left-out images leave it).

    Args:
        labels: ``[N]`` class index of every listed image.
        keep: per listed image, whether it is kept (readable).
        split: the class split.
        test_seen_fraction, seed: the hold-out of the seeded split.
        image_split: the published image split, in rows of the list.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.flatnonzero(np.asarray(keep, dtype=bool))
    kept = labels[rows]
    if image_split is None:
        trainval, test_seen = split_seen_images(kept, split.seen, test_seen_fraction, seed)
        origin = (f"seeded: {test_seen_fraction:g} of each seen class's images held out at random as test_seen "
                  f"(seed {seed}), not a published image split")
        note = (f"test_seen images: {test_seen_fraction:g} of each seen class's images held out at random "
                f"(seed {seed})")
        return ImageRows(trainval, test_seen, np.flatnonzero(np.isin(kept, split.unseen)), origin, (note,))
    remap = np.full(labels.size, -1, np.int64)
    remap[rows] = np.arange(rows.size)

    def moved(idx: np.ndarray) -> np.ndarray:
        at = remap[idx]
        return at[at >= 0]

    return ImageRows(moved(image_split.trainval), moved(image_split.test_seen), moved(image_split.test_unseen),
                     image_split.origin, image_split.notes)


def assemble_image_dataset(
    *,
    name: str,
    format: str,
    root: Path,
    paths: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    knowledge: np.ndarray,
    knowledge_names: Sequence[str],
    split: ClassSplit,
    listed_in: str,
    test_seen_fraction: float,
    seed: int,
    transform: ImageTransform | None,
    check_images: bool,
    descriptions: Sequence[Sequence[str]] = (),
    notes: Sequence[str] = (),
    image_split: ImageSplit | None = None,
) -> LoadedDataset:
    """Build the record of an image-file dataset.

    Args:
        name: dataset name.
        format: loader format name.
        root: the folder ``paths`` are relative to.
        paths: one relative path per image.
        labels: ``[N]`` class index per image.
        class_names: the C class names.
        knowledge: ``[C, d]`` class knowledge.
        knowledge_names: the d dimension names.
        split: the class split (``image_split.classes`` when that is given).
        listed_in: where the image list comes from, for messages.
        test_seen_fraction: share of each seen class's images held out for ``test_seen`` (without
            ``image_split``).
        seed: seed of that hold-out.
        transform: image preprocessing (``ImageTransform()`` when ``None``).
        check_images: open every file first (missing: error; a few unreadable: warning, left out).
        descriptions: per class, its descriptions (or empty).
        notes: the loader's notes so far.
        image_split: the published image split, in rows of ``paths``; images left out as
            unreadable leave it too (with the warning), nothing else changes it.

    Raises:
        DataError: for missing image files, all files unreadable, or a class of the split without
            any image.
    """
    notes = list(notes) + list(split.notes)
    all_labels = np.asarray(labels, dtype=np.int64)
    paths = list(paths)
    keep = np.ones(len(paths), dtype=bool)
    if check_images:
        screened, warned = screen_images(root, paths, listed_in=listed_in)
        notes.extend(warned)
        keep = np.asarray(screened, dtype=bool)
    rows = np.flatnonzero(keep)
    paths = [paths[i] for i in rows]
    labels = all_labels[rows]
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [class_names[c] for c in np.concatenate([split.seen, split.unseen]) if counts[c] == 0]
    if empty:
        raise DataError(
            f"{len(empty)} class(es) have no usable image in {listed_in} under {root}: {quote_names(empty)}; "
            f"add images for them or remove them from the class list"
        )
    images = split_image_rows(all_labels, keep, split, test_seen_fraction=test_seen_fraction, seed=seed,
                              image_split=image_split)
    notes.extend(images.notes)
    try:
        data = _record(name, class_names, knowledge, knowledge_names, labels, split, images.trainval,
                       images.test_seen, images.test_unseen, descriptions, images.origin)
    except DataError as err:  # the message names the field; say which dataset it comes from
        raise DataError(f"dataset {root} ({listed_in}): {err}") from err
    logger.info("loaded %s %s: %r", format, root, data)
    return LoadedDataset(data, Path(root), tuple(paths), transform or ImageTransform(), format, tuple(notes))


def _record(name: str, class_names: Sequence[str], knowledge: np.ndarray, knowledge_names: Sequence[str],
            labels: np.ndarray, split: ClassSplit, trainval: np.ndarray, test_seen: np.ndarray,
            test_unseen: np.ndarray, descriptions: Sequence[Sequence[str]], origin: str) -> ZSLData:
    """The checked record of an image-file dataset."""
    return ZSLData(
        name=name,
        class_names=tuple(class_names),
        knowledge=knowledge,
        knowledge_names=tuple(knowledge_names),
        labels=labels,
        seen_classes=split.seen,
        unseen_classes=split.unseen,
        train_classes=split.train,
        val_classes=split.val,
        trainval_idx=trainval,
        test_seen_idx=test_seen,
        test_unseen_idx=test_unseen,
        descriptions=tuple(tuple(d) for d in descriptions),
        split_origin=origin,
    )
