"""Caltech-UCSD Birds-200-2011 (``CUB_200_2011/``), with the fine-grained captions when present.

Layout (all ids 1-based, space-separated)::

    images.txt                 "<image_id> <NNN.Class_Name/file.jpg>" (relative to images/)
    image_class_labels.txt     "<image_id> <class_id>"
    classes.txt                "<class_id> <NNN.Class_Name>"
    attributes/class_attribute_labels_continuous.txt   200 rows x 312 percentages
    attributes/attributes.txt  "<attribute_id> <name>" (also found at the top level or beside CUB_200_2011/)
    images/NNN.Class_Name/*.jpg
    text_c10/NNN.Class_Name/<image stem>.txt   ten captions per image (optional; here or beside)

The GZSL split is xlsa17's: with ``split_dir`` the xlsa17 folder of CUB holding ``res101.mat`` and a
split file, the images of trainval / test_seen / test_unseen are exactly xlsa17's (see
:func:`~niwt.data.formats.xlsa17.xlsa17_image_split`); otherwise the classes come from the xlsa17 CUB class
lists (``trainvalclasses.txt`` / ``testclasses.txt``) in ``split_dir`` or the dataset folder, or
from ``unseen_classes``, and test_seen images are drawn with a seed.

:func:`load_cub` loads the dataset; :func:`survey_cub` reports it to ``inspect`` with the same
functions and defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from niwt.data.files.folders import marked_folder
from niwt.data.files.images import ImageTransform
from niwt.data.files.text import (
    check_relative_path,
    is_dir,
    is_file,
    read_id_names,
    read_id_pairs,
    read_lines,
    read_matrix,
)
from niwt.data.formats import loader_defaults
from niwt.data.formats.assemble import assemble_image_dataset
from niwt.data.formats.proposed_split import image_or_class_split
from niwt.data.formats.splits import (
    DEFAULT_TEST_SEEN_FRACTION,
    DEFAULT_VAL_FRACTION,
    ClassSplit,
    ImageSplit,
    check_draws,
    resolve_class_split,
)
from niwt.data.formats.survey import Survey
from niwt.data.loaded import LoadedDataset
from niwt.errors import DataError
from niwt.messages import quote, quote_names

__all__ = [
    "CUB_FOLDER",
    "CubMeta",
    "find_cub_root",
    "is_cub",
    "find_attribute_names",
    "read_cub_image_list",
    "read_cub_attributes",
    "read_cub_meta",
    "read_captions",
    "cub_class_split",
    "cub_split",
    "find_captions_dir",
    "load_cub",
    "survey_cub",
]

logger = logging.getLogger(__name__)

CUB_FOLDER = "CUB_200_2011"
_MARKER_FILES = ("images.txt", "image_class_labels.txt", "classes.txt")
_MATRIX = Path("attributes") / "class_attribute_labels_continuous.txt"


def find_cub_root(path: Path | str) -> Path:
    """The dataset folder: ``path`` itself or its ``CUB_200_2011`` sub-folder.

    Raises:
        DataError: if neither holds ``images.txt``, ``image_class_labels.txt`` and ``classes.txt``.
    """
    root = marked_folder(path, _MARKER_FILES, inside=CUB_FOLDER)
    if root is not None:
        return root
    raise DataError(f"{path} is not a CUB-200-2011 folder: it needs {', '.join(_MARKER_FILES)} "
                    f"(unpack CUB_200_2011.tgz and point at {CUB_FOLDER}/)")


def is_cub(path: Path | str) -> bool:
    """Whether ``path`` (or its ``CUB_200_2011`` sub-folder) is a CUB-200-2011 folder."""
    return marked_folder(path, _MARKER_FILES, inside=CUB_FOLDER) is not None


def find_attribute_names(root: Path) -> Path | None:
    """``attributes.txt`` in ``attributes/``, the dataset folder or its parent (the archive ships it there)."""
    for candidate in (root / "attributes" / "attributes.txt", root / "attributes.txt", root.parent / "attributes.txt"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True, eq=False)
class CubMeta:
    """The id files of CUB, cross-checked.

    Attributes:
        root: the dataset folder.
        class_names: the C class names (``NNN.Class_Name``).
        image_paths: per image (in image-id order), its path relative to ``images/``.
        labels: per image, its 0-based class index.
        attribute_names: the attribute names (numbered when no ``attributes.txt`` was found).
        attributes: ``[C, A]`` continuous class attributes (percent).
        notes: remarks (where the names came from).
    """

    root: Path
    class_names: tuple[str, ...]
    image_paths: tuple[str, ...]
    labels: np.ndarray
    attribute_names: tuple[str, ...]
    attributes: np.ndarray
    notes: tuple[str, ...] = ()


def read_cub_image_list(root: Path, n_classes: int) -> tuple[tuple[str, ...], np.ndarray]:
    """``images.txt`` and ``image_class_labels.txt`` as (paths relative to ``images/``, 0-based labels), by image id.

    Raises:
        DataError: for a path with ``..`` or an absolute path in ``images.txt``, an image without a
            label (or the reverse), a class id out of range.
    """
    images_file = root / "images.txt"
    images = read_id_pairs(images_file, what="image path")
    paths = {i: check_relative_path(p, images_file, line) for i, p, line in images}
    labels_file = root / "image_class_labels.txt"
    labels: dict[int, int] = {}
    for ident, value, line in read_id_pairs(labels_file, what="class id"):
        try:
            c = int(value.split()[0])
        except ValueError:
            raise DataError(f"{labels_file}, line {line}: class id must be an integer, got {quote(value)}") from None
        if not 1 <= c <= n_classes:
            raise DataError(f"{labels_file}, line {line}: class id {c} is not in classes.txt (ids 1..{n_classes})")
        labels[ident] = c - 1
    unlabelled = sorted(set(paths) - set(labels))
    if unlabelled:
        raise DataError(f"{len(unlabelled)} image id(s) of {images_file} have no line in {labels_file} "
                        f"(first {unlabelled[0]}); the two files must list the same image ids")
    orphan = sorted(set(labels) - set(paths))
    if orphan:
        raise DataError(f"{len(orphan)} image id(s) of {labels_file} are not in {images_file} (first {orphan[0]})")
    order = sorted(paths)
    return tuple(paths[i] for i in order), np.asarray([labels[i] for i in order], np.int64)


def read_cub_attributes(root: Path, class_names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray, list[str]]:
    """The continuous class-attribute matrix and the attribute names, with notes.

    Raises:
        DataError: for a missing matrix, a class without an attribute row, a row of the wrong width.
    """
    notes: list[str] = []
    names_file = find_attribute_names(root)
    names = read_id_names(names_file, what="attribute") if names_file is not None else None
    matrix = read_matrix(root / _MATRIX, row_names=class_names, col_names=names, rows_file="classes.txt",
                         cols_file=names_file.name if names_file is not None else "")
    if names is None:
        names = tuple(f"attribute_{j + 1}" for j in range(matrix.shape[1]))
        notes.append("no attributes.txt found (attributes/, the dataset folder or beside it): attributes are numbered")
    return names, matrix, notes


def read_cub_meta(root: Path) -> CubMeta:
    """Read ``classes.txt``, the image list and the attribute files (see the two readers above).

    Raises:
        DataError: for any malformed or missing file.
    """
    root = Path(root)
    classes = read_id_names(root / "classes.txt", what="class name")
    paths, labels = read_cub_image_list(root, len(classes))
    names, matrix, notes = read_cub_attributes(root, classes)
    return CubMeta(root, classes, paths, labels, names, matrix, tuple(notes))


def _caption_folders(text_root: Path) -> dict[str, Path]:
    folders = {}
    for folder in sorted(p for p in text_root.iterdir() if p.is_dir()):
        folders[folder.name] = folder
        folders.setdefault("#" + folder.name.split(".", 1)[0], folder)
    return folders


def read_captions(
    text_root: Path, class_names: tuple[str, ...], image_paths: tuple[str, ...], labels: np.ndarray
) -> tuple[tuple[tuple[str, ...], ...], list[str]]:
    """Per class, the captions of its images from ``text_c10/<class>/<image stem>.txt``.

    A caption folder is matched by the class name, else by its ``NNN`` number (a few names are
    spelled differently in the caption data).

    Returns:
        ``(descriptions per class, names of classes without any caption)``.
    """
    folders = _caption_folders(text_root)
    per_class: list[list[str]] = [[] for _ in class_names]
    for path, c in zip(image_paths, labels):
        name = class_names[c]
        folder = folders.get(name) or folders.get("#" + name.split(".", 1)[0])
        if folder is None:
            continue
        caption_file = folder / (Path(path).stem + ".txt")
        if is_file(caption_file):
            per_class[c].extend(text for _, text in read_lines(caption_file))
    without = [class_names[c] for c, texts in enumerate(per_class) if not texts]
    return tuple(tuple(t) for t in per_class), without


def cub_class_split(
    meta: CubMeta, *, split_dir: Path | None = None, unseen_classes: tuple[str, ...] | None = None,
    val_split: int = 1, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
) -> ClassSplit:
    """The class split: the xlsa17 CUB class lists, else ``unseen_classes``.

    Raises:
        DataError: when neither is available, or the lists are inconsistent.
    """
    folders = ([Path(split_dir)] if split_dir is not None else []) + [meta.root, meta.root.parent]
    return resolve_class_split(
        meta.class_names, folders, unseen=unseen_classes, val_split=val_split, val_fraction=val_fraction, seed=seed,
        fix=(f"copy trainvalclasses.txt and testclasses.txt of xlsa17/data/CUB into {meta.root} (or pass "
             f"split_dir= that folder), or pass unseen_classes=[...]"),
    )


def cub_split(
    meta: CubMeta, paths: Sequence[str] | None, *, split_dir: Path | str | None,
    unseen_classes: tuple[str, ...] | None = None, val_split: int, val_fraction: float, seed: int,
) -> tuple[ClassSplit, ImageSplit | None, tuple[str, ...]]:
    """The split of the images of ``meta``, as :func:`load_cub` takes it (see the module docstring).

    xlsa17's exact image split with ``res101.mat`` in ``split_dir``, else :func:`cub_class_split`.
    ``paths`` (``meta.image_paths``) ``None`` (no image list): the class split.

    Returns:
        ``(class split, image split or None, notes)``.
    """
    return image_or_class_split(
        split_dir, meta.class_names, paths, meta.labels, image_root=meta.root / "images",
        class_split=lambda: cub_class_split(
            meta, split_dir=None if split_dir is None else Path(split_dir), unseen_classes=unseen_classes,
            val_split=val_split, val_fraction=val_fraction, seed=seed),
        unseen_classes=unseen_classes, val_split=val_split, val_fraction=val_fraction, seed=seed)


def find_captions_dir(root: Path) -> Path | None:
    """The ``text_c10`` caption folder in or beside the dataset folder, if there is one."""
    return next((p for p in (root / "text_c10", root.parent / "text_c10") if is_dir(p)), None)


def load_cub(
    path: Path | str,
    *,
    split_dir: Path | str | None = None,
    unseen_classes: tuple[str, ...] | None = None,
    captions_dir: Path | str | None = None,
    val_split: int = 1,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_seen_fraction: float = DEFAULT_TEST_SEEN_FRACTION,
    seed: int = 0,
    transform: ImageTransform | None = None,
    check_images: bool = True,
) -> LoadedDataset:
    """Load CUB-200-2011: images on disk, continuous class attributes, captions as descriptions.

    Args:
        path: the ``CUB_200_2011`` folder or its parent.
        split_dir: the xlsa17 CUB folder (``xlsa17/data/CUB``): with ``res101.mat`` and a split
            file, xlsa17's exact image split; otherwise its class lists, if any.
        unseen_classes: unseen class names, when no class lists are available (not with the
            exact image split).
        captions_dir: the ``text_c10`` folder (looked for in and beside the dataset when ``None``).
        val_split: which xlsa17 ``trainclasses<k>.txt`` / ``valclasses<k>.txt`` pair to use.
        val_fraction: share of seen classes drawn for validation when no list gives them.
        test_seen_fraction: share of each seen class's images held out for ``test_seen`` (without
            the exact image split).
        seed: seed of the draws.
        transform: image preprocessing (``ImageTransform()`` when ``None``).
        check_images: open every image first (see :func:`~niwt.data.files.images.screen_images`).

    Raises:
        DataError: for malformed or missing files (named, with the fix), or an image of xlsa17's
            split that is not in ``images.txt``.
        ConfigError: for a bad argument.
    """
    val_fraction, test_seen_fraction, seed = check_draws(val_fraction, test_seen_fraction, seed)
    root = find_cub_root(path)
    meta = read_cub_meta(root)
    notes = list(meta.notes)
    class_split, image_split, split_notes = cub_split(
        meta, meta.image_paths, split_dir=split_dir, unseen_classes=unseen_classes, val_split=val_split,
        val_fraction=val_fraction, seed=seed)
    notes.extend(split_notes)
    text_root = Path(captions_dir) if captions_dir is not None else find_captions_dir(root)
    descriptions: tuple[tuple[str, ...], ...] = ()
    if text_root is not None:
        if not is_dir(text_root):
            raise DataError(f"`captions_dir` {text_root} is not a folder")
        descriptions, without = read_captions(text_root, meta.class_names, meta.image_paths, meta.labels)
        notes.append(f"descriptions: captions from {text_root}"
                     + (f"; {len(without)} class(es) have none: {quote_names(without)}" if without else ""))
    return assemble_image_dataset(
        name="CUB", format="cub", root=root / "images", paths=meta.image_paths, labels=meta.labels,
        class_names=meta.class_names, knowledge=meta.attributes, knowledge_names=meta.attribute_names,
        split=class_split, listed_in=str(root / "images.txt"), test_seen_fraction=test_seen_fraction, seed=seed,
        transform=transform, check_images=check_images, descriptions=descriptions, notes=notes,
        image_split=image_split,
    )


def survey_cub(s: Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    """What ``inspect`` reports of a CUB-200-2011 folder: counts, problems and notes (see :class:`Survey`).

    The files are read and the split made as :func:`load_cub` does by default; each file that
    cannot be read is a problem, the others are still read.
    """
    defaults = loader_defaults(load_cub)
    root = find_cub_root(path)
    classes = s.attempt(read_id_names, root / "classes.txt", what="class name")
    if classes is None:
        return
    s.values["n_classes"] = len(classes)
    attributes = s.attempt(read_cub_attributes, root, classes)
    if attributes is not None:
        s.values["n_attributes"] = len(attributes[0])
        s.notes.extend(attributes[2])
    listed = s.attempt(read_cub_image_list, root, len(classes))
    paths, labels = listed if listed is not None else ((), np.zeros(0, np.int64))
    meta = CubMeta(root, classes, paths, labels, (), np.zeros((len(classes), 0)))
    split, image_split = s.split(lambda: cub_split(
        meta, None if listed is None else paths, split_dir=split_dir,
        **{k: defaults[k] for k in ("val_split", "val_fraction", "seed")}))
    text_root = find_captions_dir(root)
    if text_root is not None:
        s.notes.append(f"captions found in {text_root} (used as descriptions)")
    if listed is not None:
        s.image_files(root / "images", classes, paths, labels, split, check=check, listed_in=str(root / "images.txt"),
                      test_seen_fraction=defaults["test_seen_fraction"], seed=defaults["seed"], image_split=image_split)
