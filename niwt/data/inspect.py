"""Look at a dataset folder without loading it: its format, class and split counts, and what is wrong.

:func:`inspect_dataset` never raises for a malformed dataset (only for a path that does not exist
or matches no format): every fault it finds becomes a line of ``problems``, and what the files
cannot tell is ``None`` with a note saying what would tell it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from niwt.data.files.folders import read_class_folders
from niwt.data.files.images import check_images as _check_images
from niwt.data.files.text import is_dir
from niwt.data.formats.splits import (
    DEFAULT_TEST_SEEN_FRACTION,
    DEFAULT_VAL_FRACTION,
    ClassSplit,
    class_list_split,
    draw_val_classes,
    split_seen_images,
)
from niwt.data.registry import detect_format
from niwt.errors import DataError
from niwt.messages import first_names, quote, short_name

__all__ = ["InspectReport", "inspect_dataset"]

_COUNTS = ("n_classes", "n_attributes", "n_seen", "n_unseen", "n_train_classes", "n_val_classes",
           "n_images", "n_trainval", "n_test_seen", "n_test_unseen", "feature_dim")


@dataclass(frozen=True)
class InspectReport:
    """What :func:`inspect_dataset` found.

    Attributes:
        path: the inspected path.
        format: the detected format.
        n_classes, n_attributes: classes and knowledge dimensions (``None`` when unknown).
        n_seen, n_unseen: seen / unseen classes (``None`` when the files cannot tell).
        n_train_classes, n_val_classes: the train / val partition of the seen classes.
        n_images: images (or feature rows) the splits refer to.
        n_trainval, n_test_seen, n_test_unseen: images per split.
        feature_dim: width of pre-extracted features, when the format has them.
        has_features: whether pre-extracted features are present.
        has_images: whether image files are present.
        problems: faults found (each names what and where).
        notes: what is unknown and why, and how split counts were obtained.
    """

    path: str
    format: str
    n_classes: int | None = None
    n_attributes: int | None = None
    n_seen: int | None = None
    n_unseen: int | None = None
    n_train_classes: int | None = None
    n_val_classes: int | None = None
    n_images: int | None = None
    n_trainval: int | None = None
    n_test_seen: int | None = None
    n_test_unseen: int | None = None
    feature_dim: int | None = None
    has_features: bool = False
    has_images: bool = False
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["problems"], out["notes"] = list(self.problems), list(self.notes)
        return out

    def format_text(self) -> str:
        """A short human-readable report."""
        def n(value: int | None) -> str:
            return "?" if value is None else str(value)

        lines = [
            f"{self.path}  [{self.format}]",
            f"  classes     {n(self.n_classes)}  (seen {n(self.n_seen)} = train {n(self.n_train_classes)} + "
            f"val {n(self.n_val_classes)}, unseen {n(self.n_unseen)})",
            f"  knowledge   {n(self.n_attributes)} dimensions",
            f"  images      {n(self.n_images)}  (trainval {n(self.n_trainval)}, test_seen {n(self.n_test_seen)}, "
            f"test_unseen {n(self.n_test_unseen)})",
            f"  features    {'width ' + n(self.feature_dim) if self.has_features else 'none'}; "
            f"image files {'yes' if self.has_images else 'no'}",
        ]
        if self.notes:
            lines.append("notes:")
            lines.extend(f"  - {note}" for note in self.notes)
        lines.append("problems: none" if not self.problems else f"problems ({len(self.problems)}):")
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


@dataclass
class _Survey:
    """Mutable collector used while inspecting; frozen into an :class:`InspectReport` at the end."""

    values: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def attempt(self, func, *args, **kwargs):
        """Call ``func``; a :class:`DataError` becomes a problem and ``None`` is returned."""
        try:
            return func(*args, **kwargs)
        except DataError as exc:
            self.problems.append(str(exc))
            return None


def _first(names: Sequence[str], k: int = 5) -> str:
    return first_names(names, k, show=short_name)


def _set_split(s: _Survey, split: ClassSplit) -> None:
    s.values.update(n_seen=int(split.seen.size), n_unseen=int(split.unseen.size),
                    n_train_classes=int(split.train.size), n_val_classes=int(split.val.size))
    s.notes.extend(split.notes)


def _survey_image_files(
    s: _Survey, root: Path, class_names: Sequence[str], paths: list[str], labels: np.ndarray,
    split: ClassSplit | None, check: bool, listed_in: str,
) -> None:
    """Counts and problems of an image-file dataset (missing / unreadable files, empty classes)."""
    s.values["has_images"] = bool(paths)
    labels = np.asarray(labels, dtype=np.int64)
    if check and paths:
        found = _check_images(root, paths)
        if found.missing:
            s.problems.append(f"missing images: {len(found.missing)} of {len(paths)} files listed in {listed_in} are "
                              f"not under {root} (first: {_first(list(found.missing))})")
        if found.unreadable:
            s.problems.append(f"unreadable images: {len(found.unreadable)} of {len(paths)} files under {root} cannot "
                              f"be decoded (first: {_first([p for p, _ in found.unreadable])})")
        bad = set(found.missing) | {p for p, _ in found.unreadable}
        keep = np.asarray([p not in bad for p in paths], dtype=bool)
        labels = labels[keep]
    s.values["n_images"] = int(labels.size)
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [class_names[c] for c in range(len(class_names)) if counts[c] == 0]
    if empty:
        s.problems.append(f"classes without images: {len(empty)} ({_first(empty)})")
    if split is not None:
        trainval, test_seen = split_seen_images(labels, split.seen, DEFAULT_TEST_SEEN_FRACTION, 0)
        s.values.update(n_trainval=int(trainval.size), n_test_seen=int(test_seen.size),
                        n_test_unseen=int(np.isin(labels, split.unseen).sum()))
        s.notes.append(f"per-image split as the loader draws it by default: {DEFAULT_TEST_SEEN_FRACTION:g} of each "
                       f"seen class's images held out for test_seen (seed 0)")


def _survey_xlsa17(s: _Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    from niwt.data.formats import xlsa17 as x

    split = s.attempt(lambda: x.read_split_file(x.find_split_file(path)))
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
    features_path = folder / x.FEATURES_FILE
    labels = None
    if features_path.is_file():
        header = s.attempt(x.mat_header, features_path)
        n_index = max(int(a.max()) + 1 for a in locs.values() if a.size)
        read = s.attempt(x.read_features_file, features_path, len(split.class_names), n_index, features=False)
        if header is not None and read is not None:
            labels = read.labels
            shape = header.get("features", ((), ""))[0]
            s.values["has_features"] = "features" in header
            if len(shape) == 2 and labels.size in shape:
                s.values["feature_dim"] = int(shape[0] if shape[1] == labels.size else shape[1])
            elif "features" in header:
                s.problems.append(f"{features_path}: `features` has shape {shape}, expected (D, {labels.size})")
    else:
        s.notes.append(x.missing_features_message(folder))
    if labels is not None:
        _xlsa17_labels(s, split, labels, lists)
    elif "seen" in lists:
        s.values.update(n_seen=int(lists["seen"].size), n_unseen=int(lists["unseen"].size))
        s.notes.append("seen / unseen classes from trainvalclasses.txt / testclasses.txt")
        if "val" in lists:
            s.values.update(n_train_classes=int(lists["train"].size), n_val_classes=int(lists["val"].size))
    else:
        s.notes.append(
            f"n_seen / n_unseen unknown: {split.path.name} holds image indices but not the classes of the images; "
            f"they need the labels in {x.FEATURES_FILE} (or the xlsa17 class lists trainvalclasses.txt / "
            f"testclasses.txt beside the split file)"
        )


def _xlsa17_labels(s: _Survey, split, labels: np.ndarray, lists: dict[str, np.ndarray]) -> None:
    locs = split.locs
    names = split.class_names
    seen = np.unique(labels[np.concatenate([locs["trainval_loc"], locs["test_seen_loc"]])])
    unseen = np.unique(labels[locs["test_unseen_loc"]])
    listed_unseen = lists.get("unseen", unseen)
    leaked = np.intersect1d(np.unique(labels[locs["trainval_loc"]]), listed_unseen)
    if leaked.size:
        s.problems.append(f"unseen classes with images in the training split (trainval_loc): {leaked.size} "
                          f"({_first([names[c] for c in leaked])})")
    if "seen" in lists and not np.array_equal(lists["seen"], seen):
        s.problems.append("trainvalclasses.txt disagrees with the classes of the labels at trainval_loc / test_seen_loc")
    no_images = np.setdiff1d(np.arange(len(names)), labels)
    if no_images.size:
        s.problems.append(f"classes without images in the features file: {no_images.size} "
                          f"({_first([names[c] for c in no_images])})")
    s.values.update(n_seen=int(seen.size), n_unseen=int(unseen.size))
    if split.has_val_locs:
        s.values.update(n_train_classes=int(np.unique(labels[locs["train_loc"]]).size),
                        n_val_classes=int(np.unique(labels[locs["val_loc"]]).size))
    elif "val" in lists:
        s.values.update(n_train_classes=int(lists["train"].size), n_val_classes=int(lists["val"].size))


def _survey_awa2(s: _Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    from niwt.data.files.text import read_id_names
    from niwt.data.formats import awa2

    root = awa2.find_awa2_root(path)
    classes = s.attempt(read_id_names, root / "classes.txt", what="class")
    if classes is None:
        return
    s.values["n_classes"] = len(classes)
    meta = s.attempt(awa2.read_awa2_meta, root)
    if meta is None:
        predicates = s.attempt(read_id_names, root / "predicates.txt", what="attribute")
        s.values["n_attributes"] = None if predicates is None else len(predicates)
        return
    s.values["n_attributes"] = len(meta.attribute_names)
    n_missing = int((meta.continuous == -1).sum())
    if n_missing:
        s.notes.append(f"{n_missing} missing attribute value(s) (-1) in predicate-matrix-continuous.txt "
                       f"(the loader sets them to 0)")
    split = s.attempt(awa2.awa2_class_split, meta, split_dir=split_dir)
    if split is not None:
        _set_split(s, split)
    images = root / "JPEGImages"
    if not is_dir(images):
        s.problems.append(f"missing images: no JPEGImages folder in {root}")
        return
    found = read_class_folders(images, classes, skip_hidden=False)
    if found.missing:
        s.problems.append(f"classes without an image folder in {images}: {len(found.missing)} "
                          f"({_first(found.missing)})")
    _survey_image_files(s, images, classes, list(found.paths), found.labels, split, check,
                        "the JPEGImages class folders")


def _survey_cub(s: _Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    from niwt.data.files.text import read_id_names
    from niwt.data.formats import cub

    root = cub.find_cub_root(path)
    classes = s.attempt(read_id_names, root / "classes.txt", what="class name")
    if classes is None:
        return
    s.values["n_classes"] = len(classes)
    attributes = s.attempt(cub.read_cub_attributes, root, classes)
    if attributes is not None:
        s.values["n_attributes"] = len(attributes[0])
        s.notes.extend(attributes[2])
    listed = s.attempt(cub.read_cub_image_list, root, len(classes))
    meta = cub.CubMeta(root, classes, listed[0] if listed else (), listed[1] if listed else np.zeros(0, np.int64),
                       (), np.zeros((len(classes), 0)))
    split = s.attempt(cub.cub_class_split, meta, split_dir=split_dir)
    if split is not None:
        _set_split(s, split)
    for text_root in (root / "text_c10", root.parent / "text_c10"):
        if text_root.is_dir():
            s.notes.append(f"captions found in {text_root} (used as descriptions)")
            break
    if listed is not None:
        _survey_image_files(s, root / "images", classes, list(listed[0]), listed[1], split, check,
                            str(root / "images.txt"))


def _survey_folder(s: _Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    from niwt.data.formats import folder as fmt

    table = s.attempt(lambda: fmt.read_class_table(fmt.find_class_csv(path)))
    if table is None:
        return
    splits = np.asarray(table.splits)
    seen, unseen = np.flatnonzero(splits == "seen"), np.flatnonzero(splits == "unseen")
    train, val = draw_val_classes(seen, DEFAULT_VAL_FRACTION, 0)
    s.values.update(n_classes=len(table.class_names), n_attributes=len(table.attribute_names))
    _set_split(s, ClassSplit(seen, unseen, train, val, (
        f"validation classes as the loader draws them by default (seed 0, fraction {DEFAULT_VAL_FRACTION})",)))
    if table.descriptions is not None:
        s.notes.append(f"{sum(bool(t) for t in table.descriptions)} class(es) have a description")
    found = read_class_folders(path, table.class_names)
    for name, line in zip(table.class_names, table.lines):
        if name in found.missing:
            s.problems.append(f"{table.path}, line {line}: class {quote(name)} has no image folder")
    if found.extra:
        s.problems.append(f"folders without a row in {table.path.name}: {len(found.extra)} ({_first(found.extra)})")
    _survey_image_files(s, path, table.class_names, list(found.paths), found.labels,
                        ClassSplit(seen, unseen, train, val), check, "the class folders")


_SURVEYS = {"xlsa17": _survey_xlsa17, "awa2": _survey_awa2, "cub": _survey_cub, "folder": _survey_folder}


def inspect_dataset(
    path: Path | str, *, format: str | None = None, check_images: bool = True, split_dir: Path | str | None = None,
) -> InspectReport:
    """Inspect a dataset folder (or an xlsa17 split file).

    Args:
        path: the folder.
        format: the format, detected from the folder's contents when ``None``.
        check_images: open every image file's header to find missing and unreadable files.
        split_dir: a folder of xlsa17 class lists for an AwA2 or CUB folder (as the loaders take it).

    Returns:
        The report; faults are in ``problems``, never raised.

    Raises:
        DataError: if ``path`` does not exist or matches no format.
        ConfigError: for an unknown ``format``.
    """
    from niwt.data.registry import format_loader

    path = Path(path)
    fmt = format if format is not None else detect_format(path)
    format_loader(fmt)  # validates the name
    survey = _Survey()
    _SURVEYS[fmt](survey, path, check_images, None if split_dir is None else Path(split_dir))
    values = {k: survey.values.get(k) for k in _COUNTS}
    return InspectReport(path=str(path), format=fmt, has_features=bool(survey.values.get("has_features", False)),
                         has_images=bool(survey.values.get("has_images", False)), problems=tuple(survey.problems),
                         notes=tuple(survey.notes), **values)  # type: ignore[arg-type]
