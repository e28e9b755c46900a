"""The small exception hierarchy of niwt.

Every error a user can trigger with bad input derives from :class:`NIWTError`, and also from the
built-in type that matches the fault, so ``except ValueError`` keeps working in user code.
"""

from __future__ import annotations

__all__ = ["NIWTError", "ConfigError", "DataError", "NotFittedError", "RunDirectoryError"]


class NIWTError(Exception):
    """Base class of every error raised on purpose by niwt."""


class ConfigError(NIWTError, ValueError):
    """A configuration key, value or type is wrong (unknown key, wrong type, value out of range)."""


class DataError(NIWTError, ValueError):
    """Input data is malformed: shapes that disagree, NaN, unknown classes, empty splits."""


class NotFittedError(NIWTError, ValueError, AttributeError):
    """A fitted stage was used before ``fit`` was called."""


class RunDirectoryError(NIWTError, FileExistsError):
    """An output directory already holds a run and ``force`` was not given."""
