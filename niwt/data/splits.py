"""Seeded split helpers shared by the loaders: validation classes, held-out seen images, class lists.

Every draw uses its own ``numpy.random.default_rng(seed)``, so a loader called twice with the same
seed returns the same split, and the loaders record each draw in their ``notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from niwt.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_TEST_SEEN_FRACTION",
    "DEFAULT_VAL_FRACTION",
    "check_fraction",
    "draw_val_classes",
    "split_seen_images",
    "class_indices",
]

DEFAULT_TEST_SEEN_FRACTION = 0.2
"""Share of each seen class's images held out as ``test_seen`` when a format has no image split
(the xlsa17 proposed splits hold out 20 %)."""

DEFAULT_VAL_FRACTION = 0.2
"""Share of the seen classes drawn as validation classes when a format lists none."""


def check_fraction(name: str, value: object) -> float:
    """Return ``value`` as a float in (0, 1).

    Raises:
        ConfigError: for a non-number or a value outside (0, 1).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"`{name}` must be a number in (0, 1), got {value!r}")
    return float(value)


def draw_val_classes(seen: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the seen classes into ``(train, val)`` at random.

    ``round(fraction * n_seen)`` validation classes are drawn, at least one and at most
    ``n_seen - 1`` (none when there is a single seen class).

    Returns:
        Sorted ``int64`` arrays ``(train_classes, val_classes)``.
    """
    seen = np.sort(np.asarray(seen, dtype=np.int64))
    if seen.size < 2:
        return seen, np.zeros(0, np.int64)
    n_val = min(max(1, int(round(fraction * seen.size))), seen.size - 1)
    val = np.sort(np.random.default_rng(seed).choice(seen, size=n_val, replace=False))
    return np.setdiff1d(seen, val), val


def split_seen_images(
    labels: np.ndarray, seen: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of every seen class's images as ``test_seen`` (stratified, seeded).

    A class with a single image keeps it for training; otherwise each side keeps at least one.

    Returns:
        Sorted ``int64`` arrays ``(trainval_idx, test_seen_idx)``.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    trainval, test = [], []
    for c in np.sort(np.asarray(seen, dtype=np.int64)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = 0 if idx.size < 2 else min(max(1, int(round(fraction * idx.size))), idx.size - 1)
        test.append(idx[:n_test])
        trainval.append(idx[n_test:])
    cat = (lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64))
    return cat(trainval), cat(test)


def class_indices(
    names: Sequence[tuple[str, int]], class_names: Sequence[str], source: Path | str, *, fix: str = ""
) -> np.ndarray:
    """Map ``(name, line)`` pairs read from ``source`` to positions in ``class_names``.

    Raises:
        DataError: naming the file and line of the first name that is not a class.
    """
    lookup = {name: i for i, name in enumerate(class_names)}
    out = []
    for name, line in names:
        if name not in lookup:
            raise DataError(
                f"{source}, line {line}: {name!r} is not a class of the dataset"
                + (f"; {fix}" if fix else "; the class lists and the class names must come from the same release")
            )
        out.append(lookup[name])
    return np.asarray(sorted(out), dtype=np.int64)
