"""Writing run directories: a private staging directory, an atomic move into place, and the one
rule of every folder niwt writes.

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
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from niwt.errors import RunDirectoryError
from niwt.faults import failpoint
from niwt.messages import first_names
from niwt.rundir.about import owned_outputs
from niwt.rundir.files import checksums, listing, write_json
from niwt.rundir.layout import LOCK, MANIFEST, STAGES, is_about
from niwt.rundir.lock import run_lock
from niwt.rundir.manifest import Manifest, read_manifest
from niwt.rundir.stages import StageStore
from niwt.version import __version__

__all__ = ["check_output_dir", "check_file_folder", "write_files", "run_dir", "in_run_dir"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_SHOWN = 5  # entries named in an error message


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
    content = listing(out)
    if not content:
        return "empty"
    manifest = read_manifest(out)
    if manifest is None:
        top = sorted(p.name for p in out.iterdir())
        raise RunDirectoryError(
            f"output directory {str(out)!r} is not empty and is not a niwt run (no niwt {MANIFEST}); it holds "
            f"{_describe(top)}. niwt never deletes files it did not write, --force included: choose another "
            "--out, or an empty or missing directory")
    ours = set(manifest.files) | owned_outputs(out)
    listed = ours | {MANIFEST} | {p.rsplit("/", i)[0] for p in ours for i in range(1, p.count("/") + 1)}  # parent dirs
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
    written = tuple(p for p in listing(staging) if (staging / p).is_file() and p != LOCK)
    _share_as_umask(staging, written)
    files = tuple(p for p in written if not is_about(p))  # what commands wrote about it is not the run
    manifest = Manifest(command=command, files=files, niwt_version=__version__,
                        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), stages=stages,
                        checksums=checksums(staging, files))
    write_json(staging / MANIFEST, manifest.to_dict())
    failpoint("write:after-manifest")
    (staging / LOCK).unlink(missing_ok=True)  # from here on a complete run: resumable by its manifest
    with run_lock(out):
        _move_into_place(out, staging, force)


def _move_into_place(out: Path, staging: Path, force: bool) -> None:
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
        shutil.rmtree(old)  # checked above: only files the old run's manifest and its outputs record list


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
        if not (path / LOCK).exists() and read_manifest(path) is not None:
            found.append(path)  # complete, killed while being moved into place
            continue
        try:
            lock = json.loads((path / LOCK).read_text(encoding="utf-8"))
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
    write_json(staging / LOCK, {"pid": os.getpid(), "command": command})
    try:
        yield staging
        _finish(out, staging, command, force or resume, StageStore(staging).finished())
    except KeyboardInterrupt:
        write_json(staging / LOCK, {"pid": None, "command": command, "interrupted": True})
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
