"""The xlsa17 proposed split mapped onto the images of an AwA2 or CUB folder: each entry of
``res101.mat``'s ``image_files`` matched to an image by its ``<class>/<file>`` ending (the exact
trainval / test_seen / test_unseen images of the published split), or, without ``res101.mat``,
the split's classes with a seeded image split."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from niwt.data.files.text import (
    check_relative_path,
)
from niwt.data.formats.splits import (
    DEFAULT_VAL_FRACTION,
    ClassSplit,
    ImageSplit,
    class_list_split,
    draw_val_classes,
)
from niwt.data.formats.xlsa17_files import (
    _IMAGE_MARKERS,
    FEATURES_FILE,
    LOC_FIELDS,
    SplitFile,
    find_split_file,
    read_features_file,
    read_split_file,
)
from niwt.errors import ConfigError, DataError
from niwt.messages import quote, quote_names

logger = logging.getLogger(__name__)

__all__ = ["xlsa17_image_split", "image_or_class_split", "no_image_split_note"]


def _image_paths(files: tuple[str, ...], prefix: str | None, source: Path) -> list[str]:
    rel = []
    for i, raw in enumerate(files):
        posix = raw.replace("\\", "/")
        if prefix is not None:
            if not posix.startswith(prefix):
                raise DataError(f"{source}: image_files entry {i + 1} {quote(raw)} does not start with `image_prefix` "
                                f"{quote(prefix)}; pass the prefix the stored paths share")
            posix = posix[len(prefix):].lstrip("/")
        else:
            cut = max((posix.rfind(m) + len(m) if m in posix else -1) for m in _IMAGE_MARKERS)
            if cut < 0:
                raise DataError(f"{source}: cannot tell where the dataset path ends in image_files entry {i + 1} "
                                f"{quote(raw)}; pass `image_prefix` (the part to strip)")
            posix = posix[cut:]
        rel.append(check_relative_path(posix.replace("//", "/"), f"{source} (image_files entry {i + 1})", None))
    return rel


def _validation(
    split: SplitFile, labels: np.ndarray | None, seen: np.ndarray, lists: dict[str, np.ndarray],
    val_fraction: float, seed: int, val_split: int,
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(train, val, how)``: from train_loc/val_loc labels, else the class lists, else a seeded draw."""
    if labels is not None and split.has_val_locs:
        train = np.unique(labels[split.locs["train_loc"]])
        val = np.unique(labels[split.locs["val_loc"]])
        if not np.intersect1d(train, val).size and np.array_equal(np.union1d(train, val), seen):
            return train, val, "validation classes from the labels of train_loc / val_loc"
        logger.warning("%s: train_loc / val_loc do not partition the seen classes; ignoring them", split.path)
        ignored = f"train_loc / val_loc of {split.path.name} ignored (their classes do not partition the seen ones); "
    else:
        ignored = ""
    if "val" in lists:
        train, val = lists["train"], lists["val"]
        if not np.intersect1d(train, val).size and np.array_equal(np.union1d(train, val), seen):
            return train, val, f"{ignored}validation classes from trainclasses{val_split}.txt / valclasses{val_split}.txt"
        raise DataError(
            f"{split.path.parent}: trainclasses{val_split}.txt and valclasses{val_split}.txt must partition the "
            f"{seen.size} seen classes; they come from another split version"
        )
    train, val = draw_val_classes(seen, val_fraction, seed)
    return train, val, ignored + (
        f"validation classes drawn at random among the {seen.size} seen classes (seed {seed}, fraction "
        f"{val_fraction}): the split file has no train_loc/val_loc and there is no valclasses{val_split}.txt"
    )


def _classes_from_labels(
    split: SplitFile, feats_path: Path, labels: np.ndarray, val_split: int, val_fraction: float, seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """``(seen, unseen, train, val, how)`` classes of the split file, from the labels of ``res101.mat``.

    Seen classes are those of ``trainval_loc`` / ``test_seen_loc``, unseen those of
    ``test_unseen_loc``; class lists beside the file must agree; validation classes as
    :func:`_validation` finds them.

    Raises:
        DataError: for a class on both sides, or class lists that disagree with the labels.
    """
    seen = np.unique(labels[np.concatenate([split.locs["trainval_loc"], split.locs["test_seen_loc"]])])
    unseen = np.unique(labels[split.locs["test_unseen_loc"]])
    leak = np.intersect1d(seen, unseen)
    if leak.size:
        names = [split.class_names[c] for c in leak[:5]]
        raise DataError(f"{feats_path}: classes {names} have images both in the seen splits and in test_unseen_loc; "
                        f"the labels and the split file do not belong together")
    folder = split.path.parent
    lists = class_list_split(folder, split.class_names, val_split)
    if "seen" in lists and not (np.array_equal(lists["seen"], seen) and np.array_equal(lists["unseen"], unseen)):
        raise DataError(f"{folder}: trainvalclasses.txt / testclasses.txt disagree with the labels of the split "
                        f"fields ({lists['seen'].size}/{lists['unseen'].size} listed, {seen.size}/{unseen.size} "
                        f"from labels); use the class lists of the same release")
    train, val, how = _validation(split, labels, seen, lists, val_fraction, seed, val_split)
    return seen, unseen, train, val, how


def _tail(path: str) -> str:
    """``<class folder>/<file>``: the last two parts of an image path (either separator, repeated slashes)."""
    return "/".join([part for part in path.replace("\\", "/").split("/") if part][-2:])


def no_image_split_note(folder: Path, seed: int) -> str:
    """What a loader says when ``folder`` (its ``split_dir``) has no ``res101.mat``."""
    return (f"{folder} has no {FEATURES_FILE}: xlsa17's exact image split is unknown here, so test_seen images are "
            f"drawn at random from each seen class (seed {seed}); copy {FEATURES_FILE} of the same xlsa17 folder "
            f"there for the exact split")


def xlsa17_image_split(
    folder: Path | str,
    class_names: Sequence[str],
    paths: Sequence[str],
    labels: np.ndarray,
    *,
    image_root: Path,
    val_split: int = 1,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
) -> ImageSplit | None:
    """xlsa17's exact image split of an image-folder dataset (AwA2, CUB), or ``None`` without ``res101.mat``.

    Every image of ``trainval_loc`` / ``test_seen_loc`` / ``test_unseen_loc`` is found among
    ``paths`` by the last two parts of its ``image_files`` entry (``<class folder>/<file>``);
    its class in ``res101.mat`` (through ``allclasses_names``, matched to ``class_names`` by name)
    must be the one the dataset gives it. The class split follows from the labels; validation
    classes from ``train_loc`` / ``val_loc``, else the class lists beside the file, else a
    seeded draw. Images of the folder that no split field lists are left out (noted).

    Args:
        folder: the xlsa17 folder of the dataset (``xlsa17/data/AWA2``): a split file and
            ``res101.mat`` with ``image_files``.
        class_names: the dataset's class names.
        paths: the dataset's image paths (relative to ``image_root``).
        labels: the dataset's class index of every path.
        image_root: the folder ``paths`` are relative to, for messages.
        val_split, val_fraction, seed: as in :func:`load_xlsa17`.

    Raises:
        DataError: naming the file, for a class of ``allclasses_names`` the dataset lacks, an
            image of the split missing from ``paths`` (count and first names), an image whose
            class differs, an image listed twice, no ``image_files``, or a malformed file.
    """
    folder = Path(folder)
    feats_path = folder / FEATURES_FILE
    if not feats_path.is_file():
        logger.info("%s", no_image_split_note(folder, seed))
        return None
    split = read_split_file(find_split_file(folder))
    feats = read_features_file(feats_path, len(split.class_names), split.largest_index, features=False,
                               image_files=True)
    if feats.image_files is None:
        raise DataError(f"{feats_path} has no `image_files`, so its split cannot be matched to the images; use the "
                        f"{FEATURES_FILE} of the xlsa17 release, or remove it from {folder} for a seeded split")
    lookup = {name: c for c, name in enumerate(class_names)}
    unknown = [name for name in split.class_names if name not in lookup]
    if unknown:
        raise DataError(f"{split.path}: {len(unknown)} class(es) of allclasses_names are not classes of the dataset "
                        f"({quote_names(unknown)}); split_dir must be the xlsa17 folder of this dataset")
    ours = np.asarray([lookup[name] for name in split.class_names], np.int64)
    seen, unseen, train, val, how = _classes_from_labels(split, feats_path, feats.labels, val_split, val_fraction,
                                                         seed)
    where = {_tail(p): i for i, p in enumerate(paths)}
    listed = np.unique(np.concatenate([split.locs[name] for name in LOC_FIELDS]))
    rows = np.full(len(feats.image_files), -1, np.int64)
    missing = []
    for r in listed:
        row = where.get(_tail(feats.image_files[r]), -1)
        rows[r] = row
        if row < 0:
            missing.append(feats.image_files[r])
    if missing:
        raise DataError(
            f"{len(missing)} of the {listed.size} images of xlsa17's split ({feats_path}, image_files) are not in "
            f"the dataset under {image_root} (first: {quote_names(missing, 3)}); the split would change without "
            f"them: restore the images, or remove {FEATURES_FILE} from {folder} to draw a seeded split instead"
        )
    wrong = listed[labels[rows[listed]] != ours[feats.labels[listed]]]
    if wrong.size:
        r = int(wrong[0])
        raise DataError(
            f"{feats_path}: {wrong.size} image(s) have another class in `labels` than in the dataset (first "
            f"{quote(feats.image_files[r])}: {quote(split.class_names[feats.labels[r]])} there, "
            f"{quote(class_names[labels[rows[r]]])} here); the dataset and the xlsa17 folder come from different releases"
        )
    if np.unique(rows[listed]).size != listed.size:
        raise DataError(f"{feats_path}: `image_files` names some images twice (by class folder and file name); "
                        f"download the file again")
    unlisted = len(paths) - listed.size
    origin = (f"xlsa17: trainval_loc / test_seen_loc / test_unseen_loc of {split.path}, matched to the images "
              f"through image_files of {feats_path}")
    notes = [f"image split: {origin}"]
    if unlisted:
        notes.append(f"{unlisted} image(s) under {image_root} are in none of xlsa17's splits and are not used")
    mapped = (lambda classes: np.sort(ours[classes]))
    classes = ClassSplit(mapped(seen), mapped(unseen), mapped(train), mapped(val), (
        f"seen / unseen classes from the labels of {feats_path} in the split fields of {split.path.name}", how))
    loc = (lambda name: np.sort(rows[split.locs[name]]))
    return ImageSplit(classes, loc("trainval_loc"), loc("test_seen_loc"), loc("test_unseen_loc"), origin,
                      tuple(notes))


def image_or_class_split(
    split_dir: Path | str | None,
    class_names: Sequence[str],
    paths: Sequence[str] | None,
    labels: np.ndarray,
    *,
    image_root: Path,
    class_split: Callable[[], ClassSplit],
    unseen_classes: Sequence[str] | None = None,
    val_split: int = 1,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
) -> tuple[ClassSplit, ImageSplit | None, tuple[str, ...]]:
    """The split rule of the image-folder formats (AwA2, CUB), for the loaders and ``inspect`` alike.

    xlsa17's exact image split (:func:`xlsa17_image_split`) when ``split_dir`` holds ``res101.mat``;
    else the class split ``class_split()`` gives, with test_seen images drawn later.

    Args:
        split_dir: the dataset's xlsa17 folder, or ``None`` for the class split.
        class_names, paths, labels, image_root: the dataset's image list (see :func:`xlsa17_image_split`);
            ``paths`` ``None`` when there is none (``inspect`` of a folder without images): the class split.
        class_split: the format's class split, called only when the image split is not used.
        unseen_classes: the loader's ``unseen_classes`` argument (refused with the image split).
        val_split, val_fraction, seed: as in :func:`load_xlsa17`.

    Returns:
        ``(class split, image split or None, notes)``: the note says when ``split_dir`` has no ``res101.mat``.

    Raises:
        ConfigError: for ``unseen_classes`` with the image split, which fixes the unseen classes.
        DataError: from :func:`xlsa17_image_split` or ``class_split``.
    """
    notes: tuple[str, ...] = ()
    if split_dir is not None and paths is not None:
        image_split = xlsa17_image_split(split_dir, class_names, paths, labels, image_root=image_root,
                                         val_split=val_split, val_fraction=val_fraction, seed=seed)
        if image_split is not None:
            if unseen_classes is not None:
                raise ConfigError(f"`unseen_classes` cannot be combined with xlsa17's image split ({FEATURES_FILE} "
                                  f"in split_dir {split_dir}), which fixes the unseen classes; give one of the two")
            return image_split.classes, image_split, notes
        notes = (no_image_split_note(Path(split_dir), seed),)
    return class_split(), None, notes


