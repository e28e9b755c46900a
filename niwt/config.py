"""Typed, frozen configuration for every stage, loaded from TOML with strict checking.

Each stage has its own frozen dataclass; :class:`RunConfig` nests them. :func:`load_config` reads a
TOML file, :func:`apply_overrides` applies ``--set section.key=value`` strings, and both reject
unknown keys (listing the valid ones) and values of the wrong type (naming the dotted key, the
expected type and what was given). :func:`save_config` writes the resolved config next to outputs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import tomllib
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from niwt.baselines import BASELINES
from niwt.checks import check_positive as _positive
from niwt.checks import check_value as _check
from niwt.data.dataconfig import AwA2DataConfig, CUBDataConfig, FilesDataConfig, FolderDataConfig, Xlsa17DataConfig
from niwt.data.registry import DATA_KINDS, DataConfig
from niwt.data.settings import POOLS
from niwt.data.shapes import ShapesConfig
from niwt.device import DEVICES, PRECISIONS
from niwt.errors import ConfigError
from niwt.explain.inverse import InverseSettings
from niwt.importance import REDUCTIONS, neuron_importance
from niwt.knowledge import NORMALIZATIONS, SOURCES, TEXT_ENCODERS
from niwt.mapping import MAPPING_MODELS, ImportanceMapper
from niwt.models import TIMM_PREFIX, is_model_name, list_families, list_models, model_defaults, model_settings
from niwt.training import TRAIN_MODES, train_classifier
from niwt.transfer import INITS, MODES, UnseenWeightOptimizer

__all__ = [
    "KnowledgeConfig",
    "model_options",
    "ModelConfig",
    "TrainConfig",
    "ImportanceConfig",
    "MappingConfig",
    "TransferConfig",
    "EvalConfig",
    "ExplainConfig",
    "CompareConfig",
    "RuntimeConfig",
    "METHOD_NAMES",
    "RunConfig",
    "DATA_KINDS",
    "DataConfig",
    "FilesDataConfig",
    "AwA2DataConfig",
    "CUBDataConfig",
    "Xlsa17DataConfig",
    "FolderDataConfig",
    "resolve_config",
    "describe_config",
    "from_dict",
    "to_dict",
    "load_config",
    "apply_overrides",
    "save_config",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

METHOD_NAMES = ("niwt", "niwt-bal", *BASELINES)
"""Methods ``compare`` can run: NIWT as in the paper, NIWT with balanced unseen rows, and every
registered baseline."""


def _default(func: Any, name: str) -> Any:
    """The default of parameter ``name`` of ``func``: the stage's own default is the one source."""
    return inspect.signature(func).parameters[name].default


@dataclass(frozen=True)
class KnowledgeConfig:
    """How class knowledge becomes vectors: attributes or text, and their normalisation.

    Attributes:
        source: "attributes" (the class attribute matrix) or "text" (embedded class descriptions).
        normalize: per-class normalisation of the vectors: "none", "l2" or "zscore".
        text_encoder: for text: "tfidf" (built in) or "sentence-transformers" (the `text` extra).
    """

    source: str = "attributes"
    normalize: str = "l2"
    text_encoder: str = "tfidf"

    def __post_init__(self) -> None:
        _check("knowledge", self, "source", choices=SOURCES)
        _check("knowledge", self, "normalize", choices=NORMALIZATIONS)
        _check("knowledge", self, "text_encoder", choices=TEXT_ENCODERS)


@dataclass(frozen=True)
class ModelConfig:
    """Backbone family and size.

    Attributes:
        arch: registered backbone name (`niwt.list_models()`): the small "vgg" and "resnet", torchvision's
            "vgg11" ... "vgg19_bn" and "resnet18" ... "resnet152" ("tv_vgg16", "tv_resnet101": older names), "mlp";
            "timm/<name>" for any timm classifier, CNN or vision transformer (the optional timm extra).
        width: channels of the first convolution block (shapes backbones).
        hidden: width of fc6/fc7, the penultimate feature size (VGG-like only; unset: the model's default).
        dropout: dropout after fc6/fc7 (VGG-like only; unset: the model's default).
        weights: pre-trained weights of a torchvision or timm backbone: a file, "imagenet" or "none" (random).
    """

    arch: str = "vgg"
    width: int = 32
    hidden: int | None = None
    dropout: float | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if not is_model_name(self.arch):
            _check("model", self, "arch", choices=tuple(list_models()) + tuple(f"{p}<name>" for p in list_families()))
        _positive("model", self, "width", "hidden")
        _check("model", self, "dropout", low=0.0, high=1.0, high_open=True)


@dataclass(frozen=True)
class TrainConfig:
    """Pre-training on source classes, then training on seen classes (fixed or finetuned).

    Attributes:
        mode: "finetuned" (every layer trains) or "fixed" (only the classifier).
        pretrain_epochs: epochs on the source classes (0: no pre-training).
        epochs: epochs on the seen classes.
        lr: AdamW peak learning rate (one-cycle schedule).
        batch_size: images per step.
        weight_decay: AdamW weight decay.
        augment: random flips and shifts during training.
        head_epochs: finetuned mode: epochs that first train the new classifier alone (trunk frozen),
            as the authors' code does before it trains every layer; 0: every layer from the start.
        head_lr: learning rate of those epochs (unset: `lr`).
    """

    mode: str = _default(train_classifier, "mode")
    pretrain_epochs: int = 10
    epochs: int = _default(train_classifier, "epochs")
    lr: float = _default(train_classifier, "lr")
    batch_size: int = _default(train_classifier, "batch_size")
    weight_decay: float = _default(train_classifier, "weight_decay")
    augment: bool = _default(train_classifier, "augment")
    head_epochs: int = 0
    head_lr: float | None = None

    def __post_init__(self) -> None:
        _check("train", self, "mode", choices=TRAIN_MODES)
        _positive("train", self, "epochs", "lr", "batch_size", "head_lr")
        _check("train", self, "pretrain_epochs", low=0)
        _check("train", self, "head_epochs", low=0)


@dataclass(frozen=True)
class ImportanceConfig:
    """Neuron importance: spatial reduction and streaming batch size.

    Attributes:
        reduction: "sum" over spatial positions (the authors' code) or "mean" (Grad-CAM).
        batch_size: images per forward/backward pass when extracting importances.
        layer: the importance layer; empty (the default) for the model's own (the last conv block,
            as in the paper); an earlier one only for models that support it (``vgg``: ``features.<i>``).
    """

    reduction: str = _default(neuron_importance, "reduction")
    batch_size: int = 256
    layer: str = ""

    def __post_init__(self) -> None:
        _check("importance", self, "reduction", choices=REDUCTIONS)
        _positive("importance", self, "batch_size")


@dataclass(frozen=True)
class MappingConfig:
    """Knowledge -> importance map (linear or MLP), selected by rank correlation on held-out classes.

    Attributes:
        model: "linear" or "mlp" (one hidden layer).
        hidden: hidden width of the MLP.
        lr: Adam learning rate.
        epochs: maximum epochs; the best by held-out rank correlation is kept.
        batch_size: images per step.
        weight_decay: Adam weight decay.
        n_holdout: seen classes held out to choose the epoch (capped at the number of classes - 1).
        refit: retrain on every seen class for the chosen number of epochs.
    """

    model: str = _default(ImportanceMapper, "model")
    hidden: int = _default(ImportanceMapper, "hidden")
    lr: float = _default(ImportanceMapper, "lr")
    epochs: int = _default(ImportanceMapper, "epochs")
    batch_size: int = _default(ImportanceMapper, "batch_size")
    weight_decay: float = _default(ImportanceMapper, "weight_decay")
    n_holdout: int = _default(ImportanceMapper, "n_holdout")
    refit: bool = _default(ImportanceMapper, "refit")

    def __post_init__(self) -> None:
        _check("mapping", self, "model", choices=MAPPING_MODELS)
        _positive("mapping", self, "hidden", "lr", "epochs", "batch_size", "n_holdout")
        _check("mapping", self, "weight_decay", low=0)


@dataclass(frozen=True)
class TransferConfig:
    """Unseen-row optimisation; ``lam_grid``/``lr_grid`` are searched on validation classes.

    Attributes:
        lam: Λ, the L2 pull of unseen rows towards the mean seen row (used when not selecting).
        lr: Adam learning rate (used when not selecting, or when `lr_grid` is empty).
        lam_grid: Λ values tried on the validation classes.
        lr_grid: learning rates tried on the validation classes (empty: `lr` only).
        select: choose Λ (and lr) on the validation classes; false: use `lam` and `lr`.
        batch_size: (pool image, unseen class) pairs per step.
        max_steps: hard cap on optimisation steps.
        patience: stop after this many steps without a relative improvement of `tol`.
        tol: relative loss improvement that resets the patience counter.
        pool: unlabeled images for the transfer: "source", "seen" or "noise".
        pool_size: use only this many images of the pool, drawn with the run's seed (0: all of them).
        init: start of the unseen rows: "seen_centered", "mean" or "zeros".
        mode: "fast" (cached activations) or "reference" (full network each step); same result.
        per_class: fit each unseen row alone, on its own random stream (keyed by the class's name),
            with its own pairs and early stop, so that a class's row does not depend on which classes
            are unseen beside it (teaching a run a class then gives the row the run would have given
            it); false: all rows in one fit, as the paper.
    """

    lam: float = _default(UnseenWeightOptimizer, "lam")
    lr: float = _default(UnseenWeightOptimizer, "lr")
    lam_grid: tuple[float, ...] = (0.0, 1e-3, 3e-3, 1e-2, 3e-2)
    lr_grid: tuple[float, ...] = ()
    select: bool = True
    batch_size: int = _default(UnseenWeightOptimizer, "batch_size")
    max_steps: int = _default(UnseenWeightOptimizer, "max_steps")
    patience: int = _default(UnseenWeightOptimizer, "patience")
    tol: float = _default(UnseenWeightOptimizer, "tol")
    pool: str = "source"
    pool_size: int = 0
    init: str = _default(UnseenWeightOptimizer, "init")
    mode: str = _default(UnseenWeightOptimizer, "mode")
    per_class: bool = False

    def __post_init__(self) -> None:
        _check("transfer", self, "pool", choices=POOLS)
        _check("transfer", self, "pool_size", low=0)
        _check("transfer", self, "init", choices=INITS)
        _check("transfer", self, "mode", choices=MODES)
        _positive("transfer", self, "lr", "batch_size", "max_steps", "patience")
        for name in ("lam", "tol", "lam_grid", "lr_grid"):
            _check("transfer", self, name, low=0)


@dataclass(frozen=True)
class ExplainConfig(InverseSettings):
    """The inverse map importance -> knowledge behind textual explanations and neuron names; its
    settings, defaults and checks are the inverse map's own (:class:`~niwt.explain.inverse.InverseSettings`)."""

    def _where(self, name: str) -> str:
        return f"`explain.{name}`"


@dataclass(frozen=True)
class EvalConfig:
    """GZSL evaluation: optional calibrated stacking chosen on validation classes.

    Attributes:
        calibrate: subtract a constant from seen scores, chosen by H on the validation classes.
        val_splits: validation splits of the seen classes (the dataset's own, then more drawn with
            as many val classes each); every method's hyper-parameters and calibration constant are
            chosen by their mean H over the splits. Each split trains its own validation network.
    """

    calibrate: bool = False
    val_splits: int = 1

    def __post_init__(self) -> None:
        _check("eval", self, "val_splits", low=1)


@dataclass(frozen=True)
class CompareConfig:
    """Methods, seeds and the baselines' hyper-parameter grids (searched on validation classes).

    Attributes:
        methods: methods to run, in order: "niwt" (the paper's), "niwt-bal" (unseen rows balanced), "ale", "dem",
            "eszsl", "sae".
        seeds: number of seeds (the run's seed, then the next ones).
        ale_lr: ALE learning rates tried.
        ale_epochs: ALE epochs.
        dem_lam: DEM weight decays tried.
        dem_lr: DEM learning rates tried.
        dem_epochs: DEM epochs.
        eszsl_alpha: ESZSL regularisers on the image side tried.
        eszsl_gamma: ESZSL regularisers on the knowledge side tried.
        sae_lam: SAE regularisers tried.
    """

    methods: tuple[str, ...] = METHOD_NAMES
    seeds: int = 5
    ale_lr: tuple[float, ...] = (1e-3, 1e-2)
    ale_epochs: int = 50
    dem_lam: tuple[float, ...] = (1e-4, 1e-3)
    dem_lr: tuple[float, ...] = (1e-3, 1e-4)
    dem_epochs: int = 100
    eszsl_alpha: tuple[float, ...] = (1e-2, 1.0, 1e2)
    eszsl_gamma: tuple[float, ...] = (1e-2, 1.0, 1e2)
    sae_lam: tuple[float, ...] = (1e-1, 1.0, 1e1, 1e2)

    def __post_init__(self) -> None:
        _check("compare", self, "methods", choices=METHOD_NAMES)
        if not self.methods:
            raise ConfigError("`compare.methods` must name at least one method")
        _positive("compare", self, "seeds", "ale_epochs", "dem_epochs")
        for name in ("ale_lr", "dem_lam", "dem_lr", "eszsl_alpha", "eszsl_gamma", "sae_lam"):
            if not getattr(self, name):
                raise ConfigError(f"`compare.{name}` must hold at least one value")
            _check("compare", self, name, low=0)

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
class RuntimeConfig:
    """Where the run computes and in which precision (`niwt.device`); under torchrun, see `niwt.distributed`.

    Attributes:
        device: "auto" (a CUDA GPU when torch sees one, else the CPU), "cpu" or "cuda" (each torchrun
            process takes the GPU of its LOCAL_RANK). The device actually used is recorded in metrics.json.
        precision: "fp32", or "bf16" / "fp16" autocast for training and importance extraction (fp16:
            CUDA only, with loss scaling).
    """

    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _check("runtime", self, "device", choices=DEVICES)
        _check("runtime", self, "precision", choices=PRECISIONS)


@dataclass(frozen=True)
class RunConfig:
    """Everything one NIWT run needs.

    Attributes:
        seed: the run's seed; it drives every stage (the dataset too, unless `data.seed` is set).
    """

    seed: int = 0
    data: DataConfig = field(default_factory=ShapesConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        # numpy seeds must stay below 2**32; compare adds the seed index, so leave room for it
        _check("top level", self, "seed", low=0, high=2**31 - 1)


def _model_defaults(arch: str) -> dict[str, Any]:
    """The settings the backbone ``arch`` accepts, with its defaults."""
    return model_defaults(arch)


def model_options(config: RunConfig, in_features: int | None = None) -> dict[str, object]:
    """The settings of ``config`` that its architecture uses (the config refuses the others), as
    keyword arguments of :func:`niwt.models.create_model`; ``in_features`` is the width of a
    features dataset (for the ``mlp`` model)."""
    m = config.model
    kwargs = {"width": m.width, "hidden": m.hidden, "dropout": m.dropout, "image_size": config.data.image_size,
              "in_features": in_features, "weights": m.weights, "layer": config.importance.layer or None}
    accepted = model_settings(m.arch)
    return {k: v for k, v in kwargs.items() if v is not None and k in accepted}


def resolve_config(config: RunConfig) -> RunConfig:
    """Fill what a config leaves to the run: the dataset's seed follows the run's seed when unset,
    and the model's unset sizes become the chosen architecture's defaults (settings it cannot use
    are refused)."""
    if config.data.seed is None:
        config = replace(config, data=replace(config.data, seed=config.seed))
    accepted = _model_defaults(config.model.arch)
    m = config.model
    for name in ("hidden", "dropout", "weights"):
        value = getattr(m, name)
        if name not in accepted:
            if value is not None:
                raise ConfigError(f"`model.{name}` cannot be used by model {m.arch!r} (it accepts "
                                  f"{', '.join(sorted(accepted)) or 'no settings'}); remove it from the config")
        elif value is None:
            m = replace(m, **{name: accepted[name]})
    if m.arch.startswith(TIMM_PREFIX) and getattr(config.data, "normalize", False):
        # a timm backbone normalises its inputs itself, with its weights' convention
        log.info("model %s takes images in [0, 1] and applies its own input convention: data.normalize = false", m.arch)
        config = replace(config, data=replace(config.data, normalize=False))
    return replace(config, model=m)


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
