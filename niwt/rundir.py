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

import dataclasses
import hashlib
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
from niwt.faults import failpoint
from niwt.messages import first_names
from niwt.version import __version__

__all__ = ["MANIFEST", "FORMAT", "FORMAT_VERSION", "Manifest", "read_manifest", "check_output_dir", "run_dir",
           "in_run_dir", "write_json", "versions", "add_to_run", "StageStore", "stage_key", "STAGES", "RunInfo", "check_file_folder", "write_files",
           "TEST_SCORES", "POOL_CACHE", "save_test_scores", "load_test_scores", "stage_dir",
           "file_checksum", "verify_run"]

log = logging.getLogger(__name__)

TEST_SCORES = "test_scores.npy"
"""A method stage's scores ``[N, C]`` (float32) of the final setting's test images, in its
``test_idx`` order (test-seen images, then test-unseen ones), one column per global class
(``-inf`` outside the setting): what the report's seen-unseen curves, per-class accuracies and
confusions are drawn from."""


POOL_CACHE = "pool_cache.safetensors"
"""In a run's ``transfer/``: the transfer pool's cache (:class:`niwt.transfer.PoolCache`), what teaching a class reads."""


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


def stage_dir(run: Path, seed: int, name: str) -> Path:
    """Where the finished stage ``name`` of seed ``seed`` lies in run directory ``run``."""
    return Path(run) / STAGES / f"seed{seed}.{name}"

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
    checksums: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "format_version": self.format_version, "niwt_version": self.niwt_version,
                "command": self.command, "created": self.created, "stages": dict(self.stages),
                "files": list(self.files), "checksums": dict(self.checksums)}


def file_checksum(path: Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _checksums(root: Path, files: Any) -> dict[str, str]:
    return {name: file_checksum(root / name) for name in files}


def _first_mismatch(root: Path, checksums: dict[str, str]) -> str | None:
    """What is wrong with the first file of ``checksums`` that is missing or differs, or None."""
    for name, expected in sorted(checksums.items()):
        path = root / name
        if not path.is_file():
            return f"{name} is missing"
        if file_checksum(path) != expected:
            return f"{name} was altered or truncated since it was written ({path.stat().st_size} bytes, checksum differs)"
    return None


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
    problem = _first_mismatch(directory, manifest.checksums)
    if problem is not None:
        raise RunDirectoryError(f"run {str(directory)!r} is damaged: {problem}; nothing of it was loaded. Rerun "
                                "the command that wrote it (with --resume, only the damaged stages are recomputed)")
    return manifest


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


    return {"niwt": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}


def _listing(root: Path) -> list[str]:
    """Every file and directory under ``root``, as sorted POSIX paths relative to it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        out.extend((rel / n).as_posix() for n in dirnames + filenames)
    return sorted(out)


@dataclass(frozen=True)
class RunInfo:
    """What ``model/run.json`` holds: what a later command needs to read a run's model back.

    Attributes:
        class_names: every class of the dataset; a class id is a position here.
        fit_classes, new_classes: class ids of the model's seen rows and of its unseen rows, in order.
        knowledge_names: the names of the class vectors' dimensions.
        data_key: the dataset's fingerprint (:func:`niwt.data.data_key`).
        dataset: the dataset's name; split_origin: where its split came from.
        image_size: the side of the images the model saw; transform: how files were prepared
            (``resize``, ``crop``, ``normalize``).
        importance_layer: where importance is taken; in_features: the width of a features dataset.
        arch: the backbone; n_seen, n_unseen: its classifier rows.
    """

    class_names: tuple[str, ...]
    fit_classes: tuple[int, ...]
    new_classes: tuple[int, ...]
    knowledge_names: tuple[str, ...]
    data_key: str
    dataset: str
    split_origin: str
    image_size: int
    transform: dict[str, Any]
    importance_layer: str
    in_features: int | None
    arch: str
    n_seen: int
    n_unseen: int

    def to_dict(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names), "fit_classes": list(self.fit_classes),
                "new_classes": list(self.new_classes), "knowledge_names": list(self.knowledge_names),
                "data_key": self.data_key, "dataset": self.dataset, "split_origin": self.split_origin,
                "image_size": self.image_size, "transform": dict(self.transform),
                "importance_layer": self.importance_layer, "in_features": self.in_features, "arch": self.arch,
                "n_seen": self.n_seen, "n_unseen": self.n_unseen}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "model/run.json") -> RunInfo:
        """The record :meth:`to_dict` wrote.

        Raises:
            RunDirectoryError: naming ``source`` and the missing or unknown keys.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        missing, unknown = sorted(set(names) - set(d)), sorted(set(d) - set(names))
        if missing or unknown:
            raise RunDirectoryError(f"{source} is not a niwt run record: missing key(s) {missing}, unknown key(s) "
                                    f"{unknown}; rerun the run that wrote it")
        return cls(tuple(d["class_names"]), tuple(int(c) for c in d["fit_classes"]),
                   tuple(int(c) for c in d["new_classes"]), tuple(d["knowledge_names"]), str(d["data_key"]),
                   str(d["dataset"]), str(d["split_origin"]), int(d["image_size"]), dict(d["transform"]),
                   str(d["importance_layer"]), None if d["in_features"] is None else int(d["in_features"]),
                   str(d["arch"]), int(d["n_seen"]), int(d["n_unseen"]))


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


def _describe(names: list[str]) -> str:
    return first_names(names, _SHOWN, show=repr, more=" and {} more")


def _refuse_foreign(where: str, entries: list[str], allowed: set[str], shown: Callable[[list[str]], str],
                    fix: str) -> None:
    """Raise when ``entries`` holds a name outside ``allowed``: niwt never deletes or writes over
    what it did not write."""
    foreign = [n for n in entries if n not in allowed]
    if foreign:
        raise RunDirectoryError(f"{where}: {shown(foreign)}. niwt never deletes files it did not write{fix}")


def _partial_file(name: str) -> str:
    return f".{name}.partial"


def check_file_folder(out_dir: str | Path, names: tuple[str, ...], what: str) -> Path:
    """Check that ``out_dir`` may receive the files ``names`` (missing, empty, or holding only
    them): the rule of every folder niwt writes, run directories included, that it never deletes
    or writes over what it did not write.

    Raises:
        RunDirectoryError: ``out_dir`` is a file, one of ``names`` is a folder, or it holds anything
            else (named in the message; ``what`` names the folder's use).
    """
    out = Path(out_dir)
    if not out.exists():
        return out
    if not out.is_dir():
        raise RunDirectoryError(f"{what} folder {str(out)!r} exists and is not a directory; choose another folder")
    allowed = set(names) | {_partial_file(n) for n in names}
    entries = sorted(p.name for p in out.iterdir())
    shown = lambda items: first_names(items, 8, show=repr, more=" and {} more")  # noqa: E731
    _refuse_foreign(f"{what} folder {str(out)!r} holds files an {what} does not write", entries, allowed, shown,
                    f"; it writes only {' and '.join(names)} there: move them away or choose an empty or missing "
                    "folder")
    not_files = [n for n in entries if not (out / n).is_file() or (out / n).is_symlink()]
    if not_files:
        raise RunDirectoryError(f"{what} folder {str(out)!r}: {shown(not_files)} is not a plain file; "
                                "move it away or choose another folder")
    return out


def write_files(out: Path, writers: dict[str, Callable[[Path], None]]) -> None:
    """``writers[name](path)`` writes file ``name``: every file is written under a temporary name
    first, then all are renamed into place (the temporaries are removed on failure), so ``out``
    never holds a half-written file."""
    out.mkdir(parents=True, exist_ok=True)
    partial = {name: out / _partial_file(name) for name in writers}
    try:
        for name, write in writers.items():
            write(partial[name])
    except BaseException:
        for path in partial.values():
            path.unlink(missing_ok=True)
        raise
    for name in writers:
        os.replace(partial[name], out / name)
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    _refuse_foreign(f"output directory {str(out)!r} holds a niwt run and also files the run did not write",
                    content, listed, _describe, ", --force included: move them away or choose another --out")
    if not force:
        raise RunDirectoryError(f"output directory {str(out)!r} already holds a niwt run "
                                f"({manifest.command or 'unknown command'}, {manifest.created or 'unknown date'}); "
                                "choose another --out or pass --force to replace it")
    return "run"


def _share_as_umask(root: Path, files: tuple[str, ...]) -> None:
    """Give every file of a run the mode a new file gets under the umask (safetensors writes 0600
    files through a temporary name, which would keep a run from the group it is shared with)."""
    umask = os.umask(0)
    os.umask(umask)
    for name in files:
        path = root / name
        if path.stat().st_mode & 0o777 != 0o666 & ~umask:
            path.chmod(0o666 & ~umask)


def _finish(out: Path, staging: Path, command: str, force: bool, stages: dict[str, Any]) -> None:

    failpoint("write:before-manifest")
    files = tuple(p for p in _listing(staging) if (staging / p).is_file() and p != _LOCK)
    _share_as_umask(staging, files)
    manifest = Manifest(command=command, files=files, niwt_version=__version__,
                        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), stages=stages,
                        checksums=_checksums(staging, files))
    write_json(staging / MANIFEST, manifest.to_dict())
    failpoint("write:after-manifest")
    (staging / _LOCK).unlink(missing_ok=True)  # from here on a complete run: resumable by its manifest
    state = check_output_dir(out, force)  # again: the target may have changed while the run ran
    if state == "missing":
        os.rename(staging, out)
    elif state == "empty":
        os.rmdir(out)  # fails, and keeps everything, if a file appeared since the check
        os.rename(staging, out)
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rename(out, old / "run")
        failpoint("write:between-renames")
        os.rename(staging, out)
        shutil.rmtree(old)  # checked above: only files the old run's manifest lists


def add_to_run(run: str | Path, paths: list[str]) -> None:
    """Record files a later command wrote into a complete run (``report.html``, ``explain/...``) in
    its manifest, so the run still holds only files its manifest lists."""
    run = Path(run)
    manifest = read_manifest(run)
    if manifest is None:
        raise RunDirectoryError(f"{str(run)!r} is not a complete niwt run (no niwt {MANIFEST})")
    added = {Path(p).as_posix() for p in paths}
    files = sorted(set(manifest.files) | added)
    checksums = {**manifest.checksums, **_checksums(run, sorted(added))} if manifest.checksums else {}
    write_json(run / MANIFEST, {**manifest.to_dict(), "files": files, "checksums": checksums})


# --- finished stages, and resuming a killed run -------------------------------------------------

STAGES = "stages"
STAGE_RECORD = "stage.json"
_LOCK = ".niwt-lock.json"


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
        problem = _first_mismatch(path, files) if isinstance(files, dict) else None
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
            files = [p for p in _listing(tmp) if (tmp / p).is_file()]
            write_json(tmp / STAGE_RECORD, {"name": name, "key": key,
                                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                            "files": _checksums(tmp, files)})
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned_staging(out: Path) -> Path | None:
    """The newest staging directory of ``out`` left by a run that is no longer running."""
    found = []
    for path in out.parent.glob(f".{out.name}.*.partial"):
        if not (path / _LOCK).exists() and read_manifest(path) is not None:
            found.append(path)  # complete, killed while being moved into place
            continue
        try:
            lock = json.loads((path / _LOCK).read_text(encoding="utf-8"))
            pid = None if lock["pid"] is None else int(lock["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a niwt staging directory, or one being set up
        if pid is None or (pid != os.getpid() and not _alive(pid)):
            found.append(path)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _new_staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the run's mode
    return staging


@contextmanager
def run_dir(out: str | Path, force: bool = False, command: str = "", resume: bool = False) -> Iterator[Path]:
    """Yield a staging directory; move it to ``out`` when the block ends without error.

    ``out`` is checked before the block runs (so a refused directory costs no training) and again
    before the move. On an error, the staging directory is removed and ``out`` is untouched; on
    Ctrl-C it is kept, so that ``resume`` can continue it.

    With ``resume``, the staging directory of a killed run aimed at ``out`` is taken over (its
    finished stages and checkpoints are reused), or, when ``out`` holds a complete niwt run, its
    finished stages are copied into a new one and the run replaces it once complete.
    """
    out = Path(out)
    state = check_output_dir(out, force or resume)
    staging = _abandoned_staging(out) if resume else None
    for old in out.parent.glob(f".{out.name}.*.old"):  # a replaced niwt run a kill left behind
        if [p.name for p in old.iterdir()] == ["run"] and read_manifest(old / "run") is not None:
            shutil.rmtree(old, ignore_errors=True)
    if staging is not None:
        log.info("resuming the run in %s (finished stages: %s)", staging,
                 ", ".join(StageStore(staging).finished()) or "none")
    else:
        staging = _new_staging(out)
        if resume and state == "run" and (out / STAGES).is_dir():
            shutil.copytree(out / STAGES, staging / STAGES, dirs_exist_ok=True)
            log.info("resuming from the complete run in %s", out)
    write_json(staging / _LOCK, {"pid": os.getpid(), "command": command})
    try:
        yield staging
        _finish(out, staging, command, force or resume, StageStore(staging).finished())
    except KeyboardInterrupt:
        write_json(staging / _LOCK, {"pid": None, "command": command, "interrupted": True})
        log.warning("interrupted: the unfinished run is kept in %s; run the same command with --resume to "
                    "continue it, or delete that directory", staging)
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def in_run_dir(out: str | Path, force: bool, body: Callable[[Path], T], command: str = "",
               resume: bool = False) -> T:
    """Call ``body(staging)`` inside :func:`run_dir` and return what it returns.

    Under torchrun (:mod:`niwt.distributed`) rank 0 alone writes ``out``: the other processes run
    ``body`` with a private temporary directory outside ``out``'s folder (no staging directory, no
    manifest, no lock; the few files they would write are deleted with it), and every process
    waits for rank 0 to finish the run directory before returning.
    """
    from niwt import distributed

    if distributed.is_distributed() and not distributed.is_main():
        with tempfile.TemporaryDirectory(prefix=f"niwt-rank{distributed.rank()}-") as scratch:
            value = body(Path(scratch))
        distributed.barrier()
        return value
    with run_dir(out, force, command, resume) as staging:
        value = body(staging)
    distributed.barrier()
    return value
