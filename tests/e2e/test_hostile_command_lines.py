"""Hostile config files, ``--set`` overrides and command lines: only niwt errors, named fields, exit status 2.

* :func:`niwt.config.load_config` on TOML documents with values of every TOML type in every key
  (huge integers, NaN and infinities, dates, nested arrays and tables, 10^6-character strings),
  and on raw text: truncated, binary, non-UTF-8, nested thousands of levels deep;
* :func:`niwt.config.apply_overrides` on ``--set`` strings with values of every TOML type;
* :func:`niwt.cli.main` on hostile argument lists, config files and dataset folders (the run stops
  right after the dataset is opened, before any training).

The property: only :class:`~niwt.errors.NIWTError` subclasses escape, each naming the file or the
field; the command line returns 0 or 2 (argparse exits with 2), never 1, and prints no traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import niwt.pipeline.commands
import niwt.pipeline.experiments
import niwt.pipeline.inputs
from niwt.cli import main
from niwt.config import RunConfig, apply_overrides, load_config, to_dict
from niwt.errors import ConfigError, NIWTError
from niwt.pipeline.presets import quick_config
from tests._fixtures_data import make_awa2, make_folder, make_xlsa17

log = logging.getLogger("niwt.tests.hostile")

EXAMPLES = int(os.environ.get("NIWT_HOSTILE_EXAMPLES", "100"))
"""Examples per property; raise it (``NIWT_HOSTILE_EXAMPLES=2000``) for a deeper search."""

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

NUMPY_SEED_LIMIT = 2**32
"""Seeds at or above this break ``numpy.random.seed`` (see :func:`test_seed_beyond_numpy_range_is_an_input_error`);
the properties keep seeds below it."""


def _leaves(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        out.extend(_leaves(value, dotted) if isinstance(value, dict) else [(dotted, value)])
    return out


DEFAULTS = to_dict(RunConfig(), keep_unset=True)
KEYS = _leaves(DEFAULTS)
"""Every ``(dotted key, default)`` of the run config (the data table of the default shapes world)."""
SECTIONS = sorted(k for k, v in DEFAULTS.items() if isinstance(v, dict))
DATA_KINDS_SHOWN = ("shapes", "awa2", "cub", "xlsa17", "folder")

BIG_STRING = "x" * 1_000_000
INTS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2, 3, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, -(2**63), 2**63,
                     2**64, 10**30, -(10**30)]),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e-300, 1e300, -1e300, math.nan, math.inf, -math.inf, 5e-324, 0.5, 1.0])
STRINGS = st.text(max_size=20) | st.sampled_from(
    ["", " ", "seen", "noise", "vgg", "resnet", "linear", "mlp", "l2", "zscore", "text", "sum", "fast", "reference",
     "shapes", "awa2", "cub", "xlsa17", "folder", "nan", "1e-3", "\x00", "é", "\ud7ff", "../..", BIG_STRING])
DATES = st.datetimes() | st.dates() | st.times() | st.datetimes(timezones=st.just(dt.timezone.utc))
SCALARS = st.one_of(INTS, FLOATS, st.booleans(), STRINGS, DATES)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _hostile_value(default: object) -> st.SearchStrategy:
    """Values for a key: anything, or something close to its default's type (to get past the type check)."""
    if isinstance(default, bool):
        near = st.booleans()
    elif isinstance(default, int):
        near = INTS
    elif isinstance(default, float):
        near = FLOATS
    elif isinstance(default, str):
        near = STRINGS
    elif isinstance(default, list):
        near = st.lists(FLOATS | INTS | STRINGS, max_size=4)
    else:
        near = INTS | FLOATS | STRINGS
    return near | VALUES


@st.composite
def documents(draw) -> dict:
    """A config document: some real keys with hostile values, maybe a data kind, maybe unknown keys."""
    doc: dict = {}
    for dotted, default in draw(st.lists(st.sampled_from(KEYS), max_size=5, unique_by=lambda kv: kv[0])):
        node = doc
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[last] = draw(_hostile_value(default))
    if draw(st.booleans()):
        doc.setdefault("data", {}) if isinstance(doc.get("data", {}), dict) else None
        if isinstance(doc.get("data"), dict):
            doc["data"]["kind"] = draw(st.sampled_from(DATA_KINDS_SHOWN) | VALUES)
            if draw(st.booleans()):
                doc["data"]["root"] = draw(STRINGS)
    if draw(st.integers(0, 4)) == 0:
        doc[draw(st.text(min_size=1, max_size=10))] = draw(VALUES)
    return _without_nulls(doc)


def _without_nulls(value: object) -> object:
    """TOML has no null: drop ``None`` (unset defaults) from a document."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _deep(depth: int, kind: str) -> str:
    if kind == "array":
        return "seed = " + "[" * depth + "]" * depth + "\n"
    if kind == "inline":
        return "seed = " + "{a = " * depth + "1" + "}" * depth + "\n"
    return "[" + ".".join(["a"] * depth) + "]\nb = 1\n"


RAW_TEXT = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.integers(1, 5000), st.sampled_from(["array", "inline", "dotted"])).map(lambda t: _deep(*t).encode()),
    st.sampled_from([
        b"", b"\xff\xfe\x00\x00", b"seed = 1" + b"0" * 5000, b"seed = 0x" + b"f" * 5000, b"[transfer]\nlam = 1e999\n",
        b"[transfer]\nlam = nan\n", b"[train]\nepochs = 9223372036854775808\n",
        "seed = 1 # caf\xe9\n".encode("latin-1"),
        b"[data]\nkind = []\n", b"[data]\nkind = {a = 1}\n", b"[data]\nkind = \"folder\"\n", b"data = 3\n",
        b"[data]\nkind = \"awa2\"\nroot = \"/nonexistent\"\nval_fraction = inf\n", b"seed = -0\n",
        b"[model]\narch = \"\x00\"\n", b"seed = 1979-05-27T07:32:00Z\n", b"[[transfer]]\nlam = 1\n",
    ]),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def _serialise(doc: dict) -> bytes:
    return tomli_w.dumps(doc).encode("utf-8", "surrogatepass")


def _check_load_config(path: Path, tally: Counter) -> None:
    """``load_config``: a config whose floats are finite, or a ConfigError naming the file."""
    tally["tried"] += 1
    try:
        config = load_config(path)
    except ConfigError as err:
        tally["config_error"] += 1
        message = str(err)
        assert str(path).split("\x00")[0][:100] in message, f"message does not name the file: {message[:300]}"
        assert len(message) < 20_000, f"message of {len(message)} characters"
        return
    tally["loaded"] += 1
    for dotted, value in _leaves(to_dict(config)):
        assert not (isinstance(value, float) and not math.isfinite(value)), f"{dotted} = {value}"


def test_load_config_survives_hostile_documents(tmp_path, record_property):
    tally: Counter = Counter()
    path = tmp_path / "c.toml"

    @SETTINGS
    @given(doc=documents())
    def check(doc):
        path.write_bytes(_serialise(doc))
        _check_load_config(path, tally)

    check()
    record_property("hostile_inputs", tally["tried"])
    log.info(f"hostile TOML documents: {dict(tally)}")
    assert tally["tried"] >= min(EXAMPLES, 50) and tally["config_error"] > 0 and tally["loaded"] > 0


def test_load_config_survives_hostile_text(tmp_path, record_property):
    tally: Counter = Counter()
    path = tmp_path / "c.toml"

    @SETTINGS
    @given(data=RAW_TEXT, cut=st.floats(0.0, 1.0))
    def check(data, cut):
        path.write_bytes(data[: max(1, int(len(data) * cut))] if cut < 0.9 else data)
        _check_load_config(path, tally)

    check()
    for name in ("", "missing.toml", "dir", "nul\x00.toml", "n" * 5000 + ".toml"):
        (tmp_path / "dir").mkdir(exist_ok=True)
        _check_load_config(tmp_path / name if name else Path(""), tally)
    record_property("hostile_inputs", tally["tried"])
    log.info(f"hostile TOML text: {dict(tally)}")
    assert tally["tried"] >= min(EXAMPLES, 50) and tally["config_error"] > 0


def _toml_literal(value: object) -> str:
    """``value`` as the TOML text a ``--set`` would carry (bare text for strings half the time)."""
    return tomli_w.dumps({"v": value})[len("v = "):].rstrip("\n")


OVERRIDE_VALUES = st.one_of(
    VALUES.map(lambda v: _toml_literal(_without_nulls(v))),
    STRINGS,
    st.text(max_size=40),
    st.sampled_from(["[", "]", "{", "=", "==", "1=2", "[[[]]]", "[" * 3000 + "]" * 3000, "1" * 5000,
                     "0x" + "f" * 5000, "nan", "inf", "-inf", "true", "1979-05-27", "'quoted'", '"unterminated',
                     "1\nseed = 5", "[1, 'a']", "{kind = 'cub'}"]),
)
@st.composite
def typed_overrides(draw) -> str:
    """``key=value`` for a real key, with a value of (nearly) its type: it gets past the parser more often."""
    key, default = draw(st.sampled_from(KEYS))
    value = draw(_hostile_value(default) if default is not None else INTS | FLOATS | STRINGS)
    return f"{key}={_toml_literal(_without_nulls(value))}"


OVERRIDE_KEYS = st.one_of(
    st.sampled_from([k for k, _ in KEYS]),
    st.sampled_from(["data.kind", "data.root", "seed", "data", "transfer", "", ".", "..", "transfer.", ".lam",
                     "transfer.lam.x", "transfer.lam_grid[0]", "nope.key", "model.arch.", "x" * 10_000]),
    st.text(max_size=15),
)


def _names_a_key(message: str, overrides: list[str]) -> bool:
    """Whether ``message`` names one of the overrides, a dotted part of one of their keys, or a config field."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        parts = [p for p in key.split(".") if p]
        shown = [item, *parts]
        if any(text[:40] in message or repr(text)[1:41] in message for text in shown):
            return True
    return "`" in message


def test_overrides_survive_every_toml_type(record_property):
    tally: Counter = Counter()

    free = st.tuples(OVERRIDE_KEYS, OVERRIDE_VALUES, st.sampled_from(["=", " = ", "", "=="])).map("".join)

    @SETTINGS
    @given(overrides=st.lists(free | typed_overrides(), min_size=1, max_size=4))
    def check(overrides):
        tally["tried"] += 1
        try:
            config = apply_overrides(RunConfig(), overrides)
        except ConfigError as err:
            tally["config_error"] += 1
            message = str(err)
            assert _names_a_key(message, overrides), f"message names no key: {message[:300]}"
            assert len(message) < 20_000, f"message of {len(message)} characters"
            return
        tally["applied"] += 1
        assert isinstance(config, RunConfig)

    check()
    record_property("hostile_inputs", tally["tried"])
    log.info(f"hostile --set overrides: {dict(tally)}")
    assert tally["tried"] >= min(EXAMPLES, 50) and tally["config_error"] > 0 and tally["applied"] > 0


# ---------------------------------------------------------------------------------------------- the command line


class _StoppedBeforeTraining(NIWTError):
    """Raised in place of the training stages: the input made it through every check."""


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """Dataset folders a hostile config may point at: intact, damaged, missing, not a folder."""
    base = tmp_path_factory.mktemp("cli_data")
    folder = make_folder(base / "folder", images_per_class=2)
    broken = make_folder(base / "broken", images_per_class=2)
    (broken / "classes.csv").write_bytes(b"class,split,stripes\nzebra,seen,nan\n\xff\xfe\n")
    awa2 = make_awa2(base / "awa2", images_per_class=1)
    (awa2 / "predicate-matrix-continuous.txt").write_bytes(b"1 2\n\x00\x00")
    xlsa17 = make_xlsa17(base / "xlsa17")
    (xlsa17 / "res101.mat").write_bytes((xlsa17 / "res101.mat").read_bytes()[:300])
    features_only = make_xlsa17(base / "features_only")
    (base / "a_file").write_text("not a folder")
    return {"folder": folder, "broken": broken, "awa2": awa2.parent, "xlsa17": xlsa17,
            "features_only": features_only, "file": base / "a_file", "missing": base / "missing"}


def _stub_training(monkeypatch) -> list[RunConfig]:
    """Stop every command right after its dataset is opened (file datasets are really opened).

    Returns:
        The configs the commands opened their runs with, in order (filled as they run).
    """
    real_open = niwt.pipeline.inputs.open_run
    opened: list[RunConfig] = []

    def open_then_stop(config, data=None, images=None):
        opened.append(config)
        if getattr(config.data, "kind", "shapes") != "shapes":
            real_open(config, data, images)
        raise _StoppedBeforeTraining("stopped before training")

    # every command opens its run through one of these two names (a missing one fails here)
    for module in (niwt.pipeline.commands, niwt.pipeline.experiments):
        monkeypatch.setattr(module, "open_run", open_then_stop)
    return opened


FLAG_VALUES = st.one_of(
    st.sampled_from(["-1", "0", "1", "3", "nan", "inf", "1e999", "", " ", "niwt", "niwt,ale", ",,", "niwt,bogus",
                     "0.1,nan", "1,-1", "x" * 2000, "\x00", str(NUMPY_SEED_LIMIT - 1), "99999999999999999999"]),
    st.text(max_size=10),
)


@st.composite
def command_lines(draw, config_files: list[str], roots: list[str]) -> list[str]:
    """A hostile argument list for one of the commands (never ``--debug``, which asks for tracebacks)."""
    command = draw(st.sampled_from(["config", "run", "compare", "sweep-lambda", "reproduce", "demo", "bogus", ""]))
    argv = [command] if command else []
    if command != "demo" and draw(st.integers(0, 3)):
        argv.append(draw(st.sampled_from(["good.toml", "files.toml", *config_files])))
    for _ in range(draw(st.integers(0, 4))):
        what = draw(st.sampled_from(["set", "typed_set", "typed_set", "set_root", "flag", "junk"]))
        if what == "set":
            argv += ["--set", f"{draw(OVERRIDE_KEYS)}={draw(OVERRIDE_VALUES)}"]
        elif what == "typed_set":
            argv += ["--set", draw(typed_overrides())]
        elif what == "set_root":
            argv += ["--set", f"data.kind={draw(st.sampled_from(DATA_KINDS_SHOWN))}",
                     "--set", f"data.root={draw(st.sampled_from(roots))}"]
        elif what == "flag":
            flag = draw(st.sampled_from(["--seeds", "--methods", "--lams", "--seed", "--out"]))
            argv += [flag, draw(FLAG_VALUES) if flag != "--out" else draw(st.sampled_from(["", "out", "o/u/t"]))]
        else:
            argv.append(draw(st.sampled_from(["--quick", "--quiet", "--force", "--resume", "--bogus", "-x", "--",
                                              "--set", "extra"]) | st.text(max_size=8)))
    return argv


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)``'s exit status (argparse's ``SystemExit`` included) and what it wrote to stderr."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().err


def test_cli_survives_hostile_command_lines(tmp_path, datasets, monkeypatch, record_property, capsys):
    _stub_training(monkeypatch)
    monkeypatch.chdir(tmp_path)
    files = {
        "good.toml": b"seed = 1\n[transfer]\nlam = 1e-4\n",
        "bad_type.toml": b"[transfer]\nlam = \"big\"\n",
        "nan.toml": b"[transfer]\nlam = nan\n",
        "huge.toml": b"seed = 1" + b"0" * 5000 + b"\n",
        "deep.toml": _deep(3000, "array").encode(),
        "latin1.toml": "seed = 1 # caf\xe9\n".encode("latin-1"),
        "binary.toml": bytes(range(256)),
        "empty.toml": b"",
        "files.toml": f'[data]\nkind = "folder"\nroot = "{datasets["folder"]}"\n'.encode(),
        "broken_files.toml": f'[data]\nkind = "folder"\nroot = "{datasets["broken"]}"\n'.encode(),
        "kind_list.toml": b"[data]\nkind = [1]\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "a_dir.toml").mkdir()
    config_files = [*files, "a_dir.toml", "missing.toml", "", "x" * 5000]
    roots = [str(p) for p in datasets.values()] + ["", "x" * 5000, "rel/ative"]
    tally: Counter = Counter()

    @SETTINGS
    @given(argv=command_lines(config_files, roots))
    def check(argv):
        for out in ("out", "o"):
            shutil.rmtree(tmp_path / out, ignore_errors=True)
        code, stderr = _run_cli(argv, capsys)
        tally["tried"] += 1
        tally[f"exit_{code}"] += 1
        tally["reached_training"] += "stopped before training" in stderr
        assert "Traceback" not in stderr, stderr[-2000:]
        assert code in (0, 2), f"exit status {code} for {argv!r}: {stderr[-1000:]}"

    check()
    record_property("hostile_inputs", tally["tried"])
    log.info(f"hostile command lines: {dict(tally)}")
    assert tally["tried"] >= min(EXAMPLES, 50) and tally["exit_2"] > 0


@pytest.mark.parametrize(("argv", "expected", "where"), [
    # a hostile --set: the message names its field, and what is wrong with the value
    (["config", "c.toml", "--set", "transfer.lam=nan"], "`transfer.lam` must be a finite number, got nan", ""),
    (["config", "c.toml", "--set", "data.kind=[1]"],
     "`data.kind` must be one of ['shapes', 'awa2', 'cub', 'xlsa17', 'folder'], got list [1]", ""),
    (["config", "c.toml", "--set", "seed=" + "9" * 5000],
     "`seed`: value '" + "9" * 80 + "... (5000 characters)' is not a usable TOML value", ""),
    (["config", "c.toml", "--set", "seed=" + "[" * 3000 + "]" * 3000],
     "`seed`: value '" + "[" * 80 + "... (6000 characters)' nests arrays or tables too deeply", ""),
    # a hostile file: the message names the file, and the field or the line
    (["config", "nul\x00.toml"], "cannot read config file 'nul\\x00.toml': embedded null byte", ""),
    (["config", "nan.toml"], "nan.toml: `transfer.lam` must be a finite number, got nan", ""),
    (["config", "cut.toml"], "cut.toml: not valid TOML: ", "(at line 2, column 10)"),
])
def test_cli_names_the_field_or_the_file_of_hostile_input(tmp_path, monkeypatch, argv, expected, where, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("seed = 1\n")
    (tmp_path / "nan.toml").write_text("seed = 1\n[transfer]\nlam = nan\n")
    (tmp_path / "cut.toml").write_text("seed = 1\n[transfer\nlam = 1\n")
    code, stderr = _run_cli(argv, capsys)
    assert code == 2 and "Traceback" not in stderr
    assert stderr.startswith("niwt: error: " + expected) and where in stderr, stderr[:500]
    assert stderr.count("\n") == 1, stderr[:500]  # one line, however long the value


def test_seed_beyond_numpy_range_is_an_input_error(tmp_path, monkeypatch, capsys):
    _stub_training(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("")
    code, stderr = _run_cli(["run", "c.toml", "--set", f"seed={NUMPY_SEED_LIMIT}"], capsys)
    # refused by the config check, before the dataset is opened
    assert code == 2 and "seed` must lie in" in stderr and "stopped before training" not in stderr, stderr


def test_compare_on_a_file_dataset_reaches_training(tmp_path, datasets, monkeypatch, capsys):
    opened = _stub_training(monkeypatch)
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--set", "data.kind=folder", "--set", f"data.root={datasets['folder']}"]
    code, stderr = _run_cli(argv, capsys)
    assert code == 2 and "stopped before training" in stderr, stderr
    # the folder dataset was the one opened (the stub stops a shapes world the same way)
    assert len(opened) == 1 and opened[0].data.kind == "folder", opened
    assert Path(opened[0].data.root) == datasets["folder"]


def test_quick_on_a_file_dataset_keeps_the_dataset_and_reaches_training(tmp_path, datasets, monkeypatch, capsys):
    opened = _stub_training(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(f'[data]\nkind = "folder"\nroot = "{datasets["folder"]}"\n')
    code, stderr = _run_cli(["run", "c.toml", "--quick"], capsys)
    assert code == 2 and "stopped before training" in stderr, stderr
    # --quick shrinks the models and the training but keeps the file's dataset (a tiny shapes world
    # in its place would reach the stub the same way)
    assert len(opened) == 1, opened
    got, quick = opened[0], quick_config(load_config(tmp_path / "c.toml"))
    assert got.data.kind == "folder" and Path(got.data.root) == datasets["folder"]
    assert replace(got.data, seed=None) == quick.data  # as the file has it (the run gives it the run's seed)
    assert (got.model.width, got.train.epochs, got.transfer.max_steps) == (4, 1, 5)  # the quick preset's
    assert (got.train, got.transfer) == (quick.train, quick.transfer)
