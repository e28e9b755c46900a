"""Hostile dataset files: every loader and ``inspect_dataset`` either works or raises a niwt error naming the file.

A miniature dataset of each format is built once; every example copies it, damages one to three of
its files (truncated, binary junk, non-UTF-8 bytes, NaN / huge / empty tokens, 10^6-character
fields, lines removed or repeated, files deleted, ``.mat`` fields replaced by values of the wrong
type or shape) and loads the copy. The property: only :class:`~niwt.errors.NIWTError` subclasses
escape, each message names a file of the dataset, the dataset folder or a field; ``inspect_dataset``
never raises for a damaged dataset of a known format.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from niwt.data.inspect import InspectReport, inspect_dataset
from niwt.data.loaded import LoadedDataset
from niwt.data.registry import load_dataset
from niwt.errors import NIWTError
from tests._fixtures_data import make_awa2, make_cub, make_folder, make_xlsa17

log = logging.getLogger("niwt.tests.hostile")

EXAMPLES = int(os.environ.get("NIWT_HOSTILE_EXAMPLES", "100"))
"""Examples per format; raise it (``NIWT_HOSTILE_EXAMPLES=2000``) for a deeper search."""

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE_TOKENS = (
    "", " ", "nan", "NaN", "-nan", "inf", "-inf", "1e999", "-1e999", "-1", "0", "1.5", "abc", "é", "\x00",
    "9" * 5000, "99999999999999999999", "-99999999999999999999", "0x1F", "1_000", "..", "/abs/path", "../up",
    "a,b", '"', "\ufeff", "\u2028", "C:\\x", "<huge>", "z" * 300, ".", "a/b",
)
JUNK = st.binary(min_size=1, max_size=64) | st.sampled_from(
    [b"\xff\xfe\x00", b"\x80\x81\x82", b"\x00" * 16, b"MATLAB 5.0 MAT-file", b"\xef\xbb\xbf", b"\r\r\n\n"])

MAT_VALUES = (
    "nan", "inf", "empty", "string", "cell", "cube", "transpose", "negative", "zero", "huge", "complex", "bool",
    "struct", "row", "float_frac", "column_of_one", "delete",
)

TEXT_OPS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("junk"), JUNK),
    st.tuples(st.just("insert"), st.floats(0.0, 1.0), JUNK),
    st.tuples(st.just("token"), st.integers(0, 400), st.integers(0, 50), st.sampled_from(HOSTILE_TOKENS)),
    st.tuples(st.just("drop_line"), st.integers(0, 400)),
    st.tuples(st.just("dup_line"), st.integers(0, 400)),
    st.tuples(st.just("long_line"), st.integers(0, 400)),
    st.tuples(st.just("latin1"),),
    st.tuples(st.just("empty"),),
    st.tuples(st.just("delete"),),
    st.tuples(st.just("directory"),),
)
MAT_OPS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("junk"), JUNK),
    st.tuples(st.just("insert"), st.floats(0.0, 1.0), JUNK),
    st.tuples(st.just("field"), st.integers(0, 20), st.sampled_from(MAT_VALUES)),
    st.tuples(st.just("empty"),),
    st.tuples(st.just("delete"),),
)


def _build(base: Path, fmt: str) -> tuple[Path, dict[str, object]]:
    """A miniature dataset of ``fmt`` under ``base``: ``(path to load, loader options)``."""
    if fmt == "awa2":
        make_awa2(base, images_per_class=2)
        return base, {"split_dir": base / "xlsa17_AWA2"}
    if fmt == "cub":
        make_cub(base, images_per_class=2)
        return base, {}
    if fmt == "folder":
        return make_folder(base, images_per_class=2), {}
    return make_xlsa17(base, image_files=True, per_class=3), {"image_root": base / "TOY_images" / "JPEGImages"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, tuple[Path, Path, dict[str, object]]]:
    """Per format: ``(base folder, path to load, loader options)`` of an intact dataset."""
    out = {}
    for fmt in ("awa2", "cub", "folder", "xlsa17"):
        base = tmp_path_factory.mktemp(f"pristine_{fmt}")
        path, options = _build(base, fmt)
        out[fmt] = (base, path, options)
    return out


def _targets(base: Path) -> list[Path]:
    """The files a mutation may damage: every non-image file, and the first image file."""
    files = sorted(p for p in base.rglob("*") if p.is_file())
    text = [p for p in files if p.suffix.lower() not in (".jpg", ".png")]
    images = [p for p in files if p.suffix.lower() in (".jpg", ".png")]
    return text + images[:1]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def _text_op(path: Path, op: tuple) -> None:
    """Apply one byte-level or line-level mutation to ``path``."""
    kind = op[0]
    data = path.read_bytes() if path.is_file() else b""
    if kind == "truncate":
        path.write_bytes(data[: int(len(data) * op[1])])
    elif kind == "junk":
        path.write_bytes(op[1])
    elif kind == "insert":
        at = int(len(data) * op[1])
        path.write_bytes(data[:at] + op[2] + data[at:])
    elif kind == "token":
        lines = _lines(path)
        r = op[1] % len(lines)
        tokens = re.split(rb"([\s,]+)", lines[r])
        words = [i for i, t in enumerate(tokens) if t and not re.fullmatch(rb"[\s,]+", t)]
        value = b"10" * 500_000 if op[3] == "<huge>" else op[3].encode("utf-8")
        if words:
            tokens[words[op[2] % len(words)]] = value
        else:
            tokens.append(value)
        lines[r] = b"".join(tokens)
        path.write_bytes(b"\n".join(lines))
    elif kind == "drop_line":
        lines = _lines(path)
        del lines[op[1] % len(lines)]
        path.write_bytes(b"\n".join(lines))
    elif kind == "dup_line":
        lines = _lines(path)
        r = op[1] % len(lines)
        lines.insert(r, lines[r])
        path.write_bytes(b"\n".join(lines))
    elif kind == "long_line":
        lines = _lines(path)
        lines.insert(op[1] % (len(lines) + 1), b"x" * 1_000_000)
        path.write_bytes(b"\n".join(lines))
    elif kind == "latin1":
        path.write_bytes(data + "\ncaf\xe9 na\xefve \xff\n".encode("latin-1"))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "delete":
        path.unlink()
    elif kind == "directory":
        path.unlink()
        path.mkdir()


def _mat_value(original: np.ndarray, kind: str) -> object:
    """A replacement of a ``.mat`` field of the wrong type, shape or range."""
    arr = np.asarray(original)
    shape = arr.shape if arr.dtype != object else (3, 1)
    values = {
        "nan": np.full(shape, np.nan),
        "inf": np.full(shape, np.inf),
        "empty": np.zeros((0, 0)),
        "string": "not a matrix",
        "cell": np.array([[np.array(["a"])], [np.array(["b"])]], dtype=object),
        "cube": np.ones((2, 2, 2)),
        "transpose": arr.T if arr.dtype != object else arr,
        "negative": -np.abs(np.ones(shape)) * 3,
        "zero": np.zeros(shape),
        "huge": np.full(shape, 1e300),
        "complex": np.ones(shape) * (1 + 2j),
        "bool": np.ones(shape, dtype=bool),
        "struct": {"a": np.ones(2), "b": "x"},
        "row": np.arange(1, 4, dtype=np.float64).reshape(1, -1),
        "float_frac": np.full(shape, 1.5),
        "column_of_one": np.ones((1, 1)),
    }
    return values[kind]


def _mat_op(path: Path, op: tuple) -> None:
    """Apply one mutation to a ``.mat`` file: bytes, or one field rewritten with a hostile value."""
    if op[0] != "field":
        _text_op(path, op)
        return
    try:
        mat = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except Exception:  # already damaged by an earlier mutation: damage it further
        _text_op(path, ("truncate", 0.5))
        return
    if not mat:
        return
    name = sorted(mat)[op[1] % len(mat)]
    if op[2] == "delete":
        del mat[name]
    else:
        mat[name] = _mat_value(mat[name], op[2])
    scipy.io.savemat(path, mat)


def _mutate(base: Path, choice: int, text_op: tuple, mat_op: tuple) -> None:
    """Damage the ``choice``-th target file of ``base``: ``mat_op`` for a ``.mat`` file, else ``text_op``."""
    targets = _targets(base)
    if not targets:
        return
    path = targets[choice % len(targets)]
    if path.suffix == ".mat":
        _mat_op(path, mat_op)
    else:
        _text_op(path, text_op)


def _names_a_file_or_field(message: str, base: Path) -> bool:
    """Whether an error message names the dataset folder, one of its files, or a `field`."""
    if str(base) in message or re.search(r"`[^`]+`", message):
        return True
    names = {p.name for p in base.rglob("*")}
    return any(name in message for name in names)


def _check_load(path: Path, base: Path, fmt: str | None, options: dict[str, object], tally: Counter) -> None:
    """Load ``path``: a record, or a niwt error that names a file or field; never another exception."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # unreadable images are reported, then left out
            warnings.simplefilter("error", RuntimeWarning)  # no NaN / overflow from numpy on the way
            loaded = load_dataset(path, format=fmt, **options)
    except NIWTError as err:
        tally["niwt_error"] += 1
        message = str(err)
        assert _names_a_file_or_field(message, base), f"message names no file or field: {message[:300]}"
        assert len(message) < 20_000, f"message of {len(message)} characters"
        return
    tally["loaded"] += 1
    assert isinstance(loaded, LoadedDataset)
    assert np.isfinite(loaded.data.knowledge).all()


def _check_inspect(path: Path, base: Path, fmt: str | None, tally: Counter) -> None:
    """Inspect ``path``: a report listing the problems, or (when the folder is not of the format at all) a
    niwt error naming the folder; never another exception."""
    try:
        report = inspect_dataset(path, format=fmt)
    except NIWTError as err:
        assert _names_a_file_or_field(str(err), base), f"message names no file: {str(err)[:300]}"
        tally["inspect_error"] += 1
        return
    assert isinstance(report, InspectReport)
    assert len(report.format_text()) < 100_000
    tally["inspected"] += 1


def _run_example(pristine_entry, fmt: str, mutations: list, detect: bool, tally: Counter) -> None:
    base0, path0, options0 = pristine_entry
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "ds"
        shutil.copytree(base0, base)
        path = base / path0.relative_to(base0)
        options = {k: base / Path(v).relative_to(base0) if isinstance(v, Path) else v for k, v in options0.items()}
        for choice, text_op, mat_op in mutations:
            _mutate(base, choice, text_op, mat_op)
        tally["tried"] += 1
        _check_load(path, base, None if detect else fmt, options, tally)
        _check_inspect(path, base, None if detect else fmt, tally)


@pytest.mark.parametrize("fmt", ["awa2", "cub", "folder", "xlsa17"])
def test_loaders_survive_hostile_files(pristine, fmt, record_property):
    tally: Counter = Counter()

    @SETTINGS
    @given(mutations=st.lists(st.tuples(st.integers(0, 1000), TEXT_OPS, MAT_OPS), min_size=1, max_size=3),
           detect=st.booleans())
    def check(mutations, detect):
        _run_example(pristine[fmt], fmt, mutations, detect, tally)

    check()
    record_property("hostile_inputs", tally["tried"])
    log.info(f"hostile {fmt} datasets: {dict(tally)}")
    assert tally["tried"] >= 50 and tally["niwt_error"] > 0
