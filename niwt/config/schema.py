"""The config schema: one typed, frozen dataclass per stage, nested in :class:`RunConfig`, each
checked when made (values against the choice lists the implementing modules declare)."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from niwt.baselines import BASELINES
from niwt.checks import check_positive as _positive
from niwt.checks import check_value as _check
from niwt.data.registry import DataConfig
from niwt.data.settings import POOLS
from niwt.data.shapes import ShapesConfig
from niwt.device import DEVICES, PRECISIONS
from niwt.errors import ConfigError
from niwt.explain.inverse import InverseSettings
from niwt.importance import REDUCTIONS, neuron_importance
from niwt.knowledge import NORMALIZATIONS, SOURCES, TEXT_ENCODERS
from niwt.mapping import MAPPING_MODELS, ImportanceMapper
from niwt.models import is_model_name, list_families, list_models
from niwt.training import train_classifier
from niwt.training.validation import NETWORKS, RUN_MODES, VALIDATIONS
from niwt.transfer import INITS, MODES, UnseenWeightOptimizer

__all__ = ["METHOD_NAMES", "KnowledgeConfig", "ModelConfig", "TrainConfig", "ImportanceConfig", "MappingConfig",
           "TransferConfig", "ExplainConfig", "EvalConfig", "CompareConfig", "RuntimeConfig", "RunConfig"]

log = logging.getLogger(__name__)

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
        mode: "finetuned" (every layer trains) or "fixed" (only the classifier); "adopted" is set by
            `niwt adopt` (a classifier trained elsewhere, nothing trained).
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
        _check("train", self, "mode", choices=RUN_MODES)
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
            chosen by their mean H over the splits.
        validation: where each split's network comes from: "networks" (trained anew on the split's
            seen classes) or "held_out_rows" (the final network with the split's val classes' rows
            held out, nothing trained; the way an adopted classifier is validated).
    """

    calibrate: bool = False
    val_splits: int = 1
    validation: str = NETWORKS

    def __post_init__(self) -> None:
        _check("eval", self, "val_splits", low=1)
        _check("eval", self, "validation", choices=VALIDATIONS)


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

