"""A real browser for the tests of the page: Debian's Chromium, driven by Playwright from PyPI
(``executable_path`` points at it: nothing is downloaded, ``playwright install`` is never run).

Where Chromium or Playwright is missing the browser tests are skipped with the reason, unless
``NIWT_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets it, after installing Chromium): then they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
"""Where Debian's ``chromium`` package puts the browser."""

CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
"""Headless, and nothing of the browser's own that would reach out (updates, sync, background fetches)."""

REQUIRE = "NIWT_REQUIRE_BROWSER"


def chromium_path() -> str | None:
    return next((p for p in CHROMIUM_PATHS if Path(p).is_file() and os.access(p, os.X_OK)), None)


def missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; never `playwright install`)"
    if chromium_path() is None:
        return ("Debian's Chromium is not installed (apt-get install -y --no-install-recommends chromium): none of "
                + ", ".join(CHROMIUM_PATHS))
    return None


def require_browser() -> None:
    """Skip (or, with ``NIWT_REQUIRE_BROWSER=1``, fail) when the browser cannot run here."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{REQUIRE}=1 but {reason}")
    pytest.skip(reason)


def launch(playwright):
    """Chromium, headless, from its Debian path."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
