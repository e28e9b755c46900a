"""Finished stages of a run, kept under ``stages/`` with the key they were made from, so that a
killed or changed run recomputes only what it must (``--resume``)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from niwt.faults import failpoint
from niwt.rundir.files import checksums, first_mismatch, listing, write_json
from niwt.rundir.layout import STAGE_RECORD, STAGES, TEST_SCORES

__all__ = ["stage_key", "StageStore", "save_test_scores", "load_test_scores"]

log = logging.getLogger(__name__)


def stage_key(**parts: Any) -> str:
    """A stable hash of what a stage was made from (its config and its inputs' keys)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class StageStore:
    """The finished stages of a run: ``stages/<name>/`` with a ``stage.json`` naming the key it was
    made from and the checksum of every file, written last through a temporary directory and a
    rename, so a directory never claims a stage it did not finish. A stage whose key changed, or
    one of whose files is missing or differs from its checksum (named in a warning), is
    recomputed; the others are reused.

    Args:
        run: the (staging) run directory.
        prefix: put before every stage name (``"seed1."``), so repeated runs in one directory
            (seeds, architectures) keep their stages apart.
    """

    def __init__(self, run: str | Path, prefix: str = "") -> None:
        self.run = Path(run)
        self.root = self.run / STAGES
        self.prefix = prefix

    def child(self, prefix: str) -> StageStore:
        """The same store with ``prefix`` added to every name."""
        return StageStore(self.run, self.prefix + prefix)

    def get(self, name: str, key: str) -> Path | None:
        """The directory of stage ``name`` if it finished with ``key``, else None."""
        name = self.prefix + name
        path = self.root / name
        try:
            record = json.loads((path / STAGE_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        files = record.get("files")
        problem = first_mismatch(path, files) if isinstance(files, dict) else None
        if problem is not None:
            log.warning("stage %s: %s; it is recomputed", name, problem)
            return None
        log.info("stage %s: reused (key %s)", name, key)
        return path

    def path(self, name: str) -> Path:
        """Where stage ``name`` is (or would be) kept."""
        return self.root / (self.prefix + name)

    def scratch(self, name: str, key: str) -> Path:
        """A directory for the unfinished state of stage ``name`` (e.g. per-epoch checkpoints),
        kept across kills, tied to ``key`` so a changed stage never continues another's state."""
        path = self.root / f"{self.prefix}{name}.partial-{key}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def put(self, name: str, key: str) -> Iterator[Path]:
        """Yield an empty directory to write stage ``name`` into; on success it becomes the stage."""
        name = self.prefix + name
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=self.root))
        try:
            yield tmp
            files = [p for p in listing(tmp) if (tmp / p).is_file()]
            write_json(tmp / STAGE_RECORD, {"name": name, "key": key,
                                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                            "files": checksums(tmp, files)})
            final = self.root / name
            if final.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=self.root))
                os.rename(final, trash / name)
                os.rename(tmp, final)
                shutil.rmtree(trash)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for partial in self.root.glob(f"{name}.partial-*"):
            shutil.rmtree(partial, ignore_errors=True)
        failpoint(f"stage:{name}")

    def finished(self) -> dict[str, str]:
        """``{name: key}`` of every finished stage."""
        out = {}
        for record in sorted(self.root.glob(f"*/{STAGE_RECORD}")):
            try:
                out[record.parent.name] = json.loads(record.read_text(encoding="utf-8"))["key"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out


def save_test_scores(directory: Path, scores: Any) -> None:
    """Keep a method's final test scores in its stage directory (:data:`TEST_SCORES`)."""
    import numpy as np

    np.save(directory / TEST_SCORES, np.asarray(scores, dtype=np.float32))


def load_test_scores(directory: Path) -> Any:
    """The ``float64`` scores :func:`save_test_scores` kept in ``directory``, or None where there are none
    (a stage written before they were kept)."""
    import numpy as np

    path = directory / TEST_SCORES
    return np.load(path, allow_pickle=False).astype(np.float64) if path.is_file() else None
