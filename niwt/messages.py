"""Text helpers for error messages and notes: a value read from a file, and the first few names of a list.

This module imports nothing of niwt, so every layer can use it.

* :func:`quote` — ``repr`` of a value, cut to :data:`QUOTE_LIMIT` characters with its length stated;
* :func:`short_name` — a name as it is, or quoted and cut when it is too long for a message;
* :func:`first_names` — the first ``k`` names of a list and how many more there are;
* :func:`quote_names` — the same, each name quoted, in list brackets;
* :func:`close_names` — the known names close to a mistyped one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

__all__ = ["QUOTE_LIMIT", "quote", "short_name", "first_names", "quote_names", "close_names"]

QUOTE_LIMIT = 80
"""Characters of a value read from a file that an error message repeats (a longer value is cut)."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters with the full length stated.

    A value read from a damaged file may be a megabyte long; messages repeat its start only.

    Args:
        value: the text (or any object) to show.
        limit: the most characters of ``value`` shown.

    Returns:
        The quoted value, e.g. ``'xxxx...' (1000000 characters)`` for a long string.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(value) if isinstance(value, str) else text
    return f"{text[:limit]!r}... ({len(text)} characters)"


def short_name(name: str) -> str:
    """``name`` as it is when it fits a message (:data:`QUOTE_LIMIT` characters), else :func:`quote` of it."""
    return name if len(name) <= QUOTE_LIMIT else quote(name)


def first_names(
    names: Iterable[object], k: int = 5, *, show: Callable[[object], str] = str, more: str = ", ... ({} more)"
) -> str:
    """The first ``k`` of ``names``, each through ``show``, joined by commas, and how many more there are.

    Args:
        names: class names, file names or other values.
        k: how many to show.
        show: how one name is written (``str``, ``repr``, :func:`quote`, :func:`short_name`).
        more: the tail added when names are left out; ``{}`` is their count.

    Returns:
        ``"a, b, ... (3 more)"``-style text.
    """
    names = list(names)
    shown = ", ".join(show(n) for n in names[:k])
    return shown + (more.format(len(names) - k) if len(names) > k else "")


def quote_names(names: Iterable[object], k: int = 5) -> str:
    """The first ``k`` of ``names``, each through :func:`quote`, and how many more there are, in brackets.

    Args:
        names: class names, file names or other values read from files.
        k: how many to show.

    Returns:
        ``"['a', 'b', ... (3 more)]"``-style text (a list's repr when the names are few and short).
    """
    return "[" + first_names(names, k, show=quote) + "]"


def close_names(name: object, known: Iterable[str], n: int = 5, cutoff: float = 0.5) -> list[str]:
    """Up to ``n`` of ``known`` that look like ``name`` (difflib's ratio at least ``cutoff``), closest first."""
    return difflib.get_close_matches(str(name), list(known), n=n, cutoff=cutoff)
