"""Input validators shared by the public functions of niwt.

Each validator takes the *name* of the argument it checks (as the caller spells it) and the value,
and either returns the value in a canonical form or raises :class:`~niwt.errors.DataError` with a
message that names the argument, what was expected and what was given. None of them lets a raw
torch or NumPy error escape for malformed input.

* :func:`as_image_batch` — a float image batch ``[N, C, H, W]`` (torch tensor or NumPy array);
* :func:`as_labels` — a 1-d integer array of class indices;
* :func:`as_matrix` — a 2-d real matrix (knowledge, importances, scores), finite by default.

:class:`LazyImages` is the base of image batches read later (``niwt.data.source.ImageSource``):
:func:`as_image_batch` checks what they say of their shape without loading them.

:func:`check_value` and :func:`check_positive` check a field of a frozen config dataclass and
raise :class:`~niwt.errors.ConfigError` naming ``section.field``.

torch is imported only by :func:`as_image_batch`, so the NumPy-only parts of niwt stay torch-free;
this module imports nothing of niwt but its errors.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from niwt.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

__all__ = ["LazyImages", "as_image_batch", "as_labels", "as_matrix", "check_value", "check_positive"]


class LazyImages:
    """Images read batch by batch when asked for (``niwt.data.source.ImageSource`` derives from it).

    Subclasses give ``shape`` ``(N, C, H, W)``, ``dtype`` and ``to(dtype)`` (a view whose batches
    have that dtype): :func:`as_image_batch` checks those without reading an image.
    """

    shape: tuple[int, int, int, int]
    dtype: object

    def to(self, dtype: object) -> LazyImages:
        raise NotImplementedError


def _is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor (False without importing torch when it is not loaded)."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(value, torch_module.Tensor)


def _describe(value: object) -> str:
    """``"tensor of shape (2, 3) and dtype torch.float32"``-style description of an array-like."""
    if _is_tensor(value):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return type(value).__name__


def _image_dtype_error(name: str, dtype: object) -> DataError:
    return DataError(
        f"`{name}` must hold float pixel values, got dtype {dtype}; convert to float in [0, 1] "
        f"(e.g. `x.float() / 255` for a tensor, `x.astype(np.float32) / 255` for an array)"
    )


def _check_image_layout(name: str, shape: tuple[int, ...], channels: int | None) -> None:
    if len(shape) == 3:
        raise DataError(
            f"`{name}` must be a batch [N, C, H, W], got a 3-d shape {shape}; "
            f"add the batch axis for one image (`x[None]`)"
        )
    if len(shape) != 4:
        raise DataError(f"`{name}` must be a 4-d batch [N, C, H, W], got {len(shape)}-d shape {shape}")
    if channels is None or shape[1] == channels:
        return
    if shape[3] == channels:
        raise DataError(
            f"`{name}` has shape {shape}, which looks like [N, H, W, C]; permute to [N, C, H, W] "
            f"(`x.permute(0, 3, 1, 2)`)"
        )
    if shape[1] == 1:
        raise DataError(
            f"`{name}` has 1 channel (shape {shape}) but {channels} are expected; "
            f"repeat the channel (`x.expand(-1, {channels}, -1, -1)`)"
        )
    raise DataError(f"`{name}` must have {channels} channels at axis 1 ([N, C, H, W]), got shape {shape}")


def as_image_batch(
    name: str,
    x: object,
    *,
    channels: int | None = 3,
    size: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Check an image batch and return it as a float tensor ``[N, C, H, W]``.

    Args:
        name: the argument's name, used in messages (``"images"``).
        x: a float ``torch.Tensor`` or NumPy array ``[N, C, H, W]``.
        channels: the number of channels expected at axis 1, or ``None`` to accept any number.
        size: when given, the side length the model was built for: ``H`` and ``W`` must equal it.
        dtype: when given, the result is converted to this float dtype (no copy when it already is).
        device: when given, the result is moved to this device (no copy when it already is there).

    Returns:
        The batch as a tensor; a tensor input with matching dtype and device is returned as is.

    Raises:
        DataError: for another type, a 3-d or otherwise non-4-d shape, an ``[N, H, W, C]`` layout, a
            wrong number of channels (one-channel images included), an integer / bool / uint8
            dtype, a side length other than ``size``, or NaN / infinite values.
    """
    import torch

    if isinstance(x, LazyImages):  # read batch by batch later: check what is known without loading
        _check_image_layout(name, tuple(x.shape), channels)
        if size is not None and tuple(x.shape[2:]) != (size, size):
            raise DataError(f"`{name}` holds {x.shape[2]}x{x.shape[3]} px images but the model was built for "
                            f"{size}x{size} px; resize the images or build the model for this size")
        return x.to(dtype) if dtype is not None and dtype != x.dtype else x
    if isinstance(x, np.ndarray):
        if x.dtype not in (np.float16, np.float32, np.float64):
            _check_image_layout(name, x.shape, channels)
            raise _image_dtype_error(name, x.dtype)
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise DataError(f"`{name}` must be a float torch.Tensor or NumPy array [N, C, H, W], got {_describe(x)}")
    shape = tuple(x.shape)
    _check_image_layout(name, shape, channels)
    if not x.is_floating_point():
        raise _image_dtype_error(name, x.dtype)
    if size is not None and shape[2:] != (size, size):
        raise DataError(
            f"`{name}` holds {shape[2]}x{shape[3]} px images but the model was built for {size}x{size} px; "
            f"resize the images or build the model for this size"
        )
    n_bad = int((~torch.isfinite(x)).sum()) if x.numel() else 0
    if n_bad:
        n_nan = int(torch.isnan(x).sum())
        raise DataError(
            f"`{name}` must hold finite pixel values, got {n_nan} NaN and {n_bad - n_nan} infinite value(s)"
        )
    if dtype is not None or device is not None:
        x = x.to(device=device, dtype=dtype)
    return x


def _array(name: str, value: object, ndim: int, what: str) -> np.ndarray:
    """``value`` as a NumPy array of ``ndim`` dimensions (tensors are detached and copied to the CPU)."""
    try:
        arr = value.detach().cpu().numpy() if _is_tensor(value) else np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"`{name}` must be {what}, got {type(value).__name__}: {exc}") from None
    if arr.ndim != ndim:
        raise DataError(f"`{name}` must be {what}, got shape {arr.shape}")
    return arr


def as_labels(
    name: str,
    y: object,
    *,
    length: int | None = None,
    n_classes: int | None = None,
) -> np.ndarray:
    """Check a vector of class indices and return it as an ``int64`` NumPy array.

    Args:
        name: the argument's name, used in messages (``"labels"``).
        y: a 1-d sequence, NumPy array or torch tensor of integer class indices.
        length: when given, the number of entries expected (one per image, say).
        n_classes: when given, every index must lie in ``[0, n_classes)``.

    Returns:
        A new 1-d ``int64`` array (an empty input of any dtype gives an empty array).

    Raises:
        DataError: for a shape other than 1-d, a non-integer dtype (floats and bools included), a
            length other than ``length``, or an index outside ``[0, n_classes)``.
    """
    arr = _array(name, y, 1, "a 1-d array of class indices")
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"`{name}` must hold integer class indices, got dtype {arr.dtype}")
    if length is not None and arr.shape[0] != length:
        raise DataError(f"`{name}` must hold one class index per image: expected [{length}], got {arr.shape}")
    arr = arr.astype(np.int64)
    if n_classes is not None and arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise DataError(f"`{name}` must lie in [0, {n_classes}), got [{arr.min()}, {arr.max()}]")
    return arr


def as_matrix(
    name: str,
    x: object,
    *,
    rows: int | None = None,
    cols: int | None = None,
    finite: bool = True,
    row_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Check a 2-d real matrix and return it as a new ``float64`` NumPy array.

    Args:
        name: the argument's name, used in messages (``"knowledge"``).
        x: a 2-d sequence, NumPy array or torch tensor of real numbers (bools count as 0 / 1).
        rows: when given, the number of rows expected.
        cols: when given, the number of columns expected.
        finite: refuse NaN and infinite values (the first one is located in the message).
        row_names: names of the rows (one per row), used to locate a non-finite value (class names).

    Returns:
        A new ``[rows, cols]`` float64 array.

    Raises:
        DataError: for a value that is not numeric, a shape other than 2-d or other than
            ``[rows, cols]``, a complex or non-numeric dtype, or (with ``finite``) NaN / inf.
    """
    arr = _array(name, x, 2, "a 2-d matrix")
    if arr.dtype == np.object_:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"`{name}` must hold real numbers, got non-numeric objects") from None
    real = arr.dtype == np.bool_ or (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr))
    if not real:
        raise DataError(f"`{name}` must hold real numbers, got dtype {arr.dtype}")
    expected = (rows if rows is not None else "*", cols if cols is not None else "*")
    if (rows is not None and arr.shape[0] != rows) or (cols is not None and arr.shape[1] != cols):
        raise DataError(f"`{name}` must have shape [{expected[0]}, {expected[1]}], got {arr.shape}")
    arr = arr.astype(np.float64)
    if finite:
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            row, col = (int(i) for i in bad[0])
            named = row_names is not None and len(row_names) == arr.shape[0]
            where = f"{row_names[row]!r} (row {row})" if named else f"row {row}"
            raise DataError(
                f"`{name}` must hold finite values, got {len(bad)} NaN or infinite value(s), "
                f"first at {where}, column {col}"
            )
    return arr


def check_value(section: str, obj: object, name: str, *, choices: tuple[str, ...] | None = None,
                low: float | None = None, low_open: bool = False, high: float | None = None,
                high_open: bool = False) -> None:
    """The one validator of config values: a choice list, or bounds (``None`` values are skipped).

    Each element of a tuple value is checked alike.

    Args:
        section: the config table, for the message (``"data"``).
        obj: the config dataclass.
        name: the field of ``obj`` to check.
        choices: the values allowed.
        low, high: the bounds; ``low_open`` / ``high_open`` exclude them.

    Raises:
        ConfigError: naming ``section.name``, what is allowed and what was given.
    """
    value = getattr(obj, name)
    for v in value if isinstance(value, tuple) else (value,):
        if v is None:
            continue
        where = f"`{section}.{name}`" + (" values" if isinstance(value, tuple) else "")
        if choices is not None and v not in choices:
            raise ConfigError(f"{where} must be one of {list(choices)}, got {v!r}")
        too_low = low is not None and (v <= low if low_open else v < low)
        too_high = high is not None and (v >= high if high_open else v > high)
        if (too_low or too_high) and low is not None and high is not None:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ConfigError(f"{where} must lie in {interval}, got {v!r}")
        if too_low:
            raise ConfigError(f"{where} must be {'>' if low_open else '>='} {low:g}, got {v!r}")
        if too_high:
            raise ConfigError(f"{where} must be {'<' if high_open else '<='} {high:g}, got {v!r}")


def check_positive(section: str, obj: object, *names: str) -> None:
    """Check that each field ``names`` of ``obj`` is > 0 (or ``None``), as :func:`check_value`."""
    for name in names:
        check_value(section, obj, name, low=0, low_open=True)
