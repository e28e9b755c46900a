"""The xlsa17 dataset kind: a folder of ``res101.mat`` beside ``att_splits.mat`` or
``sent_splits.mat`` loaded as a dataset (features, or images through ``image_root``), and
reported to ``niwt data inspect`` from the split file, and from ``res101.mat``'s header and
labels when it is there. The files themselves: :mod:`~niwt.data.formats.xlsa17_files`; the split
mapped onto images: :mod:`~niwt.data.formats.proposed_split`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from niwt.data.files.images import ImageTransform, screen_images
from niwt.data.files.text import (
    read_id_names,
    read_lines,
)
from niwt.data.formats.matfile import mat_header
from niwt.data.formats.proposed_split import _classes_from_labels, _image_paths
from niwt.data.formats.splits import (
    DEFAULT_VAL_FRACTION,
    check_fraction,
    check_seed,
    class_list_split,
)
from niwt.data.formats.survey import Survey, first
from niwt.data.formats.xlsa17_files import (
    FEATURES_FILE,
    KNOWLEDGE_FIELDS,
    SplitFile,
    find_split_file,
    missing_features_message,
    read_features_file,
    read_split_file,
)
from niwt.data.loaded import LoadedDataset
from niwt.data.record import ZSLData
from niwt.errors import ConfigError, DataError

__all__ = ["load_xlsa17", "survey_xlsa17"]

logger = logging.getLogger(__name__)


def load_xlsa17(
    folder: Path | str,
    *,
    semantic: str | None = None,
    knowledge: str = "att",
    features_file: str = FEATURES_FILE,
    val_split: int = 1,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    image_root: Path | str | None = None,
    image_prefix: str | None = None,
    transform: ImageTransform | None = None,
    check_images: bool = True,
    name: str | None = None,
) -> LoadedDataset:
    """Load an xlsa17 dataset folder: features, labels, class embeddings and the proposed split.

    Args:
        folder: ``xlsa17/data/<DS>/`` (or the split file itself).
        semantic: ``"att"`` / ``"sent"`` to choose the split file; the first present when ``None``.
        knowledge: ``"att"`` (the file's unit-norm embeddings) or ``"original_att"`` (raw values,
            ``-1`` = missing, set to 0 and recorded in the notes).
        features_file: the features file name in ``folder``.
        val_split: which ``trainclasses<k>.txt`` / ``valclasses<k>.txt`` pair to use (1, 2 or 3)
            when the split file has no ``train_loc`` / ``val_loc``.
        val_fraction: share of seen classes drawn as validation classes when neither is available.
        seed: seed of that draw.
        image_root: the folder holding the images; ``image_files`` of the features file are mapped
            under it (the part after ``/JPEGImages/`` or ``/images/``, or after ``image_prefix``).
        image_prefix: the prefix of the stored absolute paths to strip.
        transform: image preprocessing (``ImageTransform()`` when images are read and ``None``).
        check_images: with ``image_root``, check every file opens; a few unreadable ones are left
            out with a warning, a missing one is an error.
        name: the dataset name (the folder name when ``None``).

    Returns:
        A :class:`LoadedDataset` with ``data.features`` ``[N, D]`` float32.

    Raises:
        DataError: when the features file is missing (with where to get it) or any file is malformed.
        ConfigError: for a bad argument.
    """
    if knowledge not in KNOWLEDGE_FIELDS:
        raise ConfigError(f"`knowledge` must be one of {list(KNOWLEDGE_FIELDS)}, got {knowledge!r}")
    if isinstance(val_split, bool) or val_split not in (1, 2, 3):
        raise ConfigError(f"`val_split` must be 1, 2 or 3, got {val_split!r}")
    val_fraction = check_fraction("val_fraction", val_fraction)
    seed = check_seed(seed)
    split = read_split_file(find_split_file(Path(folder), semantic))
    folder = split.path.parent
    feats_path = folder / features_file
    if not feats_path.is_file():
        raise DataError(missing_features_message(folder))
    feats = read_features_file(feats_path, len(split.class_names), split.largest_index,
                               image_files=image_root is not None)
    notes = list(split.notes)
    labels = feats.labels
    seen, unseen, train, val, how = _classes_from_labels(split, feats_path, labels, val_split, val_fraction, seed)
    notes.append(how)
    if knowledge == "original_att":
        if split.original_att is None:
            raise DataError(f"{split.path} has no `original_att`; use knowledge='att'")
        values = split.original_att.copy()
        n_missing = int((values == -1).sum())
        if n_missing:
            values[values == -1] = 0.0
            notes.append(f"{n_missing} missing attribute value(s) (-1) in original_att set to 0")
    else:
        values = split.att
    knowledge_names = _knowledge_names(folder, split, values.shape[1])
    features = feats.features
    rows = np.arange(labels.size)
    paths: list[str] | None = None
    root = None
    if image_root is not None:
        root = Path(image_root)
        if feats.image_files is None:
            raise DataError(f"{feats_path} has no `image_files`; images cannot be located, load without image_root")
        paths = _image_paths(feats.image_files, image_prefix, feats_path)
        if check_images:
            keep, warned = screen_images(root, paths, listed_in=f"{feats_path.name} (image_files)")
            notes.extend(warned)
            rows = np.flatnonzero(keep)
    remap = np.full(labels.size, -1, np.int64)
    remap[rows] = np.arange(rows.size)

    def _idx(key: str) -> np.ndarray:
        mapped = remap[split.locs[key]]
        return mapped[mapped >= 0]

    try:
        data = ZSLData(
            name=name or folder.name,
            class_names=split.class_names,
            knowledge=values,
            knowledge_names=knowledge_names,
            labels=labels[rows],
            seen_classes=seen,
            unseen_classes=unseen,
            train_classes=train,
            val_classes=val,
            trainval_idx=_idx("trainval_loc"),
            test_seen_idx=_idx("test_seen_loc"),
            test_unseen_idx=_idx("test_unseen_loc"),
            features=None if features is None else features[rows],
            split_origin=f"xlsa17: trainval_loc / test_seen_loc / test_unseen_loc of {split.path}",
        )
    except DataError as err:  # the message names the field; say which files it comes from
        raise DataError(f"{split.path} with {feats_path.name}: {err}") from err
    logger.info("loaded xlsa17 %s: %r", folder, data)
    return LoadedDataset(
        data=data,
        image_root=root,
        image_paths=None if paths is None else tuple(paths[i] for i in rows),
        transform=(transform or ImageTransform()) if paths is not None else None,
        format="xlsa17",
        notes=tuple(notes),
    )


def _knowledge_names(folder: Path, split: SplitFile, width: int) -> tuple[str, ...]:
    """Attribute names from ``attributes.txt`` / ``predicates.txt`` beside the file when they fit, else numbered."""
    for candidate in ("attributes.txt", "predicates.txt"):
        path = folder / candidate
        if path.is_file():
            try:
                rows = read_lines(path)
                names = (read_id_names(path, what="attribute") if rows and rows[0][1].split()[0].isdigit()
                         else tuple(text for _, text in rows))
            except DataError:
                continue
            if len(names) == width:
                return names
    return tuple(f"{split.semantic}_{j + 1}" for j in range(width))


def survey_xlsa17(s: Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    """What ``inspect`` reports of an xlsa17 folder: counts, problems and notes (see :class:`Survey`).

    The split file alone gives the image counts; ``res101.mat`` (its header and labels, not the
    features) the classes of the images; else the class lists beside the split file. ``check`` and
    ``split_dir`` are not used (the package has no image files of its own).
    """
    split = s.attempt(lambda: read_split_file(find_split_file(path)))
    if split is None:
        return
    folder = split.path.parent
    locs = split.locs
    s.values.update(n_classes=len(split.class_names), n_attributes=int(split.att.shape[1]), n_images=split.n_images,
                    n_trainval=int(locs["trainval_loc"].size), n_test_seen=int(locs["test_seen_loc"].size),
                    n_test_unseen=int(locs["test_unseen_loc"].size))
    s.notes.append(f"split file {split.path.name}" + (" (with train_loc / val_loc)" if split.has_val_locs else
                                                       " (no train_loc / val_loc)"))
    s.notes.extend(split.notes)
    if not np.isfinite(split.att).all():
        s.problems.append(f"{split.path}: `att` holds NaN or infinite values")
    lists = s.attempt(class_list_split, folder, split.class_names) or {}
    features_path = folder / FEATURES_FILE
    labels = None
    if features_path.is_file():
        header = s.attempt(mat_header, features_path)
        read = s.attempt(read_features_file, features_path, len(split.class_names), split.largest_index,
                         features=False)
        if header is not None and read is not None:
            labels = read.labels
            shape = header.get("features", ((), ""))[0]
            s.values["has_features"] = "features" in header
            if len(shape) == 2 and labels.size in shape:
                s.values["feature_dim"] = int(shape[0] if shape[1] == labels.size else shape[1])
            elif "features" in header:
                s.problems.append(f"{features_path}: `features` has shape {shape}, expected (D, {labels.size})")
    else:
        s.notes.append(missing_features_message(folder))
    if labels is not None:
        _survey_labels(s, split, labels, lists)
    elif "seen" in lists:
        s.values.update(n_seen=int(lists["seen"].size), n_unseen=int(lists["unseen"].size))
        s.notes.append("seen / unseen classes from trainvalclasses.txt / testclasses.txt")
        if "val" in lists:
            s.values.update(n_train_classes=int(lists["train"].size), n_val_classes=int(lists["val"].size))
    else:
        s.notes.append(
            f"n_seen / n_unseen unknown: {split.path.name} holds image indices but not the classes of the images; "
            f"they need the labels in {FEATURES_FILE} (or the xlsa17 class lists trainvalclasses.txt / "
            f"testclasses.txt beside the split file)"
        )


def _survey_labels(s: Survey, split: SplitFile, labels: np.ndarray, lists: dict[str, np.ndarray]) -> None:
    """The class counts of the split fields from the labels of ``res101.mat``, and what contradicts them."""
    locs = split.locs
    names = split.class_names
    seen = np.unique(labels[np.concatenate([locs["trainval_loc"], locs["test_seen_loc"]])])
    unseen = np.unique(labels[locs["test_unseen_loc"]])
    listed_unseen = lists.get("unseen", unseen)
    leaked = np.intersect1d(np.unique(labels[locs["trainval_loc"]]), listed_unseen)
    if leaked.size:
        s.problems.append(f"unseen classes with images in the training split (trainval_loc): {leaked.size} "
                          f"({first([names[c] for c in leaked])})")
    if "seen" in lists and not np.array_equal(lists["seen"], seen):
        s.problems.append("trainvalclasses.txt disagrees with the classes of the labels at trainval_loc / test_seen_loc")
    no_images = np.setdiff1d(np.arange(len(names)), labels)
    if no_images.size:
        s.problems.append(f"classes without images in the features file: {no_images.size} "
                          f"({first([names[c] for c in no_images])})")
    s.values.update(n_seen=int(seen.size), n_unseen=int(unseen.size))
    if split.has_val_locs:
        s.values.update(n_train_classes=int(np.unique(labels[locs["train_loc"]]).size),
                        n_val_classes=int(np.unique(labels[locs["val_loc"]]).size))
    elif "val" in lists:
        s.values.update(n_train_classes=int(lists["train"].size), n_val_classes=int(lists["val"].size))
