"""Dataset folders: the images of ``root/<class>/`` per class, the folders that are no class, marker files.

The AwA2 release (``JPEGImages/<class>/``), a folder of one's own classes and ``inspect`` list their
images here, so a folder is read one way wherever it is read. What a missing class folder or an
extra folder means (an error, a note, a problem of a report) is the caller's decision.
:func:`marked_folder` finds a release folder by the files it must hold (here or one level down).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from niwt.data.files.images import list_image_files
from niwt.data.files.text import is_dir, is_file

__all__ = ["ClassFolders", "read_class_folders", "marked_folder"]


@dataclass(frozen=True, eq=False)
class ClassFolders:
    """What :func:`read_class_folders` found under a root.

    Attributes:
        paths: per image, its path ``<class>/<file>`` relative to the root, class by class in
            class order, files sorted by name.
        labels: per image, its class index.
        missing: the classes without a folder (in class order); they have no image in ``paths``.
        extra: the folders of the root that are not classes (sorted).
    """

    paths: tuple[str, ...]
    labels: np.ndarray
    missing: tuple[str, ...]
    extra: tuple[str, ...]


def read_class_folders(root: Path | str, class_names: Sequence[str], *, skip_hidden: bool = True) -> ClassFolders:
    """List the image files of ``root/<class>/`` for every class whose folder exists.

    Args:
        root: the folder holding one sub-folder per class.
        class_names: the classes, in label order.
        skip_hidden: leave folders whose name starts with ``.`` out of ``extra``.

    Returns:
        The images with their labels, the classes without a folder and the folders that are not classes.
    """
    root = Path(root)
    paths: list[str] = []
    labels: list[int] = []
    missing: list[str] = []
    for c, name in enumerate(class_names):
        if not is_dir(root / name):
            missing.append(name)
            continue
        files = list_image_files(root / name)
        paths.extend(f"{name}/{f.name}" for f in files)
        labels.extend([c] * len(files))
    known = set(class_names)
    extra = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and not (skip_hidden and p.name.startswith(".")) and p.name not in known)
    return ClassFolders(tuple(paths), np.asarray(labels, dtype=np.int64), tuple(missing), tuple(extra))


def marked_folder(path: Path | str, markers: Sequence[str], *, inside: str) -> Path | None:
    """``path`` or ``path / inside``, the first that holds every file of ``markers``; ``None`` when neither does.

    A release unpacks into a folder of its own (``Animals_with_Attributes2/``): either it or its parent
    may be given.
    """
    path = Path(path)
    for candidate in (path, path / inside):
        if all(is_file(candidate / f) for f in markers):
            return candidate
    return None
