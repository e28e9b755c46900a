"""The Animals with Attributes 2 release folder (``Animals_with_Attributes2/``).

Layout::

    classes.txt                       "<id>\\t<name>" for the 50 classes (1-based ids)
    predicates.txt                    "<id>\\t<name>" for the 85 attributes
    predicate-matrix-continuous.txt   50 rows x 85 values, 0-100, -1 = missing
    predicate-matrix-binary.txt       50 rows x 85 values, 0/1
    JPEGImages/<class>/<class>_<id>.jpg

The GZSL split is the proposed split of xlsa17. With ``split_dir`` the xlsa17 folder of AWA2
holding ``res101.mat`` and ``att_splits.mat``, the images of trainval / test_seen / test_unseen are
exactly xlsa17's (see :func:`~niwt.data.formats.xlsa17.xlsa17_image_split`). Otherwise the classes come
from ``trainvalclasses.txt`` / ``testclasses.txt`` (and ``trainclasses1.txt`` / ``valclasses1.txt``)
in ``split_dir`` or the release folder, else the published list of the ten proposed-split unseen
classes, and test_seen images are drawn with a seed. The release's own ``trainclasses.txt`` /
``testclasses.txt`` are the older standard split (``split="standard"``).

:func:`load_awa2` loads the release; :func:`survey_awa2` reports it to ``inspect`` with the same
functions and defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from niwt.data.files.folders import marked_folder, read_class_folders
from niwt.data.files.images import ImageTransform
from niwt.data.files.text import is_dir, is_file, read_id_names, read_matrix, read_name_list
from niwt.data.formats import loader_defaults
from niwt.data.formats.assemble import assemble_image_dataset
from niwt.data.formats.proposed_split import image_or_class_split
from niwt.data.formats.splits import (
    DEFAULT_TEST_SEEN_FRACTION,
    DEFAULT_VAL_FRACTION,
    ClassSplit,
    ImageSplit,
    check_draws,
    class_indices,
    draw_val_classes,
    resolve_class_split,
)
from niwt.data.formats.survey import Survey, first
from niwt.data.formats.xlsa17_files import FEATURES_FILE
from niwt.data.loaded import LoadedDataset
from niwt.errors import ConfigError, DataError
from niwt.messages import quote_names

logger = logging.getLogger(__name__)

__all__ = [
    "AWA2_FOLDER",
    "AWA2_PROPOSED_UNSEEN",
    "AWA2_SPLITS",
    "AWA2_KNOWLEDGE",
    "AwA2Meta",
    "find_awa2_root",
    "is_awa2",
    "read_awa2_meta",
    "awa2_image_list",
    "awa2_class_split",
    "awa2_split",
    "load_awa2",
    "survey_awa2",
]

AWA2_FOLDER = "Animals_with_Attributes2"
AWA2_PROPOSED_UNSEEN: tuple[str, ...] = (
    "bat", "blue+whale", "bobcat", "dolphin", "giraffe", "horse", "rat", "seal", "sheep", "walrus",
)
"""The ten unseen classes of the AwA2 proposed split (xlsa17 ``testclasses.txt``)."""

AWA2_SPLITS: tuple[str, ...] = ("proposed", "standard")
AWA2_KNOWLEDGE: tuple[str, ...] = ("continuous", "binary")
_MARKER_FILES = ("classes.txt", "predicate-matrix-continuous.txt")


def find_awa2_root(path: Path | str) -> Path:
    """The release folder: ``path`` itself or its ``Animals_with_Attributes2`` sub-folder.

    Raises:
        DataError: if neither holds ``classes.txt`` and ``predicate-matrix-continuous.txt``.
    """
    root = marked_folder(path, _MARKER_FILES, inside=AWA2_FOLDER)
    if root is not None:
        return root
    raise DataError(
        f"{path} is not an AwA2 release folder: it needs {' and '.join(_MARKER_FILES)} (unpack AwA2-data.zip and "
        f"point at {AWA2_FOLDER}/)"
    )


def is_awa2(path: Path | str) -> bool:
    """Whether ``path`` (or its ``Animals_with_Attributes2`` sub-folder) is an AwA2 release folder."""
    return marked_folder(path, _MARKER_FILES, inside=AWA2_FOLDER) is not None


@dataclass(frozen=True, eq=False)
class AwA2Meta:
    """The class and attribute files of the release.

    Attributes:
        root: the release folder.
        class_names: the 50 class names (``+`` for spaces, as in the files).
        attribute_names: the 85 predicate names.
        continuous: ``[C, A]`` continuous matrix as stored (``-1`` = missing).
        binary: ``[C, A]`` binary matrix, or ``None`` when the file is absent.
    """

    root: Path
    class_names: tuple[str, ...]
    attribute_names: tuple[str, ...]
    continuous: np.ndarray
    binary: np.ndarray | None


def read_awa2_meta(root: Path) -> AwA2Meta:
    """Read and cross-check the class, predicate and matrix files.

    Raises:
        DataError: for a missing file, a class without a matrix row, a row of the wrong width, a
            non-numeric value.
    """
    root = Path(root)
    classes = read_id_names(root / "classes.txt", what="class")
    predicates = read_id_names(root / "predicates.txt", what="attribute",
                               hint="it ships with the AwA2 release next to classes.txt")
    kwargs = dict(row_names=classes, col_names=predicates, rows_file="classes.txt", cols_file="predicates.txt")
    continuous = read_matrix(root / "predicate-matrix-continuous.txt", **kwargs)
    binary_path = root / "predicate-matrix-binary.txt"
    binary = read_matrix(binary_path, **kwargs) if binary_path.is_file() else None
    if binary is not None and not np.isin(binary, (0.0, 1.0)).all():
        r, j = np.argwhere(~np.isin(binary, (0.0, 1.0)))[0]
        raise DataError(f"{binary_path}: row {r + 1}, column {j + 1} holds {binary[r, j]}; the binary matrix holds 0/1")
    return AwA2Meta(root, classes, predicates, continuous, binary)


def awa2_image_list(root: Path, class_names: tuple[str, ...]) -> tuple[list[str], np.ndarray, list[str]]:
    """Every image of ``JPEGImages/<class>/``, its label, and the folders that are not classes.

    Returns:
        ``(paths relative to JPEGImages, labels, extra folder names)``.

    Raises:
        DataError: if ``JPEGImages`` or a class's folder is missing.
    """
    images = root / "JPEGImages"
    if not is_dir(images):
        raise DataError(f"no JPEGImages folder in {root}; unpack the images of AwA2-data.zip there")
    found = read_class_folders(images, class_names, skip_hidden=False)
    missing = found.missing
    if missing:
        raise DataError(f"{len(missing)} class(es) of {root / 'classes.txt'} have no image folder in {images}: "
                        f"{quote_names(missing)}; the images must be in JPEGImages/<class name>/")
    return list(found.paths), found.labels, list(found.extra)


def awa2_class_split(
    meta: AwA2Meta,
    *,
    split: str = "proposed",
    split_dir: Path | None = None,
    unseen_classes: tuple[str, ...] | None = None,
    val_split: int = 1,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
) -> ClassSplit:
    """The class split of the release (see the module docstring for where it comes from).

    Raises:
        ConfigError: for an unknown ``split``.
        DataError: for class lists that name unknown classes or do not partition the classes.
    """
    if split not in AWA2_SPLITS:
        raise ConfigError(f"`split` must be one of {list(AWA2_SPLITS)}, got {split!r}")
    if split == "standard":
        train_file, test_file = meta.root / "trainclasses.txt", meta.root / "testclasses.txt"
        for f in (train_file, test_file):
            if not f.is_file():
                raise DataError(f"split='standard' needs {f} (it ships with the AwA2 release)")
        seen = class_indices(read_name_list(train_file), meta.class_names, train_file)
        unseen = class_indices(read_name_list(test_file), meta.class_names, test_file)
        if np.intersect1d(seen, unseen).size or seen.size + unseen.size != len(meta.class_names):
            raise DataError(f"{train_file} and {test_file} must split the {len(meta.class_names)} classes")
        train, val = draw_val_classes(seen, val_fraction, seed)
        return ClassSplit(seen, unseen, train, val, (
            f"standard split from {train_file.name} / {test_file.name} (not the proposed split)",
            f"validation classes drawn among the {seen.size} seen classes (seed {seed}, fraction {val_fraction})",
        ))
    folders = ([Path(split_dir)] if split_dir is not None else []) + [meta.root]
    return resolve_class_split(
        meta.class_names, folders, unseen=unseen_classes, default_unseen=AWA2_PROPOSED_UNSEEN,
        default_label="the published proposed-split unseen classes", val_split=val_split,
        val_fraction=val_fraction, seed=seed,
        fix=(f"copy trainvalclasses.txt and testclasses.txt of xlsa17/data/AWA2 into {meta.root} (or pass split_dir= "
             f"that folder), or pass unseen_classes=[...]"),
    )


def awa2_split(
    meta: AwA2Meta, paths: Sequence[str] | None, labels: np.ndarray, *, split: str, split_dir: Path | str | None,
    unseen_classes: tuple[str, ...] | None = None, val_split: int, val_fraction: float, seed: int,
) -> tuple[ClassSplit, ImageSplit | None, tuple[str, ...]]:
    """The split of the release's images, as :func:`load_awa2` takes it (see the module docstring).

    xlsa17's exact image split with ``split="proposed"`` and ``res101.mat`` in ``split_dir``, else
    :func:`awa2_class_split`. ``paths`` ``None`` (no image list): the class split.

    Returns:
        ``(class split, image split or None, notes)``.
    """
    notes: tuple[str, ...] = ()
    if split != "proposed" and split_dir is not None and is_file(Path(split_dir) / FEATURES_FILE):
        notes = (f"split='standard': xlsa17's image split in {split_dir} (the proposed split) is not used",)
        logger.info("%s", notes[-1])
    class_split, image_split, split_notes = image_or_class_split(
        split_dir if split == "proposed" else None, meta.class_names, paths, labels,
        image_root=meta.root / "JPEGImages",
        class_split=lambda: awa2_class_split(
            meta, split=split, split_dir=None if split_dir is None else Path(split_dir),
            unseen_classes=unseen_classes, val_split=val_split, val_fraction=val_fraction, seed=seed),
        unseen_classes=unseen_classes, val_split=val_split, val_fraction=val_fraction, seed=seed)
    return class_split, image_split, notes + split_notes


def load_awa2(
    path: Path | str,
    *,
    split: str = "proposed",
    split_dir: Path | str | None = None,
    unseen_classes: tuple[str, ...] | None = None,
    knowledge: str = "continuous",
    val_split: int = 1,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_seen_fraction: float = DEFAULT_TEST_SEEN_FRACTION,
    seed: int = 0,
    transform: ImageTransform | None = None,
    check_images: bool = True,
) -> LoadedDataset:
    """Load the AwA2 release: images on disk, class attributes, the proposed (or standard) split.

    Args:
        path: the ``Animals_with_Attributes2`` folder or its parent.
        split: ``"proposed"`` (xlsa17) or ``"standard"`` (the release's own class lists).
        split_dir: the xlsa17 AWA2 folder (``xlsa17/data/AWA2``): with ``res101.mat`` and
            ``att_splits.mat``, xlsa17's exact image split; otherwise its class lists, if any.
        unseen_classes: unseen class names, when no class lists are available (not with the
            exact image split).
        knowledge: ``"continuous"`` (0-100; missing ``-1`` set to 0, recorded in the notes) or
            ``"binary"``.
        val_split: which xlsa17 ``trainclasses<k>.txt`` / ``valclasses<k>.txt`` pair to use.
        val_fraction: share of seen classes drawn for validation when no list gives them.
        test_seen_fraction: share of each seen class's images held out for ``test_seen`` (without
            the exact image split).
        seed: seed of the draws.
        transform: image preprocessing (``ImageTransform()`` when ``None``).
        check_images: open every image first (see :func:`~niwt.data.files.images.screen_images`).

    Raises:
        DataError: for malformed or missing files (named, with the fix), or an image of xlsa17's
            split that is not in ``JPEGImages``.
        ConfigError: for a bad argument.
    """
    if knowledge not in AWA2_KNOWLEDGE:
        raise ConfigError(f"`knowledge` must be one of {list(AWA2_KNOWLEDGE)}, got {knowledge!r}")
    val_fraction, test_seen_fraction, seed = check_draws(val_fraction, test_seen_fraction, seed)
    root = find_awa2_root(path)
    meta = read_awa2_meta(root)
    notes: list[str] = []
    if knowledge == "binary":
        if meta.binary is None:
            raise DataError(f"knowledge='binary' needs {root / 'predicate-matrix-binary.txt'}")
        values = meta.binary
    else:
        values = meta.continuous.copy()
        n_missing = int((values == -1).sum())
        if n_missing:
            values[values == -1] = 0.0
            notes.append(f"{n_missing} missing attribute value(s) (-1) in predicate-matrix-continuous.txt set to 0")
    paths, labels, extra = awa2_image_list(root, meta.class_names)
    if extra:
        notes.append(f"image folders that are not classes were skipped: {quote_names(extra)}")
    class_split, image_split, split_notes = awa2_split(
        meta, paths, labels, split=split, split_dir=split_dir, unseen_classes=unseen_classes, val_split=val_split,
        val_fraction=val_fraction, seed=seed)
    notes.extend(split_notes)
    return assemble_image_dataset(
        name="AWA2", format="awa2", root=root / "JPEGImages", paths=paths, labels=labels,
        class_names=meta.class_names, knowledge=values, knowledge_names=meta.attribute_names, split=class_split,
        listed_in="the JPEGImages class folders", test_seen_fraction=test_seen_fraction, seed=seed,
        transform=transform, check_images=check_images, notes=notes, image_split=image_split,
    )


def survey_awa2(s: Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    """What ``inspect`` reports of an AwA2 release folder: counts, problems and notes (see :class:`Survey`).

    The files are read, the images listed and the split made as :func:`load_awa2` does by default.
    """
    defaults = loader_defaults(load_awa2)
    root = find_awa2_root(path)
    classes = s.attempt(read_id_names, root / "classes.txt", what="class")
    if classes is None:
        return
    s.values["n_classes"] = len(classes)
    meta = s.attempt(read_awa2_meta, root)
    if meta is None:
        predicates = s.attempt(read_id_names, root / "predicates.txt", what="attribute")
        s.values["n_attributes"] = None if predicates is None else len(predicates)
        return
    s.values["n_attributes"] = len(meta.attribute_names)
    n_missing = int((meta.continuous == -1).sum())
    if n_missing:
        s.notes.append(f"{n_missing} missing attribute value(s) (-1) in predicate-matrix-continuous.txt "
                       f"(the loader sets them to 0)")
    images = root / "JPEGImages"
    found = read_class_folders(images, classes, skip_hidden=False) if is_dir(images) else None
    split, image_split = s.split(lambda: awa2_split(
        meta, None if found is None else found.paths, np.zeros(0, np.int64) if found is None else found.labels,
        split_dir=split_dir, **{k: defaults[k] for k in ("split", "val_split", "val_fraction", "seed")}))
    if found is None:
        s.problems.append(f"missing images: no JPEGImages folder in {root}")
        return
    if found.missing:
        s.problems.append(f"classes without an image folder in {images}: {len(found.missing)} "
                          f"({first(found.missing)})")
    s.image_files(images, classes, found.paths, found.labels, split, check=check,
                  listed_in="the JPEGImages class folders", test_seen_fraction=defaults["test_seen_fraction"],
                  seed=defaults["seed"], image_split=image_split)
