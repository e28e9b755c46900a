"""Typed, frozen configuration for every stage, loaded from TOML with strict checking.

Each stage has its own frozen dataclass; :class:`RunConfig` nests them. :func:`load_config` reads a
TOML file, :func:`apply_overrides` applies ``--set section.key=value`` strings, and both reject
unknown keys (listing the valid ones) and values of the wrong type (naming the dotted key, the
expected type and what was given). :func:`save_config` writes the resolved config next to outputs.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from niwt.data.shapes import ShapesConfig
from niwt.errors import ConfigError

__all__ = [
    "KnowledgeConfig",
    "ModelConfig",
    "TrainConfig",
    "ImportanceConfig",
    "MappingConfig",
    "TransferConfig",
    "EvalConfig",
    "CompareConfig",
    "METHOD_NAMES",
    "RunConfig",
    "from_dict",
    "to_dict",
    "load_config",
    "apply_overrides",
    "save_config",
]

T = TypeVar("T")


def _choice(section: str, name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"`{section}.{name}` must be one of {list(valid)}, got {value!r}")


def _positive(section: str, obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ConfigError(f"`{section}.{name}` must be > 0, got {value!r}")


@dataclass(frozen=True)
class KnowledgeConfig:
    """How class knowledge becomes vectors: attributes or text, and their normalisation."""

    source: str = "attributes"
    normalize: str = "l2"
    text_encoder: str = "tfidf"

    def __post_init__(self) -> None:
        _choice("knowledge", "source", self.source, ("attributes", "text"))
        _choice("knowledge", "normalize", self.normalize, ("none", "l2", "zscore"))
        _choice("knowledge", "text_encoder", self.text_encoder, ("tfidf", "sentence-transformers"))


@dataclass(frozen=True)
class ModelConfig:
    """Backbone family and size."""

    arch: str = "vgg"
    width: int = 32
    hidden: int = 256
    dropout: float = 0.3

    def __post_init__(self) -> None:
        _positive("model", self, "width", "hidden")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"`model.dropout` must lie in [0, 1), got {self.dropout!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Pre-training on source classes, then training on seen classes (fixed or finetuned)."""

    mode: str = "finetuned"
    pretrain_epochs: int = 10
    epochs: int = 12
    lr: float = 3e-3
    batch_size: int = 128
    weight_decay: float = 5e-4
    augment: bool = True

    def __post_init__(self) -> None:
        _choice("train", "mode", self.mode, ("finetuned", "fixed"))
        _positive("train", self, "epochs", "lr", "batch_size")
        if self.pretrain_epochs < 0:
            raise ConfigError(f"`train.pretrain_epochs` must be >= 0, got {self.pretrain_epochs}")


@dataclass(frozen=True)
class ImportanceConfig:
    """Neuron importance: spatial reduction and streaming batch size."""

    reduction: str = "sum"
    batch_size: int = 256

    def __post_init__(self) -> None:
        _choice("importance", "reduction", self.reduction, ("sum", "mean"))
        _positive("importance", self, "batch_size")


@dataclass(frozen=True)
class MappingConfig:
    """Knowledge -> importance map (linear or MLP), selected by rank correlation on held-out classes."""

    model: str = "linear"
    hidden: int = 256
    lr: float = 1e-3
    epochs: int = 150
    batch_size: int = 64
    weight_decay: float = 0.0
    n_holdout: int = 5
    refit: bool = True

    def __post_init__(self) -> None:
        _choice("mapping", "model", self.model, ("linear", "mlp"))
        _positive("mapping", self, "hidden", "lr", "epochs", "batch_size", "n_holdout")


@dataclass(frozen=True)
class TransferConfig:
    """Unseen-row optimisation; ``lam_grid``/``lr_grid`` are searched on validation classes."""

    lam: float = 1e-3
    lr: float = 3e-3
    lam_grid: tuple[float, ...] = (0.0, 1e-3, 3e-3, 1e-2, 3e-2)
    lr_grid: tuple[float, ...] = ()
    select: bool = True
    batch_size: int = 64
    max_steps: int = 800
    patience: int = 40
    tol: float = 0.01
    pool: str = "source"
    init: str = "seen_centered"
    mode: str = "fast"

    def __post_init__(self) -> None:
        _choice("transfer", "pool", self.pool, ("source", "seen", "noise"))
        _choice("transfer", "init", self.init, ("seen_centered", "mean", "zeros"))
        _choice("transfer", "mode", self.mode, ("fast", "reference"))
        _positive("transfer", self, "lr", "batch_size", "max_steps", "patience")
        for name in ("lam", "tol"):
            if getattr(self, name) < 0:
                raise ConfigError(f"`transfer.{name}` must be >= 0, got {getattr(self, name)!r}")
        for name in ("lam_grid", "lr_grid"):
            for v in getattr(self, name):
                if v < 0:
                    raise ConfigError(f"`transfer.{name}` values must be >= 0, got {v!r}")


@dataclass(frozen=True)
class EvalConfig:
    """GZSL evaluation: optional calibrated stacking chosen on validation classes."""

    calibrate: bool = False


METHOD_NAMES = ("niwt", "ale", "dem", "eszsl", "sae")


@dataclass(frozen=True)
class CompareConfig:
    """Methods, seeds and the baselines' hyper-parameter grids (searched on validation classes)."""

    methods: tuple[str, ...] = METHOD_NAMES
    seeds: int = 3
    ale_lr: tuple[float, ...] = (1e-3, 1e-2)
    ale_epochs: int = 50
    dem_lam: tuple[float, ...] = (1e-4, 1e-3)
    dem_lr: tuple[float, ...] = (1e-3, 1e-4)
    dem_epochs: int = 100
    eszsl_alpha: tuple[float, ...] = (1e-2, 1.0, 1e2)
    eszsl_gamma: tuple[float, ...] = (1e-2, 1.0, 1e2)
    sae_lam: tuple[float, ...] = (1e-1, 1.0, 1e1, 1e2)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise ConfigError(f"`compare.methods`: unknown method(s) {unknown}; valid methods: {list(METHOD_NAMES)}")
        if not self.methods:
            raise ConfigError("`compare.methods` must name at least one method")
        _positive("compare", self, "seeds", "ale_epochs", "dem_epochs")
        for name in ("ale_lr", "dem_lam", "dem_lr", "eszsl_alpha", "eszsl_gamma", "sae_lam"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"`compare.{name}` must hold at least one value")
            if any(v < 0 for v in values):
                raise ConfigError(f"`compare.{name}` values must be >= 0, got {list(values)}")

    def grid(self, method: str) -> dict[str, list[float | int]]:
        """The hyper-parameter grid of a baseline (fixed settings as one-point lists)."""
        grids: dict[str, dict[str, list[float | int]]] = {
            "ale": {"lr": list(self.ale_lr), "epochs": [self.ale_epochs]},
            "dem": {"lam": list(self.dem_lam), "lr": list(self.dem_lr), "epochs": [self.dem_epochs]},
            "eszsl": {"alpha": list(self.eszsl_alpha), "gamma": list(self.eszsl_gamma)},
            "sae": {"lam": list(self.sae_lam)},
        }
        return grids[method]


@dataclass(frozen=True)
class RunConfig:
    """Everything one NIWT run needs."""

    seed: int = 0
    data: ShapesConfig = field(default_factory=ShapesConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists/ints where lossless."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a table of settings, got {type(value).__name__} {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list, got {type(value).__name__} {value!r}")
        item_tp = args[0]
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
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{key}` must be a boolean (true/false), got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{key}` must be an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{key}` must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{key}` must be a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"`{key}`: unsupported setting type {_type_name(tp)}")


def from_dict(cls: type[T], values: dict[str, Any], *, prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a (nested) dict, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(f"unknown setting `{dotted}`; valid keys here: {', '.join(names)}")
        kwargs[key] = _convert(value, hints[key], dotted)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid settings under `{prefix or 'top level'}`: {err}") from err


def to_dict(config: Any) -> dict[str, Any]:
    """Turn a (nested) config dataclass into plain TOML/JSON-ready values (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(config)


def load_config(path: str | Path, cls: type[T] = RunConfig) -> T:  # type: ignore[assignment]
    """Read a TOML file into ``cls``; errors name the file and the offending key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {str(path)!r}: {err.strerror}") from err
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    try:
        return from_dict(cls, values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare words are strings: --set transfer.pool=seen


def apply_overrides(config: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Apply ``key.sub=value`` overrides (values parsed as TOML, bare words as strings)."""
    values = to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        node = values
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                where = ".".join(parts[: i + 1])
                valid = ", ".join(k for k, v in node.items() if isinstance(v, dict))
                raise ConfigError(f"unknown config section `{where}` in override {item!r}; sections: {valid}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(
                f"unknown setting `{key}` in override {item!r}; valid keys here: {', '.join(node)}"
            )
        node[parts[-1]] = _parse_value(raw.strip())
    return from_dict(type(config), values)


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as TOML."""
    Path(path).write_text(tomli_w.dumps(to_dict(config)), encoding="utf-8")
