"""Where the repository's parts are, for the tests that read its files (README, configs, the package)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root folder."""
