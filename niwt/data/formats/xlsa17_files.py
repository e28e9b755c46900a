"""The files of an xlsa17 dataset folder ("proposed splits", Xian et al.): the split file
(``att_splits.mat`` / ``sent_splits.mat``) and ``res101.mat``, read and checked.

Layout of one dataset folder (``xlsa17/data/<DS>/``)::

    res101.mat        features (D x N, columns are images; D = 2048 in the published files),
                      labels (N x 1, 1-based rows of allclasses_names), image_files (N x 1)
    att_splits.mat    att (A x C, unit-norm columns), original_att, allclasses_names (C x 1),
                      trainval_loc, test_seen_loc, test_unseen_loc [, train_loc, val_loc]
                      (1-based row numbers of res101.mat)
    sent_splits.mat   the same with att = sentence embeddings (CUB, 1024-d)
    allclasses.txt, trainvalclasses.txt, testclasses.txt, trainclasses1.txt, valclasses1.txt ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from niwt.data.files.text import (
    is_file,
    read_name_list,
)
from niwt.data.formats.matfile import (
    cell_strings,
    load_mat,
    mat_header,
    numeric,
    require_fields,
    vector_length,
)
from niwt.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["SPLIT_FILES", "FEATURES_FILE", "XLSA17_URL", "KNOWLEDGE_FIELDS", "LOC_FIELDS", "VAL_LOC_FIELDS",
           "SplitFile", "FeaturesFile", "is_xlsa17", "find_split_file", "read_split_file", "read_features_file",
           "missing_features_message", "one_based"]

SPLIT_FILES: tuple[str, ...] = ("att_splits.mat", "sent_splits.mat")
"""Split files in the order they are looked for."""

FEATURES_FILE = "res101.mat"
XLSA17_URL = "http://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip"
KNOWLEDGE_FIELDS: tuple[str, ...] = ("att", "original_att")
"""Valid values of ``load_xlsa17(knowledge=...)``."""

LOC_FIELDS: tuple[str, ...] = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
VAL_LOC_FIELDS: tuple[str, ...] = ("train_loc", "val_loc")
_IMAGE_MARKERS: tuple[str, ...] = ("/JPEGImages/", "/images/")


def missing_features_message(folder: Path) -> str:
    """What to do when the features file of an xlsa17 folder is missing."""
    return (
        f"the image features are missing: no {FEATURES_FILE} in {folder}. Download {XLSA17_URL}, unpack it and "
        f"copy data/{folder.name}/{FEATURES_FILE} next to the split file; "
        f"`niwt.data.inspect.inspect_dataset` reads the split file alone"
    )


def is_xlsa17(path: Path | str) -> bool:
    """Whether ``path`` is an xlsa17 dataset folder (it holds a split file) or a ``.mat`` file."""
    path = Path(path)
    if is_file(path):
        return path.suffix == ".mat"
    return any(is_file(path / name) for name in SPLIT_FILES)


def find_split_file(folder: Path, semantic: str | None = None) -> Path:
    """The split file of an xlsa17 dataset folder (or the file itself when ``folder`` is one).

    Args:
        folder: the dataset folder or a ``*_splits.mat`` file.
        semantic: ``"att"`` or ``"sent"`` to pick ``att_splits.mat`` / ``sent_splits.mat``; the first
            present when ``None``.

    Raises:
        DataError: if no split file is there.
        ConfigError: for an unknown ``semantic``.
    """
    folder = Path(folder)
    if is_file(folder):
        return folder
    if semantic is not None:
        if semantic not in ("att", "sent"):
            raise ConfigError(f"`semantic` must be 'att', 'sent' or None, got {semantic!r}")
        names: tuple[str, ...] = (f"{semantic}_splits.mat",)
    else:
        names = SPLIT_FILES
    for name in names:
        if is_file(folder / name):
            return folder / name
    raise DataError(
        f"no {' or '.join(names)} in {folder}; point at an xlsa17 dataset folder (xlsa17/data/<DS>/ of {XLSA17_URL})"
    )



def one_based(path: Path, name: str, value: np.ndarray, upper: int | None, unit: str) -> np.ndarray:
    """A 1-based integer vector of a .mat file (``unit``: "image" or "class") as 0-based int64, range-checked."""
    arr = np.asarray(value).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(f"{path}: `{name}` must hold whole {unit} numbers, got dtype {arr.dtype}")
    peak = float(np.abs(arr.astype(np.float64)).max()) if arr.size else 0.0
    if peak >= 2.0**53:  # beyond exact integers in float64 (and near the int64 limit): no image or class number
        raise DataError(f"{path}: `{name}` holds {peak:.3g}, far beyond any {unit} number; download the file again")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 1:
        raise DataError(
            f"{path}: `{name}` holds {arr.min()}, but xlsa17 {unit} numbers are 1-based (1..n); this file looks "
            f"0-based: add 1 to `{name}` (and the other index fields) when writing it, or download the original file"
        )
    if upper is not None and arr.size and arr.max() > upper:
        raise DataError(f"{path}: `{name}` holds {arr.max()}, beyond the {upper} {unit}s it can refer to; "
                        f"the split file and {FEATURES_FILE} come from different releases")
    return arr - 1


@dataclass(frozen=True, eq=False)
class SplitFile:
    """The contents of ``att_splits.mat`` / ``sent_splits.mat``, indices already 0-based.

    Attributes:
        path: the file.
        class_names: the C names (``allclasses_names``, else ``allclasses.txt`` beside the file).
        att: ``[C, A]`` class embeddings (the file's ``att`` transposed).
        original_att: ``[C, A]`` un-normalised embeddings, or ``None`` when the file has none.
        locs: 0-based image rows per index field present (``trainval_loc`` ...).
        n_images: the number of distinct rows the index fields refer to.
        notes: remarks about the file (where class names came from).
    """

    path: Path
    class_names: tuple[str, ...]
    att: np.ndarray
    original_att: np.ndarray | None
    locs: dict[str, np.ndarray] = field(default_factory=dict)
    n_images: int = 0
    notes: tuple[str, ...] = ()

    @property
    def semantic(self) -> str:
        return "sent" if self.path.name.startswith("sent") else "att"

    @property
    def has_val_locs(self) -> bool:
        return all(name in self.locs for name in VAL_LOC_FIELDS)

    @property
    def largest_index(self) -> int:
        """The largest 1-based image index of the split fields (``res101.mat`` must have that many rows)."""
        return max(int(a.max()) + 1 for a in self.locs.values() if a.size)


def _class_names_for(path: Path, header: dict, mat: dict | None) -> tuple[tuple[str, ...], str | None]:
    if "allclasses_names" in header:
        return cell_strings(path, "allclasses_names", mat["allclasses_names"]), None
    listed = path.parent / "allclasses.txt"
    if listed.is_file():
        return tuple(name for name, _ in read_name_list(listed)), f"class names read from {listed.name}"
    raise DataError(
        f"{path} has no `allclasses_names` field and there is no allclasses.txt beside it; copy allclasses.txt "
        f"from the same xlsa17 folder"
    )


def read_split_file(path: Path) -> SplitFile:
    """Read and check an xlsa17 split file.

    Raises:
        DataError: for a missing field, a field of the wrong shape, 0-based or non-integer indices,
            overlapping index fields, or an embedding matrix that does not match the class names.
    """
    path = Path(path)
    header = mat_header(path)
    require_fields(path, header, ("att", *LOC_FIELDS),
             "an xlsa17 split file holds att and the trainval/test_seen/test_unseen index fields; download it again")
    lengths = {name: vector_length(path, name, header[name][0]) for name in (*LOC_FIELDS, *VAL_LOC_FIELDS)
               if name in header}
    att_shape = header["att"][0]
    if len(att_shape) != 2:
        raise DataError(f"{path}: `att` must be a 2-d (attributes x classes) matrix, got shape {att_shape}")
    present = [n for n in ("att", "original_att", "allclasses_names", *lengths) if n in header]
    mat = load_mat(path, present)
    class_names, note = _class_names_for(path, header, mat)
    n_classes = len(class_names)
    att = numeric(path, "att", mat["att"])
    if att.shape[1] != n_classes:
        raise DataError(
            f"{path}: `att` has shape {att.shape}, but there are {n_classes} classes; it must be "
            f"(attributes x classes) with one column per class of allclasses_names"
        )
    original = None
    if "original_att" in mat:
        original = numeric(path, "original_att", mat["original_att"])
        if original.shape != att.shape:
            raise DataError(f"{path}: `original_att` has shape {original.shape}, `att` {att.shape}; they must agree")
    locs = {name: one_based(path, name, mat[name], None, "image") for name in lengths}
    for name, arr in locs.items():
        if np.unique(arr).size != arr.size:
            raise DataError(f"{path}: `{name}` holds repeated image indices")
    for i, a in enumerate(LOC_FIELDS):
        for b in LOC_FIELDS[i + 1:]:
            both = np.intersect1d(locs[a], locs[b])
            if both.size:
                raise DataError(f"{path}: `{a}` and `{b}` share {both.size} image indices (first {both[0] + 1}); "
                                f"the split fields must be disjoint")
    if all(name in locs for name in VAL_LOC_FIELDS):
        both = np.intersect1d(locs["train_loc"], locs["val_loc"])
        if both.size:
            raise DataError(f"{path}: `train_loc` and `val_loc` share {both.size} image indices; they must be disjoint")
    n_images = int(np.unique(np.concatenate([locs[n] for n in LOC_FIELDS])).size)
    if n_images == 0:
        raise DataError(f"{path}: the split fields {', '.join(f'`{n}`' for n in LOC_FIELDS)} are all empty; "
                        f"download the split file again")
    return SplitFile(path, class_names, att.T.copy(), None if original is None else original.T.copy(), locs,
                     n_images, (note,) if note else ())


@dataclass(frozen=True, eq=False)
class FeaturesFile:
    """The contents of ``res101.mat``.

    Attributes:
        path: the file.
        labels: ``[N]`` 0-based class index of every image row.
        features: ``[N, D]`` float32 features, or ``None`` when not loaded.
        image_files: the N image paths as stored, or ``None`` when not loaded or absent.
    """

    path: Path
    labels: np.ndarray
    features: np.ndarray | None = None
    image_files: tuple[str, ...] | None = None


def read_features_file(
    path: Path, n_classes: int, n_index: int, *, features: bool = True, image_files: bool = False
) -> FeaturesFile:
    """Read ``res101.mat``: labels always, features and image paths on request.

    The header is checked first: ``features`` must be ``D x N`` (or ``N x D``) with N the number
    of ``labels`` and at least ``n_index`` (the largest split index), before the features are loaded.

    Args:
        path: the file.
        n_classes: number of classes of the split file (labels must lie in 1..n_classes).
        n_index: the largest 1-based image index of the split file.
        features: load the feature matrix.
        image_files: load the image paths.

    Raises:
        DataError: for a missing field, inconsistent shapes, 0-based or out-of-range labels.
    """
    path = Path(path)
    header = mat_header(path)
    require_fields(path, header, ("labels",) + (("features",) if features else ()),
             f"{FEATURES_FILE} holds `features` (D x N) and `labels` (N x 1); download it again")
    n = vector_length(path, "labels", header["labels"][0])
    if n < n_index:
        raise DataError(f"{path} has {n} labels, but the split file refers to image {n_index}; "
                        f"the split file and {FEATURES_FILE} come from different datasets or releases")
    transpose = True
    if features:
        shape = header["features"][0]
        if len(shape) != 2 or n not in shape:
            raise DataError(f"{path}: `features` has shape {shape}, expected (D, {n}) with one column per label")
        transpose = shape[1] == n
    want = ["labels"] + (["features"] if features else []) + (["image_files"] if image_files and "image_files" in header else [])
    mat = load_mat(path, want)
    labels = one_based(path, "labels", mat["labels"], n_classes, "class")
    feats = None
    if features:
        raw = numeric(path, "features", mat.pop("features"), np.float32)
        feats = np.ascontiguousarray(raw.T if transpose else raw)
        if not np.isfinite(feats).all():
            raise DataError(f"{path}: `features` holds NaN or infinite values (or values beyond float32)")
    files = cell_strings(path, "image_files", mat["image_files"]) if "image_files" in mat else None
    if files is not None and len(files) != n:
        raise DataError(f"{path}: `image_files` has {len(files)} entries for {n} labels")
    return FeaturesFile(path, labels, feats, files)


