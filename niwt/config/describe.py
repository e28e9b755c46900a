"""``niwt config``: every key of a config, grouped by section, with its value and its help, as TOML."""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

from niwt.config.schema import RunConfig

__all__ = ["describe_config"]


def _attribute_help(cls: type) -> dict[str, str]:
    """``name -> help`` from the ``Attributes:`` sections of a config class's docstring and its bases'."""
    out: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base) and base.__doc__:
            out.update(_own_attribute_help(base))
    out.update(_own_attribute_help(cls))
    return out


def _own_attribute_help(cls: type) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    if "Attributes:" not in lines:
        return out
    current = None
    for line in lines[lines.index("Attributes:") + 1 :]:
        if not line.startswith("    "):
            break
        head, sep, text = line.strip().partition(": ")
        if line.startswith("        ") and current is not None:
            out[current] += " " + line.strip()
        elif sep and head.isidentifier():
            current = head
            out[current] = text
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def describe_config(config: Any = None) -> str:
    """Every key of ``config`` (default: the defaults) as ``section.key = value  # help``, by section."""
    config = config if config is not None else RunConfig()
    lines: list[str] = []

    def walk(obj: Any, prefix: str) -> None:
        helps = _attribute_help(type(obj))
        scalars = [f for f in dataclasses.fields(obj) if not dataclasses.is_dataclass(getattr(obj, f.name))]
        if scalars:
            lines.append(f"[{prefix}]" if prefix else "# top level")
            width = max(len(f.name) for f in scalars)
            for f in scalars:
                value = getattr(obj, f.name)
                if value is None:  # TOML has no null: an unset key is shown commented out
                    lines.append(f"# {f.name:<{width - 2}} = {'(unset)':<24} # {helps.get(f.name, '')}".rstrip())
                else:
                    lines.append(f"{f.name:<{width}} = {_toml_value(value):<24} # {helps.get(f.name, '')}".rstrip())
            lines.append("")
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}.{f.name}" if prefix else f.name)

    walk(config, "")
    return "\n".join(lines).rstrip() + "\n"
