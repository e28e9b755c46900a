"""The file formats by name: detect one from a folder's contents and load it.

``FORMATS`` is the one list of format names; :func:`load_dataset` dispatches to
``load_awa2`` / ``load_cub`` / ``load_xlsa17`` / ``load_folder``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from niwt.data.files.text import is_dir, is_file
from niwt.data.loaded import LoadedDataset
from niwt.errors import ConfigError, DataError

__all__ = ["FORMATS", "detect_format", "format_loader", "load_dataset"]

FORMATS: tuple[str, ...] = ("xlsa17", "awa2", "cub", "folder")
"""Format names, in the order :func:`detect_format` tries them."""


def format_loader(format: str) -> Callable[..., LoadedDataset]:
    """The loader function of ``format``.

    Raises:
        ConfigError: for an unknown format name.
    """
    if format == "xlsa17":
        from niwt.data.formats.xlsa17 import load_xlsa17 as loader
    elif format == "awa2":
        from niwt.data.formats.awa2 import load_awa2 as loader
    elif format == "cub":
        from niwt.data.formats.cub import load_cub as loader
    elif format == "folder":
        from niwt.data.formats.folder import load_folder as loader
    else:
        raise ConfigError(f"unknown dataset format {format!r}; valid: {list(FORMATS)}")
    return loader


def detect_format(path: Path | str) -> str:
    """The format of a dataset folder, from the files it holds.

    * ``xlsa17``: ``att_splits.mat`` or ``sent_splits.mat`` (or ``path`` is such a file);
    * ``awa2``: ``classes.txt`` and ``predicate-matrix-continuous.txt`` (here or in ``Animals_with_Attributes2/``);
    * ``cub``: ``images.txt``, ``image_class_labels.txt``, ``classes.txt`` (here or in ``CUB_200_2011/``);
    * ``folder``: a ``*.csv`` class table.

    Raises:
        DataError: if the path does not exist or matches no format.
    """
    from niwt.data.formats.awa2 import AWA2_FOLDER
    from niwt.data.formats.cub import CUB_FOLDER
    from niwt.data.formats.xlsa17 import SPLIT_FILES

    path = Path(path)
    if not (is_file(path) or is_dir(path)):
        raise DataError(f"dataset path not found: {path}")
    if is_file(path):
        if path.suffix == ".mat":
            return "xlsa17"
        raise DataError(f"{path} is a file; point at the dataset folder (or an xlsa17 *_splits.mat file)")
    if any((path / name).is_file() for name in SPLIT_FILES):
        return "xlsa17"
    for folder in (path, path / AWA2_FOLDER):
        if (folder / "classes.txt").is_file() and (folder / "predicate-matrix-continuous.txt").is_file():
            return "awa2"
    for folder in (path, path / CUB_FOLDER):
        if all((folder / f).is_file() for f in ("images.txt", "image_class_labels.txt", "classes.txt")):
            return "cub"
    if any(path.glob("*.csv")):
        return "folder"
    raise DataError(
        f"cannot tell the format of {path}: expected att_splits.mat / sent_splits.mat (xlsa17), classes.txt + "
        f"predicate-matrix-continuous.txt (AwA2), images.txt + image_class_labels.txt + classes.txt (CUB-200-2011), "
        f"or a classes.csv beside one image folder per class (folder)"
    )


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
