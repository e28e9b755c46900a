"""The dataset kinds by name: each one's config class and loader; detect a file format and load it.

:data:`KINDS` is the one list of dataset kinds (a run's ``[data] kind``): the shapes world, made in
memory, and the four file formats. Every other list derives from it: :data:`DATA_KINDS` (kind ->
config class, for ``niwt.config``), :data:`FORMATS` (the file formats, in the order
:func:`detect_format` tries them), the loader of a format (:func:`format_loader`) and its survey for
``inspect``. :func:`load_dataset` dispatches to ``load_awa2`` / ``load_cub`` /
``load_xlsa17`` / ``load_folder``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from niwt.data.dataconfig import AwA2DataConfig, CUBDataConfig, FolderDataConfig, Xlsa17DataConfig
from niwt.data.files.text import is_dir, is_file
from niwt.data.formats.awa2 import is_awa2, load_awa2, survey_awa2
from niwt.data.formats.cub import is_cub, load_cub, survey_cub
from niwt.data.formats.folder import is_class_folder, load_folder, survey_folder
from niwt.data.formats.survey import Survey
from niwt.data.formats.xlsa17 import load_xlsa17, survey_xlsa17
from niwt.data.formats.xlsa17_files import is_xlsa17
from niwt.data.loaded import LoadedDataset
from niwt.data.shapes import ShapesConfig, make_shapes
from niwt.errors import ConfigError, DataError

__all__ = ["DatasetKind", "KINDS", "DATA_KINDS", "DataConfig", "FORMATS", "detect_format", "format_loader",
           "load_dataset"]


@dataclass(frozen=True)
class DatasetKind:
    """One kind of dataset a run can use.

    Attributes:
        config: the class of its ``[data]`` table; the default of its ``kind`` field is the kind's name.
        make: shapes: ``make(config) -> ZSLData``; a file format: its loader ``make(path, **options)
            -> LoadedDataset``.
        detect: a file format: whether a path holds a dataset of this format; ``None`` for a dataset
            made in memory.
        marks: a file format: the files that tell it, for the message of a folder that matches none.
        detect_order: a file format: its place in :func:`detect_format`'s tries (the most specific
            marks first).
        survey: a file format: what ``inspect`` reports of a folder, ``survey(survey, path, check_images,
            split_dir)`` filling a :class:`~niwt.data.formats.survey.Survey`.
    """

    config: type
    make: Callable[..., object]
    detect: Callable[[Path], bool] | None = None
    marks: str = ""
    detect_order: int = 0
    survey: Callable[[Survey, Path, bool, Path | None], None] | None = None

    @property
    def name(self) -> str:
        return next(f.default for f in dataclasses.fields(self.config) if f.name == "kind")

    @property
    def from_files(self) -> bool:
        return self.detect is not None


KINDS: dict[str, DatasetKind] = {kind.name: kind for kind in (
    DatasetKind(ShapesConfig, make_shapes),
    DatasetKind(AwA2DataConfig, load_awa2, is_awa2, "classes.txt + predicate-matrix-continuous.txt (AwA2)", 1,
                survey_awa2),
    DatasetKind(CUBDataConfig, load_cub, is_cub, "images.txt + image_class_labels.txt + classes.txt (CUB-200-2011)",
                2, survey_cub),
    DatasetKind(Xlsa17DataConfig, load_xlsa17, is_xlsa17, "att_splits.mat / sent_splits.mat (xlsa17)", 0,
                survey_xlsa17),
    DatasetKind(FolderDataConfig, load_folder, is_class_folder,
                "a classes.csv beside one image folder per class (folder)", 3, survey_folder),
)}
"""The datasets a run can use, by ``[data] kind``, in the order messages list them."""

DATA_KINDS: dict[str, type] = {name: kind.config for name, kind in KINDS.items()}
"""The config class of every kind, by ``[data] kind``."""

DataConfig = functools.reduce(operator.or_, DATA_KINDS.values())
"""The type of a run's ``[data]`` table: the union of the config classes."""

FORMATS: tuple[str, ...] = tuple(sorted((name for name, kind in KINDS.items() if kind.from_files),
                                        key=lambda name: KINDS[name].detect_order))
"""Format names, in the order :func:`detect_format` tries them."""


def format_loader(format: str) -> Callable[..., LoadedDataset]:
    """The loader function of ``format``.

    Raises:
        ConfigError: for an unknown format name.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown dataset format {format!r}; valid: {list(FORMATS)}")
    return KINDS[format].make  # type: ignore[return-value]


def detect_format(path: Path | str) -> str:
    """The format of a dataset folder, from the files it holds (the formats tried in :data:`FORMATS` order).

    * ``xlsa17``: ``att_splits.mat`` or ``sent_splits.mat`` (or ``path`` is such a file);
    * ``awa2``: ``classes.txt`` and ``predicate-matrix-continuous.txt`` (here or in ``Animals_with_Attributes2/``);
    * ``cub``: ``images.txt``, ``image_class_labels.txt``, ``classes.txt`` (here or in ``CUB_200_2011/``);
    * ``folder``: a ``*.csv`` class table.

    Raises:
        DataError: if the path does not exist or matches no format.
    """
    path = Path(path)
    if not (is_file(path) or is_dir(path)):
        raise DataError(f"dataset path not found: {path}")
    for name in FORMATS:
        if KINDS[name].detect(path):  # type: ignore[misc]
            return name
    if is_file(path):
        raise DataError(f"{path} is a file; point at the dataset folder (or an xlsa17 *_splits.mat file)")
    marks = [KINDS[name].marks for name in FORMATS]
    raise DataError(f"cannot tell the format of {path}: expected {', '.join(marks[:-1])}, or {marks[-1]}")


def load_dataset(path: Path | str, format: str | None = None, **options: object) -> LoadedDataset:
    """Load a dataset of any supported format.

    Args:
        path: the dataset folder (or file, for xlsa17).
        format: one of :data:`FORMATS`; detected from the folder when ``None``.
        **options: keyword arguments of that format's loader (``seed=``, ``split_dir=``...).

    Raises:
        ConfigError: for an unknown format or an option the loader does not take.
        DataError: from the loader.
    """
    fmt = format if format is not None else detect_format(path)
    loader = format_loader(fmt)
    accepted = [p for p in inspect.signature(loader).parameters if p != "path" and p != "folder"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"option(s) {unknown} are not options of the {fmt} loader; valid: {accepted}")
    return loader(path, **options)
