"""The file primitives of run directories: checksums, JSON written through a temporary name, listings."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["file_checksum", "checksums", "first_mismatch", "write_json", "listing"]


def file_checksum(path: Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"



def checksums(root: Path, files: Any) -> dict[str, str]:
    return {name: file_checksum(root / name) for name in files}



def first_mismatch(root: Path, checksums: dict[str, str]) -> str | None:
    """What is wrong with the first file of ``checksums`` that is missing or differs, or None."""
    for name, expected in sorted(checksums.items()):
        path = root / name
        if not path.is_file():
            return f"{name} is missing"
        if file_checksum(path) != expected:
            return f"{name} was altered or truncated since it was written ({path.stat().st_size} bytes, checksum differs)"
    return None



def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON through a temporary name, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)



def listing(root: Path) -> list[str]:
    """Every file and directory under ``root``, as sorted POSIX paths relative to it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        out.extend((rel / n).as_posix() for n in dirnames + filenames)
    return sorted(out)

