"""What commands write *about* a run, apart from what the run *is*.

A run is the files its manifest guards (the model, the maps, the config, the metrics, the stages:
:mod:`niwt.rundir.manifest`). ``niwt report``, ``niwt explain`` and ``niwt predict --explain``
write files that describe it (``report.html``, the report's plots, overlays and
``explanations.json``), at the places :func:`niwt.rundir.layout.is_about` names. These never
enter the manifest, so removing them never makes a run damaged; any command may write them
again; and none of them blocks another command. The command that writes one records it in the
run's ``outputs.json`` (one entry per file, replaced when the file is written again), and every
such file carries niwt's mark (:data:`MARKS`: a PNG's ``Software`` text, the page's generator,
the records' format), so niwt knows them as its own even when the record was deleted: ``--force``
may replace them with the run, an in-place change keeps them. A file at one of those places that
neither a record nor a mark names is someone else's and is never written over or deleted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from niwt.errors import RunDirectoryError
from niwt.rundir.files import write_json
from niwt.rundir.layout import EXPLAIN, OUTPUTS, REPORT, REPORT_PLOTS, is_about
from niwt.rundir.lock import run_lock
from niwt.rundir.manifest import read_manifest

__all__ = ["outputs_of", "record_outputs", "owned_outputs", "check_writable", "MARKS", "PNG_SOFTWARE",
           "HTML_GENERATOR", "EXPLANATIONS_FORMAT", "written_by_niwt"]

log = logging.getLogger(__name__)

_FORMAT = "niwt-outputs"

PNG_SOFTWARE = "niwt"
"""The ``Software`` text of every PNG niwt writes about a run (overlays, the report's plots)."""
HTML_GENERATOR = "niwt"
"""The ``generator`` of every page niwt writes."""
EXPLANATIONS_FORMAT = "niwt-explanations"
"""The ``format`` of an explanation folder's record."""

MARKS: dict[str, tuple[bytes, ...]] = {
    ".png": (b"tEXtSoftware\x00" + PNG_SOFTWARE.encode(),),
    ".html": (f'<meta name="generator" content="{HTML_GENERATOR}'.encode(),),
    ".json": (f'"format": "{_FORMAT}"'.encode(), f'"format": "{EXPLANATIONS_FORMAT}"'.encode()),
}
"""What the first bytes of a file niwt wrote about a run hold, by the file's ending."""


def written_by_niwt(path: str | Path) -> bool:
    """Whether ``path`` is a file that carries niwt's mark (:data:`MARKS`)."""
    path = Path(path)
    marks = MARKS.get(path.suffix.lower())
    if not marks or path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return any(mark in head for mark in marks)


def outputs_of(run: str | Path) -> dict[str, dict[str, str]]:
    """``{path: {"command": ..., "written": ...}}`` of every file commands recorded writing about
    ``run`` (paths relative to it, whether or not the file is still there); empty when there is
    no record, or when it is not one of niwt's (a warning says so)."""
    path = Path(run) / OUTPUTS
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        files = raw["files"] if isinstance(raw, dict) and raw.get("format") == _FORMAT else None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in files.items()):
        log.warning("%s is not niwt's record of the files written about the run: it is ignored", path)
        return {}
    return {k: {str(a): str(b) for a, b in v.items()} for k, v in files.items() if is_about(k)}


def owned_outputs(run: str | Path) -> set[str]:
    """The files at the places for files about ``run`` that niwt wrote: those its record names,
    and those that carry niwt's mark (the record itself included)."""
    run = Path(run)
    owned = {name for name in outputs_of(run) if (run / name).is_file()}
    for path in (run / OUTPUTS, run / REPORT, *(run / name for name in REPORT_PLOTS)):
        if written_by_niwt(path):
            owned.add(path.relative_to(run).as_posix())
    if (run / EXPLAIN).is_dir():
        owned |= {p.relative_to(run).as_posix() for p in (run / EXPLAIN).rglob("*") if written_by_niwt(p)}
    return owned


def record_outputs(run: str | Path, paths: Iterable[str | Path], command: str) -> None:
    """Record that ``command`` wrote ``paths`` (run-relative) about ``run``; entries of files no
    longer there are dropped. Call it under :func:`~niwt.rundir.lock.run_lock` with the writing.

    Raises:
        ValueError: a path that is not a place for files about a run (a bug of the caller).
    """
    run = Path(run)
    names = [Path(p).as_posix() for p in paths]
    wrong = [n for n in names if not is_about(n)]
    if wrong:
        raise ValueError(f"{wrong} are not places for files about a run")
    with run_lock(run):
        entries = {k: v for k, v in outputs_of(run).items() if (run / k).is_file()}
        written = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for name in names:
            entries[name] = {"command": command, "written": written}
        record: dict[str, Any] = {"format": _FORMAT, "files": dict(sorted(entries.items()))}
        write_json(run / OUTPUTS, record)


def check_writable(run: str | Path, names: Iterable[str], command: str) -> None:
    """Refuse to write ``names`` (run-relative places for files about the run) where a file is
    there that niwt did not write (no record names it, nor the manifest of a run an earlier niwt wrote).

    Raises:
        RunDirectoryError: naming the file, and what to do.
    """
    run = Path(run)
    manifest = read_manifest(run)
    ours = owned_outputs(run) | (set(manifest.files) if manifest is not None else set())
    for name in names:
        path = run / name
        if path.exists() and (name not in ours or not path.is_file()):
            raise RunDirectoryError(f"{str(path)!r} was not written by niwt; `niwt {command}` never writes over it: "
                                    "move it away and run the command again")

