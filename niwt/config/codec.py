"""TOML in and out: a config read from a file (unknown keys and wrong types rejected, naming the
dotted key, the expected type and what was given), ``--set`` overrides, a config as a dictionary
and back, and the resolved config written next to every output."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from niwt.config.schema import RunConfig
from niwt.data.registry import DATA_KINDS, DataConfig
from niwt.errors import ConfigError

__all__ = ["from_dict", "to_dict", "load_config", "apply_overrides", "save_config"]

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


_INT64 = 2**63
"""Integer settings must lie in (-2**63, 2**63): every count, size and seed fits a 64-bit integer."""

_MAX_STRING = 4096
"""The longest string setting: names and choices are short, and paths fit the system's PATH_MAX."""


def _shown(value: Any) -> str:
    """``type value`` for a message: the value's repr cut to a few nested levels and 80 characters."""
    import reprlib

    class Short(reprlib.Repr):
        def repr_int(self, x: int, level: int) -> str:  # repr of an int of thousands of digits fails
            return f"<integer of {x.bit_length()} bits>" if x.bit_length() > 128 else super().repr_int(x, level)

    short = Short()
    short.maxlevel, short.maxstring, short.maxother, short.maxlist, short.maxdict = 3, 80, 80, 8, 8
    short.maxlong = 40
    return f"{type(value).__name__} {short.repr(value)}"


def _convert_data(value: Any, key: str) -> Any:
    """The ``[data]`` table: its ``kind`` says which dataset config it is."""
    if not isinstance(value, dict):
        raise ConfigError(f"`{key}` must be a table of settings, got {_shown(value)}")
    kind = value.get("kind", "shapes")
    if not isinstance(kind, str) or kind not in DATA_KINDS:
        raise ConfigError(f"`{key}.kind` must be one of {list(DATA_KINDS)}, got {_shown(kind)}")
    return from_dict(DATA_KINDS[kind], value, prefix=key)


def _convert_scalar(value: Any, tp: Any, key: str) -> Any:
    """A bool, int, float or str setting: the type must match (an int is a valid float), numbers finite."""
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` must be a boolean (true/false), got {_shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{key}` must be an integer, got {_shown(value)}")
        if not -_INT64 < value < _INT64:
            raise ConfigError(f"`{key}` must be an integer of at most 64 bits, got {_shown(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` must be a number, got {_shown(value)}")
        if isinstance(value, int) and not -_INT64 < value < _INT64:
            raise ConfigError(f"`{key}` must be a finite number, got {_shown(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"`{key}` must be a finite number, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{key}` must be a string, got {_shown(value)}")
        if len(value) > _MAX_STRING:
            raise ConfigError(f"`{key}` must be a string of at most {_MAX_STRING} characters, got {_shown(value)}")
        return value
    raise ConfigError(f"`{key}`: unsupported setting type {_type_name(tp)}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists/ints where lossless.

    Raises:
        ConfigError: naming ``key``, the expected type and (shortened) what was given.
    """
    origin = typing.get_origin(tp)
    if tp == DataConfig:
        return _convert_data(value, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a table of settings, got {_shown(value)}")
        return from_dict(tp, value, prefix=key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list, got {_shown(value)}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"`{key}` has the wrong type: {'; '.join(errors)}")
    return _convert_scalar(value, tp, key)


def from_dict(cls: type[T], values: dict[str, Any], *, prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a (nested) dict, rejecting unknown keys and wrong types.

    Raises:
        ConfigError: for an unknown key (the valid ones listed), a value of the wrong type, or a
            value the dataclass refuses; the message names the dotted key.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"`{prefix or 'top level'}` must be a table of settings, got {_shown(values)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(f"unknown setting `{_clip(dotted)}`; valid keys here: {', '.join(names)}")
        kwargs[key] = _convert(value, hints[key], dotted)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError, ArithmeticError) as err:
        raise ConfigError(f"invalid settings under `{prefix or 'top level'}`: {err}") from err


def _clip(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (with the full length stated) for a message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def to_dict(config: Any, *, keep_unset: bool = False) -> dict[str, Any]:
    """Turn a (nested) config dataclass into plain TOML/JSON-ready values (tuples become lists).

    Unset (``None``) settings are left out, as TOML has no null, unless ``keep_unset``.
    """

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)
                    if keep_unset or getattr(v, f.name) is not None}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(config)


def load_config(path: str | Path, cls: type[T] = RunConfig) -> T:  # type: ignore[assignment]
    """Read a TOML file into ``cls``; errors name the file and the offending key.

    Raises:
        ConfigError: for a file that cannot be read, is not UTF-8, is not valid TOML (or nests
            deeper than the parser can follow), or holds an unknown key or a value of the wrong type.
    """
    path = Path(path)
    shown = _clip(str(path))
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config file {shown!r}: {err.strerror or err}") from err
    except ValueError as err:  # e.g. a NUL byte in the name
        raise ConfigError(f"cannot read config file {shown!r}: {err}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{shown}, line {line}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{shown}: not valid TOML: {err}") from err
    except ValueError as err:  # an integer of thousands of digits
        raise ConfigError(f"{shown}: not valid TOML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{shown}: not valid TOML: arrays or tables nested too deeply") from None
    try:
        return from_dict(cls, values)
    except ConfigError as err:
        raise ConfigError(f"{shown}: {err}") from err


def _parse_value(text: str) -> Any:
    """An override's value: a TOML value, else (a bare word, or text that is not one TOML value) the text itself.

    Raises:
        ConfigError: for a value nested deeper than the TOML parser can follow, or an integer of
            thousands of digits.
    """
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text  # bare words are strings: --set transfer.pool=seen
    except ValueError as err:  # an integer of thousands of digits
        raise ConfigError(f"value {_clip(text, 80)!r} is not a usable TOML value: {err}") from None
    except RecursionError:
        raise ConfigError(f"value {_clip(text, 80)!r} nests arrays or tables too deeply") from None
    return parsed["v"] if set(parsed) == {"v"} else text


def _switch_kind(node: dict[str, Any], key: str, new_kind: Any) -> None:
    """Replace the ``[data]`` table ``node`` by the defaults of dataset kind ``new_kind``."""
    if not isinstance(new_kind, str) or new_kind not in DATA_KINDS:
        raise ConfigError(f"`{key}` must be one of {list(DATA_KINDS)}, got {_shown(new_kind)}")
    node.clear()  # another kind of dataset: its own fields, from their defaults
    node.update({f.name: f.default for f in dataclasses.fields(DATA_KINDS[new_kind])
                 if f.default is not dataclasses.MISSING})


def apply_overrides(config: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Apply ``key.sub=value`` overrides (values parsed as TOML, bare words as strings).

    Raises:
        ConfigError: for an override without ``=``, an unknown section or key (the valid ones
            listed), or a value of the wrong type; the message names the override.
    """
    values = to_dict(config, keep_unset=True)
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {_clip(str(item), 80)!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        shown = _clip(item, 80)
        parts = key.split(".")
        node = values
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                where = _clip(".".join(parts[: i + 1]), 80)
                valid = ", ".join(k for k, v in node.items() if isinstance(v, dict))
                raise ConfigError(f"unknown config section `{where}` in override {shown!r}; sections: {valid}")
            node = node[part]
        try:
            value = _parse_value(raw.strip())
        except ConfigError as err:
            raise ConfigError(f"`{_clip(key, 80)}`: {err}") from None
        if parts[-1] == "kind" and isinstance(node.get("kind"), str) and value != node["kind"]:
            _switch_kind(node, key, value)
        elif parts[-1] not in node:
            raise ConfigError(
                f"unknown setting `{_clip(key, 80)}` in override {shown!r}; valid keys here: {', '.join(node)}"
            )
        node[parts[-1]] = value
    return from_dict(type(config), values)


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as TOML."""
    Path(path).write_text(tomli_w.dumps(to_dict(config)), encoding="utf-8")
