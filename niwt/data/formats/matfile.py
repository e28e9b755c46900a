"""MATLAB v5 files read with SciPy (never unpickled): the header first, so that field shapes are
checked against each other before large arrays are loaded, then fields as checked NumPy arrays,
with messages that name the file, the field, what was expected and what was found."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from niwt.errors import DataError

__all__ = ["mat_header", "load_mat", "require_fields", "vector_length", "numeric", "cell_strings"]


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


def load_mat(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path), variable_names=names)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DataError(f"cannot read fields {names} of {path} ({type(exc).__name__}: {exc}); "
                        f"download the file again") from exc


def require_fields(path: Path, header: dict, names: tuple[str, ...], fix: str) -> None:
    missing = [n for n in names if n not in header]
    if missing:
        raise DataError(
            f"{path} has no field(s) {missing} (fields present: {sorted(header)}); {fix}"
        )


def vector_length(path: Path, name: str, shape: tuple[int, ...]) -> int:
    if len(shape) != 2 or min(shape) > 1:
        raise DataError(f"{path}: `{name}` must be a column vector (n x 1), the header says shape {shape}")
    return int(max(shape)) if min(shape) == 1 else 0


def numeric(path: Path, name: str, value: object, dtype: type = np.float64) -> np.ndarray:
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


def cell_strings(path: Path, name: str, value: np.ndarray) -> tuple[str, ...]:
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

