"""A folder of one's own classes: one sub-folder of images per class and one CSV describing them.

Layout::

    my_dataset/
        classes.csv          class,split,<attribute columns...>[,description]
        zebra/  *.jpg|*.png ...
        okapi/  ...

``split`` is ``seen`` or ``unseen``; every other column except ``description`` and ``index`` is
a numeric attribute. An optional ``index`` column says which output of an existing classifier
each seen class is (``niwt adopt``): an integer from 0 for every seen class, each once, empty for
the unseen ones. A dataset may have attribute columns, a ``description`` column, or both. Validation
classes are drawn among the seen ones with a fixed seed, and recorded in the notes.

:func:`load_folder` loads the folder; :func:`survey_folder` reports it to ``inspect`` with the same
functions and defaults.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from niwt.data.files.folders import read_class_folders
from niwt.data.files.images import ImageTransform
from niwt.data.files.text import check_relative_path, is_dir, is_file, read_text
from niwt.data.formats import loader_defaults
from niwt.data.formats.assemble import assemble_image_dataset
from niwt.data.formats.splits import (
    DEFAULT_TEST_SEEN_FRACTION,
    DEFAULT_VAL_FRACTION,
    ClassSplit,
    check_draws,
    draw_val_classes,
)
from niwt.data.formats.survey import Survey, first
from niwt.data.loaded import LoadedDataset
from niwt.errors import DataError
from niwt.messages import quote, quote_names

__all__ = ["CSV_NAME", "SPLIT_VALUES", "ClassTable", "is_class_folder", "find_class_csv", "read_class_table",
           "folder_image_list", "folder_class_split", "load_folder", "survey_folder"]

logger = logging.getLogger(__name__)

CSV_NAME = "classes.csv"
SPLIT_VALUES: tuple[str, ...] = ("seen", "unseen")
_RESERVED = ("class", "split", "description", "index")


def is_class_folder(path: Path | str) -> bool:
    """Whether ``path`` is a folder holding a ``*.csv`` file (a class table, presumably)."""
    return is_dir(path) and any(Path(path).glob("*.csv"))


def find_class_csv(root: Path) -> Path:
    """``classes.csv`` in ``root``, else the only ``*.csv`` there.

    Raises:
        DataError: if there is none, or several and none is ``classes.csv``.
    """
    root = Path(root)
    if is_file(root / CSV_NAME):
        return root / CSV_NAME
    found = sorted(root.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"no CSV file in {root}; add {CSV_NAME} with columns class, split and attribute columns "
                        f"and/or a description column")
    raise DataError(f"{root} holds several CSV files {[p.name for p in found]}; name the class table {CSV_NAME} "
                    f"or pass csv_file=")


@dataclass(frozen=True, eq=False)
class ClassTable:
    """The class CSV, checked.

    Attributes:
        path: the CSV file.
        class_names: class names in row order.
        lines: the CSV line of each class.
        splits: ``"seen"`` / ``"unseen"`` per class.
        attribute_names: the numeric columns.
        attributes: ``[C, A]`` values (``A`` may be 0).
        descriptions: per class its description, or ``None`` without a description column.
        indices: per class its classifier output (``None`` for an unseen class), or ``None``
            without an ``index`` column.
    """

    path: Path
    class_names: tuple[str, ...]
    lines: tuple[int, ...]
    splits: tuple[str, ...]
    attribute_names: tuple[str, ...]
    attributes: np.ndarray
    descriptions: tuple[str, ...] | None
    indices: tuple[int | None, ...] | None = None


def _header(path: Path, fieldnames: list[str] | None) -> tuple[dict[str, str], list[str]]:
    if not fieldnames:
        raise DataError(f"{path} is empty; its first line must name the columns (class, split, ...)")
    columns = [c.strip() for c in fieldnames]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"{path}, line 1: column(s) {dupes} appear more than once")
    if "" in columns:
        raise DataError(f"{path}, line 1: column {columns.index('') + 1} has no name")
    special = {c.lower(): c for c in columns if c.lower() in _RESERVED}
    for need in ("class", "split"):
        if need not in special:
            raise DataError(f"{path}, line 1: no `{need}` column (columns: {columns}); the table needs class and "
                            f"split (seen/unseen) columns")
    attributes = [c for c in columns if c.lower() not in _RESERVED]
    if not attributes and "description" not in special:
        raise DataError(f"{path}: no knowledge about the classes: add numeric attribute columns and/or a "
                        f"description column")
    return special, attributes


def read_class_table(path: Path) -> ClassTable:
    """Read and check the class CSV.

    Raises:
        DataError: naming row and column, for an empty or repeated class, a missing or unknown
            split, an empty or non-numeric attribute value, an empty description (text only), no
            seen or no unseen class.
    """
    path = Path(path)
    handle = io.StringIO(read_text(path, newlines=False), newline="")
    names: list[str] = []
    lines: list[int] = []
    splits: list[str] = []
    values: list[list[float]] = []
    texts: list[str] = []
    outputs: list[int | None] = []
    first_output: dict[int, tuple[int, str]] = {}
    first: dict[str, int] = {}
    with handle:
        reader = csv.DictReader(handle)
        try:
            special, attributes = _header(path, reader.fieldnames)
            for row in reader:
                if None in row:
                    raise DataError(f"{path}, line {reader.line_num}: more values than the header has columns; "
                                    f"quote values that contain commas")
                raw = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
                line = reader.line_num
                if not any(raw.values()):
                    continue
                name = raw[special["class"]]
                if not name:
                    raise DataError(f"{path}, line {line}: empty `class`; name the class (its image folder's name)")
                check_relative_path(name, path, line)
                if "/" in name.replace("\\", "/") or name == ".":
                    raise DataError(f"{path}, line {line}: class {quote(name)} must be a folder name "
                                    f"(not '.', without '/')")
                if name in first:
                    raise DataError(f"{path}, line {line}: class {quote(name)} already has a row (line {first[name]})")
                first[name] = line
                split = raw[special["split"]].lower()
                if split not in SPLIT_VALUES:
                    got = f"got {quote(raw[special['split']])}" if split else "it is empty"
                    raise DataError(f"{path}, line {line}, column `{special['split']}` (class {quote(name)}): the "
                                    f"split must be 'seen' or 'unseen', {got}")
                values.append([_number(path, line, col, raw[col], name) for col in attributes])
                if "description" in special:
                    text = raw[special["description"]]
                    if not text and not attributes:
                        raise DataError(f"{path}, line {line}: class {quote(name)} has an empty description and "
                                        f"the table has no attribute columns; describe every class")
                    texts.append(text)
                if "index" in special:
                    outputs.append(_output(path, line, special["index"], raw[special["index"]], name, split,
                                           first_output))
                names.append(name)
                lines.append(line)
                splits.append(split)
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: not a valid CSV line ({exc})") from exc
    if not names:
        raise DataError(f"{path} lists no class; add one row per class")
    for needed in SPLIT_VALUES:
        if needed not in splits:
            raise DataError(f"{path}: no class has split '{needed}'; GZSL needs seen and unseen classes")
    matrix = np.asarray(values, dtype=np.float64).reshape(len(names), len(attributes))
    return ClassTable(path, tuple(names), tuple(lines), tuple(splits), tuple(attributes), matrix,
                      tuple(texts) if "description" in special else None,
                      tuple(outputs) if "index" in special else None)


def _output(path: Path, line: int, column: str, text: str, name: str, split: str,
            first: dict[int, tuple[int, str]]) -> int | None:
    """The classifier output of one row's ``index`` cell (None for an unseen class); ``first``
    records the outputs taken so far, so that one taken twice is named with both lines."""
    where = f"{path}, line {line}, column `{column}` (class {quote(name)})"
    if split == "unseen":
        if text:
            raise DataError(f"{where}: an unseen class has no output of the classifier; leave its index empty")
        return None
    if not text:
        raise DataError(f"{where}: empty index; give every seen class the classifier output it is (0, 1, ...)")
    if not text.isdigit():
        raise DataError(f"{where}: the index must be a whole number >= 0 (a classifier output), got {quote(text)}")
    output = int(text)
    if output in first:
        other_line, other = first[output]
        raise DataError(f"{where}: output {output} is already class {quote(other)}'s (line {other_line}); each "
                        f"output is one class")
    first[output] = (line, name)
    return output


def _number(path: Path, line: int, column: str, text: str, name: str) -> float:
    if not text:
        raise DataError(f"{path}, line {line}, column `{column}` (class {quote(name)}): empty value; every class "
                        f"needs a number in every attribute column")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}, line {line}, column `{column}` (class {quote(name)}): {quote(text)} is not a "
                        f"number; attribute columns hold numbers (rename a text column to `description`)") from None
    if not np.isfinite(value):
        raise DataError(f"{path}, line {line}, column `{column}` (class {quote(name)}): {quote(text)} is not a "
                        f"finite number")
    return value


def folder_image_list(root: Path, table: ClassTable) -> tuple[list[str], np.ndarray]:
    """The images of every class folder and their labels.

    Raises:
        DataError: for a CSV class without a folder, or a folder without a CSV row.
    """
    root = Path(root)
    found = read_class_folders(root, table.class_names)
    for name, line in zip(table.class_names, table.lines):
        if name in found.missing:
            raise DataError(f"{table.path}, line {line}: class {quote(name)} has no image folder in {root}; "
                            f"create it with the class's images or remove the row")
    if found.extra:
        raise DataError(f"folder(s) {quote_names(found.extra)} in {root} have no row in {table.path.name}; add a "
                        f"row per class (class, split, attributes) or move the folder out")
    return list(found.paths), found.labels


def folder_class_split(table: ClassTable, *, val_fraction: float, seed: int) -> ClassSplit:
    """Seen / unseen classes from the table's ``split`` column; validation classes drawn among the seen ones."""
    splits = np.asarray(table.splits)
    seen = np.flatnonzero(splits == "seen")
    train, val = draw_val_classes(seen, val_fraction, seed)
    return ClassSplit(seen, np.flatnonzero(splits == "unseen"), train, val)


def load_folder(
    path: Path | str,
    *,
    csv_file: Path | str | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_seen_fraction: float = DEFAULT_TEST_SEEN_FRACTION,
    seed: int = 0,
    transform: ImageTransform | None = None,
    check_images: bool = True,
    name: str | None = None,
) -> LoadedDataset:
    """Load a folder of one's own classes (see the module docstring for the layout).

    Args:
        path: the dataset folder.
        csv_file: the class table (``classes.csv`` or the only CSV in ``path`` when ``None``).
        val_fraction: share of seen classes drawn as validation classes.
        test_seen_fraction: share of each seen class's images held out for ``test_seen``.
        seed: seed of both draws.
        transform: image preprocessing (``ImageTransform()`` when ``None``).
        check_images: open every image first (missing: error; a few unreadable: warning, left out).
        name: the dataset name (the folder name when ``None``).

    Raises:
        DataError: for a malformed table, a class without folder, a folder without row, no
            seen / unseen class, a class without images.
        ConfigError: for a bad argument.
    """
    root = Path(path)
    if not is_dir(root):
        raise DataError(f"dataset folder not found: {root}")
    val_fraction, test_seen_fraction, seed = check_draws(val_fraction, test_seen_fraction, seed)
    table = read_class_table(Path(csv_file) if csv_file is not None else find_class_csv(root))
    paths, labels = folder_image_list(root, table)
    split = folder_class_split(table, val_fraction=val_fraction, seed=seed)
    val_names = ", ".join(table.class_names[c] for c in split.val)
    notes = [f"validation classes drawn among the {split.seen.size} seen classes (seed {seed}, fraction "
             f"{val_fraction}): {val_names or 'none (a single seen class)'}"]
    if not table.attribute_names:
        notes.append(f"knowledge: descriptions only ({table.path.name} has no attribute columns)")
    descriptions = () if table.descriptions is None else tuple((t,) if t else () for t in table.descriptions)
    return assemble_image_dataset(
        name=name or root.name, format="folder", root=root, paths=paths, labels=labels,
        class_names=table.class_names, knowledge=table.attributes, knowledge_names=table.attribute_names,
        split=split, listed_in="the class folders", test_seen_fraction=test_seen_fraction, seed=seed,
        transform=transform, check_images=check_images, descriptions=descriptions, notes=notes,
    )


def survey_folder(s: Survey, path: Path, check: bool, split_dir: Path | None) -> None:
    """What ``inspect`` reports of a folder of one's own classes: counts, problems and notes (see :class:`Survey`).

    The table is read, the folders listed and the split drawn as :func:`load_folder` does by default;
    every missing or extra folder is a problem. ``split_dir`` is not used (the table has the split).
    """
    defaults = loader_defaults(load_folder)
    table = s.attempt(lambda: read_class_table(find_class_csv(path)))
    if table is None:
        return
    split = folder_class_split(table, val_fraction=defaults["val_fraction"], seed=defaults["seed"])
    s.values.update(n_classes=len(table.class_names), n_attributes=len(table.attribute_names))
    s.class_split(replace(split, notes=(f"validation classes as the loader draws them by default (seed "
                                        f"{defaults['seed']}, fraction {defaults['val_fraction']})",)))
    if table.descriptions is not None:
        s.notes.append(f"{sum(bool(t) for t in table.descriptions)} class(es) have a description")
    found = read_class_folders(path, table.class_names)
    for name, line in zip(table.class_names, table.lines):
        if name in found.missing:
            s.problems.append(f"{table.path}, line {line}: class {quote(name)} has no image folder")
    if found.extra:
        s.problems.append(f"folders without a row in {table.path.name}: {len(found.extra)} ({first(found.extra)})")
    s.image_files(path, table.class_names, found.paths, found.labels, split, check=check,
                  listed_in="the class folders", test_seen_fraction=defaults["test_seen_fraction"],
                  seed=defaults["seed"])
