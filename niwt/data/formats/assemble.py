"""Turn an image list, its labels, class knowledge and a class split into a :class:`LoadedDataset`.

Shared by the formats whose images are files (AwA2 release, CUB-200-2011, a folder of one's own
classes): unreadable images are left out with a warning; each seen class's images are divided into
``trainval`` / ``test_seen`` with a seed, unless a published image split (xlsa17's, read by
:func:`niwt.data.formats.xlsa17.xlsa17_image_split`) is given; every decision lands in the notes and the
split's origin in the record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from niwt.data.files.images import ImageTransform, screen_images
from niwt.data.formats.splits import ClassSplit, ImageSplit, split_seen_images
from niwt.data.loaded import LoadedDataset
from niwt.data.record import ZSLData
from niwt.errors import DataError
from niwt.messages import quote_names

__all__ = ["assemble_image_dataset"]

logger = logging.getLogger(__name__)


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
    labels = np.asarray(labels, dtype=np.int64)
    paths = list(paths)
    n_listed = len(paths)
    rows = np.arange(n_listed)
    if check_images:
        keep, warned = screen_images(root, paths, listed_in=listed_in)
        notes.extend(warned)
        rows = np.flatnonzero(keep)
        paths = [paths[i] for i in rows]
        labels = labels[rows]
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [class_names[c] for c in np.concatenate([split.seen, split.unseen]) if counts[c] == 0]
    if empty:
        raise DataError(
            f"{len(empty)} class(es) have no usable image in {listed_in} under {root}: {quote_names(empty)}; "
            f"add images for them or remove them from the class list"
        )
    if image_split is None:
        trainval, test_seen = split_seen_images(labels, split.seen, test_seen_fraction, seed)
        origin = (f"seeded: {test_seen_fraction:g} of each seen class's images held out at random as test_seen "
                  f"(seed {seed}), not a published image split")
        notes.append(f"test_seen images: {test_seen_fraction:g} of each seen class's images held out at random "
                     f"(seed {seed})")
        test_unseen = np.flatnonzero(np.isin(labels, split.unseen))
    else:
        remap = np.full(n_listed, -1, np.int64)
        remap[rows] = np.arange(rows.size)

        def kept(idx: np.ndarray) -> np.ndarray:
            moved = remap[idx]
            return moved[moved >= 0]

        trainval, test_seen, test_unseen = (kept(image_split.trainval), kept(image_split.test_seen),
                                            kept(image_split.test_unseen))
        notes.extend(image_split.notes)
        origin = image_split.origin
    try:
        data = _record(name, class_names, knowledge, knowledge_names, labels, split, trainval, test_seen, test_unseen,
                       descriptions, origin)
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
