"""A run's manifest: what it holds, each file with its checksum, written last so that its presence
means the run is complete; reading it back, and checking every file against it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from niwt.errors import RunDirectoryError
from niwt.rundir.files import first_mismatch
from niwt.rundir.layout import MANIFEST, is_about

__all__ = ["FORMAT", "FORMAT_VERSION", "Manifest", "read_manifest", "verify_run"]

FORMAT = "niwt-run"
FORMAT_VERSION = 1


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
    checksums: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "format_version": self.format_version, "niwt_version": self.niwt_version,
                "command": self.command, "created": self.created, "stages": dict(self.stages),
                "files": list(self.files), "checksums": dict(self.checksums)}



def verify_run(directory: str | Path) -> Manifest:
    """The manifest of the complete run in ``directory``, every file it lists checked against its checksum.

    Runs written before checksums were kept are returned unchecked.

    Raises:
        RunDirectoryError: not a complete niwt run, or a listed file that is missing, truncated or
            altered (named, with what to do).
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        raise RunDirectoryError(f"{str(directory)!r} is not a complete niwt run (no niwt {MANIFEST})")
    # files about the run (a report, explanations) are not the run: an earlier niwt listed them
    problem = first_mismatch(directory, {k: v for k, v in manifest.checksums.items() if not is_about(k)})
    if problem is not None:
        if manifest.command in ("teach", "forget"):
            fix = "teach or forget again from the run it came from, into a new --out"
        elif manifest.command:
            fix = (f"run `niwt {manifest.command}` again with the same config and --out and --resume: only the "
                   "damaged stages are recomputed")
        else:
            fix = "run the command that wrote it again"
        raise RunDirectoryError(f"run {str(directory)!r} is damaged: {problem}; nothing of it was loaded. To mend "
                                f"it, {fix}")
    return manifest



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
    sums = raw.get("checksums") or {}
    if not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
        return None
    return Manifest(command=str(raw.get("command", "")), files=tuple(raw["files"]),
                    format_version=raw.get("format_version", 0), niwt_version=str(raw.get("niwt_version", "")),
                    created=str(raw.get("created", "")), stages=dict(raw.get("stages") or {}), checksums=dict(sums))
