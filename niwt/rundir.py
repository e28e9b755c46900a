"""Run directories: a manifest, a private staging directory and an atomic move into place.

The one rule: **niwt never deletes what it did not write.** An output directory is used only if

* it does not exist,
* it is an empty directory, or
* it holds a complete niwt run (recognised by its ``manifest.json``, which lists every file the run
  wrote) and ``force`` is given; a run directory holding anything its manifest does not list (a
  user's notes, a file from another tool) is refused even with ``force``.

Anything else is refused with :class:`~niwt.errors.RunDirectoryError` naming the directory and
what is in it. A run is written into a staging directory of its own beside the target (unique per
run: two runs aimed at the same place never share one), and moved into place only when it is
complete; on any error the staging directory is removed and the target is left as it was.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from niwt.errors import RunDirectoryError

__all__ = ["MANIFEST", "FORMAT", "FORMAT_VERSION", "Manifest", "read_manifest", "check_output_dir", "run_dir",
           "in_run_dir", "write_json", "versions"]

log = logging.getLogger(__name__)

T = TypeVar("T")

MANIFEST = "manifest.json"
FORMAT = "niwt-run"
FORMAT_VERSION = 1
_SHOWN = 5  # entries named in an error message


@dataclass(frozen=True)
class Manifest:
    """What a run directory holds: written last, so its presence means the run is complete."""

    command: str
    files: tuple[str, ...]
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    niwt_version: str = ""
    created: str = ""
    stages: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "format_version": self.format_version, "niwt_version": self.niwt_version,
                "command": self.command, "created": self.created, "stages": dict(self.stages),
                "files": list(self.files)}


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON through a temporary name, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def versions() -> dict[str, str]:
    """Library versions recorded next to every run."""
    import numpy
    import scipy
    import torch

    import niwt

    return {"niwt": niwt.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}


def _listing(root: Path) -> list[str]:
    """Every file and directory under ``root``, as sorted POSIX paths relative to it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        out.extend((rel / n).as_posix() for n in dirnames + filenames)
    return sorted(out)


def read_manifest(directory: str | Path) -> Manifest | None:
    """The manifest of a complete niwt run in ``directory``, or None when it has none (or not ours)."""
    path = Path(directory) / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("files"), list):
        return None
    if not all(isinstance(f, str) for f in raw["files"]):
        return None
    return Manifest(command=str(raw.get("command", "")), files=tuple(raw["files"]),
                    format_version=raw.get("format_version", 0), niwt_version=str(raw.get("niwt_version", "")),
                    created=str(raw.get("created", "")), stages=dict(raw.get("stages") or {}))


def _describe(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def check_output_dir(out: str | Path, force: bool = False) -> str:
    """Say what ``out`` is (``"missing"``, ``"empty"`` or ``"run"``) if a run may be written there.

    Raises:
        RunDirectoryError: ``out`` is not a directory, holds files niwt did not write, or holds a
            niwt run and ``force`` is False.
    """
    out = Path(out)
    if out.is_symlink():
        raise RunDirectoryError(f"output path {str(out)!r} is a symbolic link; give the directory it points to, "
                                "or another --out")
    if not out.exists():
        return "missing"
    if not out.is_dir():
        raise RunDirectoryError(f"output path {str(out)!r} exists and is not a directory; choose another --out")
    content = _listing(out)
    if not content:
        return "empty"
    manifest = read_manifest(out)
    if manifest is None:
        top = sorted(p.name for p in out.iterdir())
        raise RunDirectoryError(
            f"output directory {str(out)!r} is not empty and is not a niwt run (no niwt {MANIFEST}); it holds "
            f"{_describe(top)}. niwt never deletes files it did not write, --force included: choose another "
            "--out, or an empty or missing directory")
    listed = set(manifest.files) | {MANIFEST}
    listed |= {p.rsplit("/", i)[0] for p in manifest.files for i in range(1, p.count("/") + 1)}  # parent dirs
    foreign = [p for p in content if p not in listed]
    if foreign:
        raise RunDirectoryError(
            f"output directory {str(out)!r} holds a niwt run and also files the run did not write: "
            f"{_describe(foreign)}. niwt never deletes files it did not write, --force included: move them "
            "away or choose another --out")
    if not force:
        raise RunDirectoryError(f"output directory {str(out)!r} already holds a niwt run "
                                f"({manifest.command or 'unknown command'}, {manifest.created or 'unknown date'}); "
                                "choose another --out or pass --force to replace it")
    return "run"


def _finish(out: Path, staging: Path, command: str, force: bool, stages: dict[str, Any]) -> None:
    import niwt

    manifest = Manifest(command=command, files=tuple(p for p in _listing(staging) if (staging / p).is_file()),
                        niwt_version=niwt.__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        stages=stages)
    write_json(staging / MANIFEST, manifest.to_dict())
    state = check_output_dir(out, force)  # again: the target may have changed while the run ran
    if state == "missing":
        os.rename(staging, out)
    elif state == "empty":
        os.rmdir(out)  # fails, and keeps everything, if a file appeared since the check
        os.rename(staging, out)
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rename(out, old / "run")
        os.rename(staging, out)
        shutil.rmtree(old)  # checked above: only files the old run's manifest lists


@contextmanager
def run_dir(out: str | Path, force: bool = False, command: str = "") -> Iterator[Path]:
    """Yield a fresh staging directory; move it to ``out`` when the block ends without error.

    ``out`` is checked before the block runs (so a refused directory costs no training) and again
    before the move. On any error, the staging directory is removed and ``out`` is untouched.
    """
    out = Path(out)
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the run's mode
    stages: dict[str, Any] = {}
    try:
        yield staging
        _finish(out, staging, command, force, stages)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def in_run_dir(out: str | Path, force: bool, body: Callable[[Path], T], command: str = "") -> T:
    """Call ``body(staging)`` inside :func:`run_dir` and return what it returns."""
    with run_dir(out, force, command) as staging:
        return body(staging)
