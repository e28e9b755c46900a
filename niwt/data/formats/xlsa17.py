"""The xlsa17 package ("proposed splits", Xian et al.): ``res101.mat`` with ``att_splits.mat`` / ``sent_splits.mat``.

Layout of one dataset folder (``xlsa17/data/<DS>/``)::

    res101.mat        features (D x N, columns are images; D = 2048 in the published files),
                      labels (N x 1, 1-based rows of allclasses_names), image_files (N x 1)
    att_splits.mat    att (A x C, unit-norm columns), original_att, allclasses_names (C x 1),
                      trainval_loc, test_seen_loc, test_unseen_loc [, train_loc, val_loc]
                      (1-based row numbers of res101.mat)
    sent_splits.mat   the same with att = sentence embeddings (CUB, 1024-d)
    allclasses.txt, trainvalclasses.txt, testclasses.txt, trainclasses1.txt, valclasses1.txt ...

Files are read with :func:`scipy.io.loadmat` (MATLAB v5) only; field shapes are read from the file
header first and checked against each other before the large arrays are loaded.

:func:`xlsa17_image_split` maps the split onto the images of an AwA2 or CUB folder through
``image_files`` (the exact trainval / test_seen / test_unseen images of the published split).

:func:`load_xlsa17` loads a folder; :func:`survey_xlsa17` reports it to ``inspect`` from the split
file, and from ``res101.mat``'s header and labels when it is there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from niwt.data.files.images import ImageTransform, screen_images
from niwt.data.files.text import (
    check_relative_path,
    is_file,
    read_id_names,
    read_lines,
    read_name_list,
)
from niwt.data.formats.splits import (
    DEFAULT_VAL_FRACTION,
    ClassSplit,
    ImageSplit,
    check_fraction,
    check_seed,
    class_list_split,
    draw_val_classes,
)
from niwt.data.formats.survey import Survey, first
from niwt.data.loaded import LoadedDataset
from niwt.data.record import ZSLData
from niwt.errors import ConfigError, DataError
from niwt.messages import quote, quote_names

__all__ = [
    "SPLIT_FILES",
    "FEATURES_FILE",
    "XLSA17_URL",
    "KNOWLEDGE_FIELDS",
    "SplitFile",
    "FeaturesFile",
    "is_xlsa17",
    "find_split_file",
    "mat_header",
    "read_split_file",
    "read_features_file",
    "load_xlsa17",
    "missing_features_message",
    "xlsa17_image_split",
    "no_image_split_note",
    "image_or_class_split",
    "survey_xlsa17",
]

logger = logging.getLogger(__name__)

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


def mat_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{field: (shape, MATLAB class)}`` of a MATLAB v5 file, read without loading the arrays.

    Raises:
        DataError: if the file is missing or not a readable MATLAB v5 file.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        return {name: (tuple(int(s) for s in shape), cls) for name, shape, cls in scipy.io.whosmat(str(path))}
    except NotImplementedError as exc:
        raise DataError(
            f"{path} is a MATLAB v7.3 (HDF5) file; niwt reads v5 files: re-save it in MATLAB with "
            f"`save(..., '-v7')` or with scipy.io.savemat"
        ) from exc
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DataError(f"cannot read {path} as a MATLAB v5 file ({type(exc).__name__}: {exc}); "
                        f"download it again") from exc


def _load_mat(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path), variable_names=names)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DataError(f"cannot read fields {names} of {path} ({type(exc).__name__}: {exc}); "
                        f"download the file again") from exc


def _require(path: Path, header: dict, names: tuple[str, ...], fix: str) -> None:
    missing = [n for n in names if n not in header]
    if missing:
        raise DataError(
            f"{path} has no field(s) {missing} (fields present: {sorted(header)}); {fix}"
        )


def _vector_length(path: Path, name: str, shape: tuple[int, ...]) -> int:
    if len(shape) != 2 or min(shape) > 1:
        raise DataError(f"{path}: `{name}` must be a column vector (n x 1), the header says shape {shape}")
    return int(max(shape)) if min(shape) == 1 else 0


def _numeric(path: Path, name: str, value: object, dtype: type = np.float64) -> np.ndarray:
    """A 2-d real matrix field of a .mat file as ``dtype`` (a value beyond ``dtype``'s range becomes inf).

    Raises:
        DataError: naming the file and field, for text, cells, structs, complex numbers or another
            number of dimensions.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        what = {"U": "text", "S": "text", "O": "a cell array", "V": "a struct", "c": "complex numbers"}
        raise DataError(f"{path}: `{name}` must hold real numbers, got {what.get(arr.dtype.kind, arr.dtype)}")
    if arr.ndim != 2:
        raise DataError(f"{path}: `{name}` must be a 2-d matrix, got shape {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond ``dtype`` become inf: callers refuse them
        return np.ascontiguousarray(arr, dtype=dtype)


def _one_based(path: Path, name: str, value: np.ndarray, upper: int | None, unit: str) -> np.ndarray:
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


def _cell_strings(path: Path, name: str, value: np.ndarray) -> tuple[str, ...]:
    out = []
    for i, cell in enumerate(np.asarray(value, dtype=object).reshape(-1)):
        item = cell
        while isinstance(item, np.ndarray):
            if item.size != 1:
                if item.dtype.kind == "U" and item.ndim == 1:
                    item = "".join(item.tolist())
                    break
                raise DataError(f"{path}: `{name}` entry {i + 1} is not one string (shape {item.shape})")
            item = item.reshape(-1)[0]
        out.append(str(item).strip())
    return tuple(out)


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
        return _cell_strings(path, "allclasses_names", mat["allclasses_names"]), None
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
    _require(path, header, ("att", *LOC_FIELDS),
             "an xlsa17 split file holds att and the trainval/test_seen/test_unseen index fields; download it again")
    lengths = {name: _vector_length(path, name, header[name][0]) for name in (*LOC_FIELDS, *VAL_LOC_FIELDS)
               if name in header}
    att_shape = header["att"][0]
    if len(att_shape) != 2:
        raise DataError(f"{path}: `att` must be a 2-d (attributes x classes) matrix, got shape {att_shape}")
    present = [n for n in ("att", "original_att", "allclasses_names", *lengths) if n in header]
    mat = _load_mat(path, present)
    class_names, note = _class_names_for(path, header, mat)
    n_classes = len(class_names)
    att = _numeric(path, "att", mat["att"])
    if att.shape[1] != n_classes:
        raise DataError(
            f"{path}: `att` has shape {att.shape}, but there are {n_classes} classes; it must be "
            f"(attributes x classes) with one column per class of allclasses_names"
        )
    original = None
    if "original_att" in mat:
        original = _numeric(path, "original_att", mat["original_att"])
        if original.shape != att.shape:
            raise DataError(f"{path}: `original_att` has shape {original.shape}, `att` {att.shape}; they must agree")
    locs = {name: _one_based(path, name, mat[name], None, "image") for name in lengths}
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
    _require(path, header, ("labels",) + (("features",) if features else ()),
             f"{FEATURES_FILE} holds `features` (D x N) and `labels` (N x 1); download it again")
    n = _vector_length(path, "labels", header["labels"][0])
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
    mat = _load_mat(path, want)
    labels = _one_based(path, "labels", mat["labels"], n_classes, "class")
    feats = None
    if features:
        raw = _numeric(path, "features", mat.pop("features"), np.float32)
        feats = np.ascontiguousarray(raw.T if transpose else raw)
        if not np.isfinite(feats).all():
            raise DataError(f"{path}: `features` holds NaN or infinite values (or values beyond float32)")
    files = _cell_strings(path, "image_files", mat["image_files"]) if "image_files" in mat else None
    if files is not None and len(files) != n:
        raise DataError(f"{path}: `image_files` has {len(files)} entries for {n} labels")
    return FeaturesFile(path, labels, feats, files)


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
