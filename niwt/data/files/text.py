"""Readers of the whitespace-separated text files the benchmarks ship, with errors that name file and line.

Every reader raises :class:`~niwt.errors.DataError` naming the file, the 1-based line and what to
change, never a raw ``ValueError`` or ``IndexError`` from parsing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from niwt.errors import DataError
from niwt.messages import quote

__all__ = [
    "read_text",
    "read_lines",
    "read_id_names",
    "read_id_pairs",
    "read_name_list",
    "read_matrix",
    "check_relative_path",
    "is_file",
    "is_dir",
]

logger = logging.getLogger(__name__)

def is_file(path: Path | str) -> bool:
    """Whether ``path`` is a file; ``False`` (not an exception) for a name the system refuses.

    A path built from a damaged file may be too long or hold a NUL byte; ``Path.is_file`` raises
    ``OSError`` / ``ValueError`` for those, which here count as "no such file".
    """
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path | str) -> bool:
    """Whether ``path`` is a folder; ``False`` for a name the system refuses (see :func:`is_file`)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def read_text(path: Path, *, hint: str = "", newlines: bool = True) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped).

    Args:
        path: the file.
        hint: appended to the "not found" message (where the file comes from).
        newlines: turn ``\\r\\n`` and ``\\r`` line ends into ``\\n`` (off for the csv module, which reads them itself).

    Raises:
        DataError: if the file is missing or unreadable, or holds bytes that are not UTF-8 (the line is named).
    """
    path = Path(path)
    if not is_file(path):
        raise DataError(f"file not found: {path}" + (f"; {hint}" if hint else ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text ({exc.reason}); re-save the file "
            f"as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if newlines else text


def read_lines(path: Path, *, hint: str = "") -> list[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file as ``(line_number, stripped_text)`` pairs.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only, so line numbers are those an editor shows.

    Args:
        path: the file.
        hint: appended to the "not found" message (where the file comes from).

    Raises:
        DataError: if the file is missing or is not UTF-8 text.
    """
    text = read_text(path, hint=hint)
    return [(i, line.strip()) for i, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _parse_int(token: str, path: Path, line: int, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise DataError(f"{path}, line {line}: {what} must be an integer, got {quote(token)}") from None


def read_id_pairs(path: Path, *, what: str, hint: str = "") -> list[tuple[int, str, int]]:
    """Lines ``<integer id> <value>`` as ``(id, value, line_number)``, ids 1-based and unique.

    The value is the rest of the line after the first run of whitespace (it may hold spaces).

    Raises:
        DataError: for a missing file, a line without a value, a non-integer id, an id below 1 or
            a repeated id.
    """
    rows: list[tuple[int, str, int]] = []
    seen: dict[int, int] = {}
    for line, text in read_lines(path, hint=hint):
        parts = text.split(None, 1)
        if len(parts) != 2:
            raise DataError(f"{path}, line {line}: expected '<id> <{what}>', got {quote(text)}")
        ident = _parse_int(parts[0], path, line, "the id")
        if ident < 1:
            raise DataError(f"{path}, line {line}: ids are 1-based, got {ident}; renumber the file from 1")
        if ident in seen:
            raise DataError(f"{path}, line {line}: id {ident} already appears on line {seen[ident]}")
        seen[ident] = line
        rows.append((ident, parts[1].strip(), line))
    return rows


def read_id_names(path: Path, *, what: str, hint: str = "") -> tuple[str, ...]:
    """A ``<id> <name>`` list (``classes.txt``, ``predicates.txt``) as names ordered by id 1..n.

    Raises:
        DataError: if the file is empty, an id is missing from 1..n, or a name repeats.
    """
    rows = read_id_pairs(path, what=what, hint=hint)
    if not rows:
        raise DataError(f"{path} is empty; it must list one '<id> <{what}>' per line")
    by_id = {ident: (name, line) for ident, name, line in rows}
    missing = sorted(set(range(1, len(rows) + 1)) - set(by_id))
    if missing:
        raise DataError(f"{path}: ids must run from 1 to {len(rows)} without gaps; id {missing[0]} is missing")
    names = tuple(by_id[i][0] for i in range(1, len(rows) + 1))
    first: dict[str, int] = {}
    for name, line in (by_id[i] for i in range(1, len(rows) + 1)):
        if name in first:
            raise DataError(f"{path}, line {line}: {what} {quote(name)} already appears on line {first[name]}")
        first[name] = line
    return names


def read_name_list(path: Path, *, what: str = "class") -> list[tuple[str, int]]:
    """A one-name-per-line list (xlsa17 ``trainvalclasses.txt``) as ``(name, line_number)`` pairs.

    A line ``<id> <name>`` is accepted too (the name is the last token).

    Raises:
        DataError: if the file is missing or a name repeats.
    """
    out: list[tuple[str, int]] = []
    first: dict[str, int] = {}
    for line, text in read_lines(path):
        name = text.split()[-1]
        if name in first:
            raise DataError(f"{path}, line {line}: {what} {quote(name)} already appears on line {first[name]}")
        first[name] = line
        out.append((name, line))
    return out


def read_matrix(
    path: Path,
    *,
    row_names: Sequence[str],
    col_names: Sequence[str] | None,
    rows_file: str,
    cols_file: str,
) -> np.ndarray:
    """A whitespace-separated matrix with one row per class (``predicate-matrix-continuous.txt``).

    Args:
        path: the matrix file.
        row_names: the class names its rows must match, in order (from ``rows_file``).
        col_names: the attribute names its columns must match (from ``cols_file``), or ``None``
            to take the width of the first row.
        rows_file: name of the file listing the rows, for messages.
        cols_file: name of the file listing the columns, for messages.

    Returns:
        A ``[len(row_names), n_cols]`` float64 array.

    Raises:
        DataError: for a non-numeric value (line and column named), a row of the wrong width, a
            class of ``rows_file`` with no row, or extra rows.
    """
    lines = read_lines(path)
    width = len(col_names) if col_names is not None else (len(lines[0][1].split()) if lines else 0)
    values = np.empty((len(lines), width), dtype=np.float64)
    for r, (line, text) in enumerate(lines):
        tokens = text.split()
        if len(tokens) != width:
            if col_names is None:
                raise DataError(f"{path}, line {line}: {len(tokens)} values, but line {lines[0][0]} has {width}; "
                                f"every row must hold one value per attribute")
            raise DataError(
                f"{path}, line {line}: {len(tokens)} values, but {cols_file} names {width} attributes; every row "
                f"must hold one value per attribute (the file or {cols_file} is from another version of the dataset)"
            )
        for j, token in enumerate(tokens):
            try:
                values[r, j] = float(token)
            except ValueError:
                raise DataError(
                    f"{path}, line {line}, column {j + 1}: {quote(token)} is not a number; fix the value"
                ) from None
    n = len(row_names)
    if len(lines) < n:
        raise DataError(
            f"{path} has {len(lines)} rows but {rows_file} lists {n} classes: class {quote(row_names[len(lines)])} "
            f"(entry {len(lines) + 1} of {rows_file}) has no attribute row; add its row or remove the class"
        )
    if len(lines) > n:
        raise DataError(
            f"{path} has {len(lines)} rows but {rows_file} lists only {n} classes (extra row at line "
            f"{lines[n][0]}); the two files must describe the same classes in the same order"
        )
    if not np.isfinite(values).all():
        r, j = np.argwhere(~np.isfinite(values))[0]
        raise DataError(f"{path}, line {lines[r][0]}, column {j + 1}: value {values[r, j]} is not finite")
    return values


def check_relative_path(value: str, source: Path | str, line: int | None) -> str:
    """Refuse an absolute path or one with ``..`` read from a dataset file; return it in POSIX form.

    Args:
        value: the path as written in the file.
        source: the file it was read from (for the message).
        line: its 1-based line (``None`` when the file has no lines, e.g. a ``.mat`` entry).

    Raises:
        DataError: naming the file and line, for an empty, absolute or parent-escaping path.
    """
    where = f"{source}, line {line}" if line is not None else str(source)
    posix = value.replace("\\", "/").strip()
    if not posix:
        raise DataError(f"{where}: empty image path")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise DataError(
            f"{where}: absolute image path {quote(value)} refused; paths must be relative to the dataset root"
        )
    parts = posix.split("/")
    if ".." in parts:
        raise DataError(
            f"{where}: image path {quote(value)} refused: '..' would leave the dataset root; list files inside it"
        )
    return "/".join(p for p in parts if p not in ("", "."))
