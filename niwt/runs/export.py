"""A finished run's features written as an xlsa17 dataset folder (``res101.mat`` + ``att_splits.mat``).

The features are the run model's penultimate features (the input of its classifier), one column per
image of the run's dataset, so any GZSL code that reads the xlsa17 "proposed split" files (and
:func:`niwt.data.formats.xlsa17.load_xlsa17`) can be run on what the model learned::

    res101.mat       features [D x N] float32 (columns are images), labels [N x 1] 1-based rows of
                     allclasses_names, image_files [N x 1] cell of image names
    att_splits.mat   allclasses_names [C x 1] cell, att [d x C] (unit-norm columns), original_att [d x C],
                     trainval_loc, test_seen_loc, test_unseen_loc, train_loc, val_loc [n x 1] (1-based
                     rows of res101.mat)

Field names, shapes, dtypes and index conventions follow the published files: ``att`` and
``original_att`` are float64; the ``*_loc`` fields are uint16 (uint32 beyond 65,535 images) and
``labels`` the smallest unsigned integer type that holds the class count (uint8 for up to 255
classes, as AWA2's ``res101.mat``). ``train_loc`` / ``val_loc`` hold every image of the train /
validation classes (their ``trainval_loc`` and ``test_seen_loc`` images alike), as in the published
files. Every image of the dataset is written, source-class images included; those belong to no
``*_loc`` field, so xlsa17 readers ignore them.

The class vectors are the ones the run used (``run.knowledge``): ``original_att`` holds them as
they are and ``att`` with each column scaled to unit L2 norm. Knowledge dimension names and the
source-class split have no field in the format and are not written.

Both files are written under temporary names in the output folder and renamed once complete. The
output folder may be missing, empty, or hold only these two files (which are replaced); anything
else is refused, since niwt never deletes what it did not write.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from niwt.data.formats.xlsa17_files import FEATURES_FILE
from niwt.errors import DataError
from niwt.rundir import check_file_folder, write_files
from niwt.runs import load_run
from niwt.scores import model_features

__all__ = [
    "SPLITS_FILE",
    "EXPORT_FILES",
    "ExportedFeatures",
    "check_export_dir",
    "finite_features",
    "export_features",
    "export_run",
    "export_main",
]

logger = logging.getLogger(__name__)

SPLITS_FILE = "att_splits.mat"
EXPORT_FILES: tuple[str, ...] = (FEATURES_FILE, SPLITS_FILE)
"""The files an export writes, in the order they are renamed into place."""

_MAT_V5_LIMIT = 2**32 - 2**16  # one MATLAB v5 variable holds fewer than 2**32 bytes


@dataclass(frozen=True)
class ExportedFeatures:
    """What an export wrote.

    Attributes:
        out_dir: the output folder.
        features_file: ``out_dir/res101.mat``.
        splits_file: ``out_dir/att_splits.mat``.
        n_images: N, the feature columns.
        n_features: D, the feature width (the model's ``num_features``).
        n_classes: C, the classes of ``allclasses_names``.
        n_knowledge: d, the width of the class vectors.
    """

    out_dir: Path
    features_file: Path
    splits_file: Path
    n_images: int
    n_features: int
    n_classes: int
    n_knowledge: int

    def summary(self) -> str:
        """A few lines: the sizes and the two paths."""
        return (f"exported {self.n_images} images x {self.n_features} features, {self.n_classes} classes "
                f"({self.n_knowledge}-d class vectors)\n  {self.features_file}\n  {self.splits_file}")


def finite_features(model: Any, images: Any, batch_size: int = 256, device: Any = None) -> np.ndarray:
    """The classifier's input features of every image (:func:`niwt.scores.model_features`, the one
    feature extractor), as float32, checked to be finite.

    Raises:
        DataError: if ``batch_size`` is not a positive int or the model gives NaN / infinite features.
    """
    out = model_features(model, images, batch_size, device=device).astype(np.float32)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise DataError(f"the model gives NaN or infinite features (first at image {bad}); its weights are broken: "
                        "rerun the run")
    return out


def _index_dtype(largest: int, floor: type = np.uint8) -> type:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if np.dtype(dtype).itemsize >= np.dtype(floor).itemsize and largest <= np.iinfo(dtype).max:
            return dtype
    raise DataError(f"{largest} does not fit a 32-bit index field of an xlsa17 file")


def _cell(names: list[str] | tuple[str, ...]) -> np.ndarray:
    cell = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cell[i, 0] = str(name)
    return cell


def _image_names(data: Any, images: Any) -> list[str]:
    """Image file paths when the images are files (absolute, as the published files), else generated names."""
    dataset = getattr(images, "dataset", None)
    paths, root = getattr(dataset, "paths", None), getattr(dataset, "root", None)
    if paths is not None and root is not None and len(paths) == len(data.labels):
        base = Path(root).resolve()
        return [(base / p).as_posix() for p in paths]
    return [f"{data.name}/{data.class_names[c]}/{i + 1:06d}" for i, c in enumerate(data.labels.tolist())]


def _loc(idx: np.ndarray, dtype: type) -> np.ndarray:
    return (np.sort(np.asarray(idx, dtype=np.int64)) + 1).astype(dtype).reshape(-1, 1)


def _split_fields(data: Any, knowledge: np.ndarray) -> dict[str, np.ndarray]:
    n = int(data.labels.size)
    dtype = _index_dtype(n, np.uint16)
    original = np.ascontiguousarray(knowledge.T, dtype=np.float64)
    norms = np.linalg.norm(original, axis=0, keepdims=True)
    att = np.divide(original, norms, out=np.zeros_like(original), where=norms > 0)
    train = np.flatnonzero(np.isin(data.labels, data.train_classes))
    val = np.flatnonzero(np.isin(data.labels, data.val_classes))
    return {  # in the order of the published AWA2 / SUN files
        "allclasses_names": _cell(data.class_names),
        "att": att,
        "original_att": original,
        "test_seen_loc": _loc(data.test_seen_idx, dtype),
        "test_unseen_loc": _loc(data.test_unseen_idx, dtype),
        "train_loc": _loc(train, dtype),
        "trainval_loc": _loc(data.trainval_idx, dtype),
        "val_loc": _loc(val, dtype),
    }


def _check_run(run: Any, data: Any, images: Any, knowledge: np.ndarray) -> None:
    n = int(data.labels.size)
    if tuple(run.class_names) != tuple(data.class_names):
        if getattr(run, "taught_classes", ()):
            raise DataError(f"run {run.path} was taught {', '.join(run.taught_classes)}, which its dataset has no "
                            "image of; export the run it was taught from")
        raise DataError(f"the dataset of run {run.path} has other classes than the run recorded; "
                        "point data.root at the run's dataset")
    if int(images.shape[0]) != n:
        raise DataError(f"the dataset of run {run.path} has {n} labels but {int(images.shape[0])} images")
    if knowledge.ndim != 2 or knowledge.shape[0] != len(data.class_names):
        raise DataError(f"run {run.path}: the class vectors have shape {knowledge.shape}, expected "
                        f"({len(data.class_names)}, d); the run is damaged: rerun it")
    if not np.isfinite(knowledge).all():
        raise DataError(f"run {run.path}: the class vectors hold NaN or infinite values; rerun it")
    if (knowledge == -1).any():
        logger.warning("run %s: %d class-vector entries equal -1, which xlsa17 readers take for a missing value "
                       "in original_att (att is unaffected)", run.path, int((knowledge == -1).sum()))


def check_export_dir(out_dir: str | Path) -> Path:
    """Check that ``out_dir`` may receive an export (missing, empty, or holding only the export files).

    Raises:
        RunDirectoryError: ``out_dir`` is a file, one of the export names is a folder, or it holds
            anything else (named in the message).
    """
    return check_file_folder(out_dir, EXPORT_FILES, "export")


def _write_mat(path: Path, fields: dict[str, np.ndarray]) -> None:
    import scipy.io

    with open(path, "wb") as handle:
        scipy.io.savemat(handle, fields, format="5", oned_as="column", do_compression=False)
        handle.flush()
        os.fsync(handle.fileno())


def export_run(run: Any, out_dir: str | Path, *, batch_size: int = 256, device: Any = None) -> ExportedFeatures:
    """:func:`export_features`, returning what was written (sizes and paths; ``summary()`` says it in words).

    Raises:
        RunDirectoryError, DataError: as :func:`export_features`.
    """
    out = check_export_dir(out_dir)
    data, images = run.dataset()
    knowledge = np.asarray(run.knowledge, dtype=np.float64)
    _check_run(run, data, images, knowledge)
    n_classes = len(data.class_names)
    logger.info("extracting the features of %d images from run %s", int(data.labels.size), run.path)
    features = finite_features(run.model, images, batch_size, device)
    if features.nbytes >= _MAT_V5_LIMIT:
        raise DataError(f"the features of run {run.path} take {features.nbytes / 2**30:.1f} GiB, more than one "
                        "MATLAB v5 variable holds (4 GiB); export a dataset with fewer images")
    feature_fields = {
        "features": np.ascontiguousarray(features.T),
        "labels": (data.labels + 1).astype(_index_dtype(n_classes)).reshape(-1, 1),
        "image_files": _cell(_image_names(data, images)),
    }
    check_export_dir(out)  # nothing appeared while the features were computed
    split_fields = _split_fields(data, knowledge)
    write_files(out, {FEATURES_FILE: lambda path: _write_mat(path, feature_fields),
                      SPLITS_FILE: lambda path: _write_mat(path, split_fields)})
    record = ExportedFeatures(out, out / FEATURES_FILE, out / SPLITS_FILE, int(features.shape[0]),
                              int(features.shape[1]), n_classes, int(knowledge.shape[1]))
    logger.info("%s", record.summary())
    return record


def export_features(run: Any, out_dir: str | Path, *, batch_size: int = 256, device: Any = None) -> Path:
    """Write a run's penultimate features and splits as an xlsa17 folder (``res101.mat``, ``att_splits.mat``).

    Args:
        run: a :class:`niwt.runs.LoadedRun`; its dataset is opened from its config.
        out_dir: the folder to write; missing, empty or holding only the two export files.
        batch_size: images per forward pass.
        device: where the model runs; its own device when ``None``.

    Returns:
        ``out_dir``.

    Raises:
        RunDirectoryError: ``out_dir`` holds anything but the two export files, or is a file.
        DataError: the run's dataset no longer matches the run, or the model gives non-finite features.
    """
    return export_run(run, out_dir, batch_size=batch_size, device=device).out_dir


def export_main(run_dir: str | Path, out_dir: str | Path, *, batch_size: int = 256, device: object = None) -> str:
    """``niwt export-features RUN OUT``: load the run, export it, and say what was written.

    Args:
        run_dir: a run directory of ``niwt run`` / ``demo`` / ``compare``.
        out_dir: the folder to write (see :func:`export_features`).
        batch_size: images per forward pass.
        device: where the model runs; its own device when ``None``.

    Returns:
        A short summary: N images, D features, C classes and the two paths.

    Raises:
        RunFormatError: ``run_dir`` is not a complete run with a trained model.
        RunDirectoryError, DataError: as :func:`export_features`.
    """
    return export_run(load_run(run_dir), out_dir, batch_size=batch_size, device=device).summary()
