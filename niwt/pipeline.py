"""The stages wired from a typed config, through a run context built once and never mutated.

A run of NIWT (and of the baselines beside it) on a dataset:

1. pre-train the backbone on the source classes (an ImageNet stand-in);
2. train two copies on seen classes: one on the *validation* setting's train classes, one on the
   *final* setting's seen classes (:mod:`niwt.data.settings`);
3. **validation**: treat the val classes as unseen and choose every method's hyper-parameters
   (NIWT's Λ and learning rate) by the GZSL harmonic mean; no unseen test image is looked at;
4. **final**: extract importances, fit the knowledge -> importance map, transfer the unseen
   classes with the chosen values, and evaluate GZSL on the test images.

Randomness: the commands call :func:`~niwt.training.seed_everything` once; every stage that draws
random numbers does so from its own seed (:func:`seeded`), so a stage's result depends only on its
inputs and the run's seed, never on which stage ran before it.

Run directories are written through :mod:`niwt.rundir`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from niwt import distributed
from niwt.baselines import get_baseline
from niwt.config import RunConfig, resolve_config, save_config, to_dict
from niwt.data import ZSLData
from niwt.data.settings import Setting, build_settings, pool_indices
from niwt.data.shapes import ShapesConfig, make_shapes
from niwt.data.source import FileImages, ImageSource, iter_batches, take
from niwt.device import autocast, check_precision, resolve_device, runtime_record, to_device
from niwt.errors import ConfigError, DataError
from niwt.evaluate import GZSLReport, choose_calibration, evaluate_gzsl
from niwt.explain.inverse import InverseConfig, InverseMapper
from niwt.importance import eval_mode, neuron_importance
from niwt.knowledge import knowledge_vectors
from niwt.mapping import ImportanceMapper
from niwt.models import Backbone, FeatureMLP, create_model, model_settings
from niwt.progress import StageProgress
from niwt.results import Comparison, GridPoint, MethodResult, SeedRun, Selection
from niwt.rundir import StageStore, in_run_dir, stage_key, versions, write_json
from niwt.training import predict_logits, seed_everything, train_classifier
from niwt.transfer import UnseenWeightOptimizer, balance_unseen

__all__ = ["NIWTRun", "TrainedModels", "RunContext", "seeded", "load_backbone", "load_dataset", "open_dataset",
           "load_knowledge", "class_vectors", "pretrain", "fit_seen", "train_models", "build_context",
           "needs_validation", "transfer_grid", "niwt_transfer", "gzsl_scores", "score_images", "TransferOutput",
           "penultimate_features", "select_niwt", "select_niwt_variants", "niwt_method", "niwt_methods", "final_transfers", "FinalTransfer", "baseline_method", "run_methods", "run_niwt",
           "run_to_dir", "demo_config", "comparison_config", "COMPARISON_WORLD", "save_niwt_outputs", "publish_niwt_outputs", "write_run", "data_key",
           "run_device"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generator seeded by ``seed``, then restore its state.

    For what draws from the global generator and takes no ``generator`` argument (module
    initialisation, dropout).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def open_dataset(config: RunConfig) -> tuple[ZSLData, torch.Tensor | ImageSource]:
    """The dataset of a run and its images: the shapes world in memory, or files read lazily.

    Raises:
        ConfigError: for a dataset without images (features only), which NIWT cannot train a CNN on.
    """
    cfg = resolve_config(config).data
    if isinstance(cfg, ShapesConfig) and config.model.arch == "mlp":
        raise ConfigError("model.arch = \"mlp\" runs on pre-extracted features (data.kind = \"xlsa17\"); the "
                          "shapes world has images: use \"vgg\" or \"resnet\"")
    if isinstance(cfg, ShapesConfig):
        data = make_shapes(cfg)
        return data, data.images_tensor(np.arange(len(data.labels)))
    from niwt.data.registry import load_dataset as load_files

    loaded = load_files(cfg.root, format=cfg.kind, **cfg.loader_options())
    for note in loaded.notes:
        log.info("%s: %s", cfg.kind, note)
    if config.model.arch == "mlp":  # feature mode: each feature vector is a one-pixel image of D channels
        if loaded.data.features is None:
            raise ConfigError(f"model.arch = \"mlp\" runs on pre-extracted features, but dataset {cfg.root!r} "
                              f"({cfg.kind}) has none; use a CNN (model.arch = \"vgg\", \"resnet\", ...)")
        features = torch.from_numpy(np.ascontiguousarray(loaded.data.features, dtype=np.float32))
        return loaded.data, features.view(*features.shape, 1, 1)
    if not loaded.has_images:
        raise ConfigError(f"dataset {cfg.root!r} ({cfg.kind}) has features but no image files: run NIWT on the "
                          "features with model.arch = \"mlp\" (feature mode), or give the images' folder "
                          "(data.image_root for xlsa17) to train a CNN")
    return loaded.data, FileImages(loaded.image_dataset(), size=cfg.crop, workers=cfg.workers)


def load_dataset(config: RunConfig) -> ZSLData:
    """The dataset record of a run (:func:`open_dataset` without the images)."""
    return open_dataset(config)[0]


def class_vectors(config: RunConfig, data: ZSLData) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class vectors ``[C, d]`` of ``data`` as ``config.knowledge`` asks, and the names of their d
    dimensions (computed once: text embeddings are not cheap)."""
    k = config.knowledge
    return knowledge_vectors(data, k.source, k.normalize, k.text_encoder)


def load_knowledge(config: RunConfig, data: ZSLData) -> np.ndarray:
    """Class vectors ``[C, d]`` of ``data`` as ``config.knowledge`` asks."""
    return class_vectors(config, data)[0]


def _model_kwargs(config: RunConfig, in_features: int | None = None) -> dict[str, object]:
    """The settings of ``config`` that its architecture uses (the config refuses the others);
    ``in_features`` is the width of a features dataset (for the ``mlp`` model)."""
    m = config.model
    kwargs = {"width": m.width, "hidden": m.hidden, "dropout": m.dropout, "image_size": config.data.image_size,
              "in_features": in_features, "weights": m.weights}
    accepted = model_settings(m.arch)
    return {k: v for k, v in kwargs.items() if v is not None and k in accepted}


def _in_features(images: torch.Tensor | ImageSource) -> int | None:
    """The feature width of a features dataset (one-pixel images of D channels), else None."""
    return int(images.shape[1]) if tuple(images.shape[2:]) == (1, 1) else None


def data_key(data: ZSLData) -> str:
    """A hash of a dataset's content (classes, knowledge, labels, splits, pixels): stages made from
    other data are never reused."""
    h = hashlib.sha256()
    h.update(json.dumps([data.name, list(data.class_names), list(data.knowledge_names)]).encode("utf-8"))
    for arr in (data.knowledge, data.labels, data.seen_classes, data.unseen_classes, data.train_classes,
                data.val_classes, data.source_classes, data.trainval_idx, data.test_seen_idx, data.test_unseen_idx,
                data.source_idx, data.images, data.features):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:20]


def _array_key(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float64).tobytes()).hexdigest()[:20]


def run_device(config: RunConfig) -> torch.device:
    """The device a run computes on (``runtime.device`` on this machine, in this process), with
    ``runtime.precision`` checked against it.

    Raises:
        ConfigError: for ``"cuda"`` without a CUDA device, or a precision the device cannot run.
    """
    device = resolve_device(config.runtime.device)
    check_precision(config.runtime.precision, device)
    return device


def _on_shards(fn, images: torch.Tensor | ImageSource) -> torch.Tensor:
    """``fn`` of this process's contiguous shard of ``images``, the shards put back together in
    order on every process (:mod:`niwt.distributed`); ``fn(images)`` in one process."""
    n = images.shape[0]
    lo, hi = distributed.shard_bounds(n)
    return distributed.gather(fn(images if (lo, hi) == (0, n) else take(images, np.arange(lo, hi))))


def _save_model(model: Backbone, directory: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))


def load_backbone(config: RunConfig, n_out: int, path: Path, in_features: int | None = None) -> Backbone:
    """A backbone of ``config``'s architecture with ``n_out`` seen rows and the weights of the
    safetensors file ``path`` (a stage's or a run's); unseen rows are resized to the file's."""
    kwargs = _model_kwargs(config, in_features)
    if "weights" in kwargs:
        kwargs["weights"] = "none"  # every weight comes from the file
    with seeded(config.seed):
        model = create_model(config.model.arch, n_out, **kwargs)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def pretrain(config: RunConfig, data: ZSLData, images: torch.Tensor, progress: bool = False,
             checkpoint: Path | None = None) -> Backbone:
    """A backbone trained on the source classes (or untrained when there are none / 0 epochs)."""
    n_out = max(len(data.source_classes), 1)
    with seeded(config.seed):
        model = create_model(config.model.arch, n_out, **_model_kwargs(config, _in_features(images)))
        model.to(run_device(config))  # made on the CPU: the same start on every device
        if len(data.source_idx) and config.train.pretrain_epochs:
            t = config.train
            setting = Setting("source", data.source_classes, np.zeros(0, np.int64), data.source_idx, data.source_idx)
            labels = torch.from_numpy(setting.rows(data.labels[data.source_idx]))
            train_classifier(model, take(images, data.source_idx), labels, epochs=t.pretrain_epochs, lr=t.lr,
                             batch_size=t.batch_size, weight_decay=t.weight_decay, mode="finetuned",
                             augment=t.augment, generator=torch.Generator().manual_seed(config.seed),
                             progress=progress, desc="pre-train", checkpoint=checkpoint,
                             precision=config.runtime.precision)
    return model


def fit_seen(config: RunConfig, base: Backbone, images: torch.Tensor, labels: torch.Tensor, n_classes: int,
             progress: bool = False, desc: str = "seen", checkpoint: Path | None = None) -> Backbone:
    """A copy of ``base`` with a fresh classifier, trained on seen classes (fixed or finetuned).

    ``labels`` are classifier rows (``Setting.rows``). In finetuned mode with ``train.head_epochs``,
    the new classifier first trains alone (``fixed``), then every layer, as the authors' code does.
    """
    model = copy.deepcopy(base)
    t = config.train
    with seeded(config.seed + 1):
        model.reset_classifier(n_classes)
        if t.mode == "finetuned" and t.head_epochs:
            train_classifier(model, images, labels, epochs=t.head_epochs, lr=t.head_lr or t.lr,
                             batch_size=t.batch_size, weight_decay=t.weight_decay, mode="fixed", augment=t.augment,
                             generator=torch.Generator().manual_seed(config.seed + 2), progress=progress,
                             desc=f"{desc} (classifier)",
                             checkpoint=checkpoint.with_name(f"head-{checkpoint.name}") if checkpoint else None,
                             precision=config.runtime.precision)
        train_classifier(model, images, labels, epochs=t.epochs, lr=t.lr, batch_size=t.batch_size,
                         weight_decay=t.weight_decay, mode=t.mode, augment=t.augment,
                         generator=torch.Generator().manual_seed(config.seed + 1), progress=progress, desc=desc,
                         checkpoint=checkpoint, precision=config.runtime.precision)
    return model


def transfer_grid(config: RunConfig) -> list[tuple[float, float]]:
    """The (Λ, lr) points searched on validation (one point when selection is off)."""
    t = config.transfer
    lams = list(t.lam_grid) if t.select and t.lam_grid else [t.lam]
    lrs = list(t.lr_grid) if t.select and t.lr_grid else [t.lr]
    return list(itertools.product(lams, lrs))


def _baseline_points(config: RunConfig, name: str) -> list[dict[str, float]]:
    grid = config.compare.grid(name)
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]


def needs_validation(config: RunConfig, methods: tuple[str, ...]) -> bool:
    """Whether any of ``methods`` chooses something on the validation setting."""
    if config.eval.calibrate:
        return True
    return any(len(transfer_grid(config)) > 1 if m in NIWT_VARIANTS else len(_baseline_points(config, m)) > 1
               for m in methods)


@dataclass(frozen=True, eq=False)
class TrainedModels:
    """The backbones one run shares between methods: pre-trained, and trained per setting.

    ``keys`` are the stage keys they were made from (what the methods' keys build on).
    """

    base: Backbone
    final: Backbone
    validation: Backbone | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def _stage(store: StageStore | None, name: str, key: str, compute, save, load):
    """``load(dir)`` of a finished stage, or ``compute(scratch)`` then ``save(value, dir)``.

    Under torchrun every process computes the stage (its collectives need them all), but rank 0
    alone looks for a finished stage, keeps scratch state and saves; a stage rank 0 finds is
    loaded there and sent to the others.
    """
    if store is None:
        return compute(None)
    if distributed.is_distributed():
        return _shared_stage(store, name, key, compute, save, load)
    found = store.get(name, key)
    if found is not None:
        return load(found)
    value = compute(store.scratch(name, key))
    with store.put(name, key) as directory:
        save(value, directory)
    return value


def _shared_stage(store: StageStore, name: str, key: str, compute, save, load):
    main = distributed.is_main()
    found = store.get(name, key) if main else None
    if distributed.broadcast_object(found is not None):
        value = load(found) if main else None
        device = next(value.parameters()).device if isinstance(value, torch.nn.Module) else None
        # a pickled CUDA tensor would come back on rank 0's GPU: models travel as CPU copies
        sent = copy.deepcopy(value).cpu() if device is not None and device.type != "cpu" else value
        sent, on_gpu = distributed.broadcast_object((sent, device is not None and device.type != "cpu"))
        if main:
            return value
        return sent.to(torch.device("cuda", torch.cuda.current_device())) if on_gpu else sent
    value = compute(store.scratch(name, key) if main else None)
    if main:
        with store.put(name, key) as directory:
            save(value, directory)
    return value


def train_models(config: RunConfig, data: ZSLData, images: torch.Tensor, settings: tuple[Setting, Setting], *,
                 validation: bool = True, base: Backbone | None = None, progress: bool = False,
                 store: StageStore | None = None) -> TrainedModels:
    """Pre-train (unless ``base`` is given), then train the final and (if asked) the validation model.

    With ``store``, each model is a stage: reused when it finished with the same key, continued
    from its last epoch when it was interrupted.
    """
    val_setting, final_setting = settings
    seconds: dict[str, float] = {}
    t = config.train
    dkey = data_key(data)
    # How many processes decode images changes no number: it stays out of the keys.
    data_config = {k: v for k, v in to_dict(config.data).items() if k != "workers"}
    keys = {"pretrain": stage_key(stage="pretrain", data=dkey, data_config=data_config, seed=config.seed,
                                  model=to_dict(config.model),
                                  image_size=config.data.image_size,
                                  train=[t.pretrain_epochs, t.lr, t.batch_size, t.weight_decay, t.augment],
                                  **({"precision": config.runtime.precision}
                                     if config.runtime.precision != "fp32" else {}))}
    device = run_device(config)
    t0 = time.perf_counter()
    if base is None:
        n_src = max(len(data.source_classes), 1)
        base = _stage(store, "pretrain", keys["pretrain"],
                      lambda d: pretrain(config, data, images, progress, d / "checkpoint.pt" if d else None),
                      _save_model,
                      lambda d: load_backbone(config, n_src, d / "model.safetensors", _in_features(images)).to(device))
    seconds["pretrain"] = time.perf_counter() - t0

    def trained(name: str, setting: Setting, desc: str) -> Backbone:
        keys[name] = stage_key(stage=name, base=keys["pretrain"], train=to_dict(t), seed=config.seed,
                               classes=setting.fit_classes.tolist(), images=setting.train_idx.tolist())
        idx = setting.train_idx
        labels = torch.from_numpy(setting.rows(data.labels[idx]))

        def compute(d: Path | None) -> Backbone:
            return fit_seen(config, base, take(images, idx), labels, len(setting.fit_classes), progress, desc=desc,
                            checkpoint=d / "checkpoint.pt" if d else None)

        def load(d: Path) -> Backbone:
            model = copy.deepcopy(base)
            model.reset_classifier(len(setting.fit_classes))
            model.load_state_dict(load_file(str(d / "model.safetensors")))
            return model.to(device).eval()

        t0 = time.perf_counter()
        model = _stage(store, name, keys[name], compute, _save_model, load)
        seconds[name] = time.perf_counter() - t0
        return model

    val_model = None
    if validation:
        if not len(val_setting.new_classes):
            raise DataError("choosing hyper-parameters needs validation classes, but `val_classes` is empty; "
                            "set data.n_val > 0 or transfer.select = false")
        val_model = trained("train_val", val_setting, "train (val)")
    final = trained("train_final", final_setting, "train (seen)")
    return TrainedModels(base, final, val_model, seconds, keys)


@dataclass(frozen=True, eq=False)
class RunContext:
    """What every method of one run shares; built once by :func:`build_context`, never mutated.

    Attributes:
        config: the resolved run config.
        data: the dataset.
        knowledge: ``[C, d]`` class vectors.
        images: ``[N, 3, H, W]`` float images of the dataset.
        validation, final: the two settings (:mod:`niwt.data.settings`).
        models: the trained backbones.
        progress: show progress of long stages.
    """

    config: RunConfig
    data: ZSLData
    knowledge: np.ndarray
    images: torch.Tensor | ImageSource
    validation: Setting
    final: Setting
    models: TrainedModels
    progress: bool = False
    store: StageStore | None = None
    knowledge_names: tuple[str, ...] | None = None

    def key(self, stage: str, **parts: object) -> str:
        """The key of a method's stage: its config and the keys of the models and knowledge it uses."""
        return stage_key(stage=stage, models=self.models.keys, knowledge=_array_key(self.knowledge),
                         seed=self.config.seed, eval=to_dict(self.config.eval), results_version=2, **parts)

    def run_info(self) -> dict[str, object]:
        """What a later command needs to read the run's model back: classes, rows, knowledge names,
        the dataset's fingerprint and how images were prepared."""
        names = self.knowledge_names
        if names is None:
            names = class_vectors(self.config, self.data)[1]
        data_cfg = self.config.data
        transform = (data_cfg.transform().to_dict() if hasattr(data_cfg, "transform")
                     else {"resize": None, "crop": None, "normalize": False})
        return {"class_names": list(self.data.class_names), "fit_classes": self.final.fit_classes.tolist(),
                "new_classes": self.final.new_classes.tolist(), "knowledge_names": list(names),
                "data_key": data_key(self.data), "dataset": self.data.name, "split_origin": self.data.split_origin,
                "image_size": int(self.images.shape[-1]), "transform": transform,
                "importance_layer": self.config.importance.layer or self.models.final.importance_layer,
                "in_features": _in_features(self.images)}

    def model(self, setting: Setting) -> Backbone:
        """The backbone trained for ``setting`` (shared: copy it before changing its rows)."""
        if setting is self.final:
            return self.models.final
        if self.models.validation is None:
            raise DataError("this run context has no validation model; build it with validation=True")
        return self.models.validation

    def report(self, setting: Setting, scores: np.ndarray, calibration: float | None = None) -> GZSLReport:
        """GZSL report of ``scores`` on ``setting``'s test images.

        ``calibration=None`` chooses the calibration constant on these scores when the config asks
        for calibration (only ever done on the validation setting), else uses 0.
        """
        labels = self.data.labels[setting.test_idx]
        if calibration is None:
            calibration = (choose_calibration(scores, labels, setting.fit_classes, setting.new_classes)
                           if self.config.eval.calibrate else 0.0)
        return evaluate_gzsl(scores, labels, setting.fit_classes, setting.new_classes, calibration=calibration)

    def grid_point(self, params: dict[str, float], scores: np.ndarray) -> GridPoint:
        """A point tried on the validation setting: its report, and the calibrated-stacking constant
        that would maximise its H (used for the calibrated comparison of every method)."""
        setting = self.validation
        labels = self.data.labels[setting.test_idx]
        gamma = choose_calibration(scores, labels, setting.fit_classes, setting.new_classes)
        return GridPoint(params, self.report(setting, scores), gamma)

    def final_reports(self, scores: np.ndarray, selection: Selection) -> tuple[GZSLReport, GZSLReport | None]:
        """The final setting's report (calibrated only if the config asks), and the report with the
        calibrated-stacking constant chosen on validation (None when nothing was validated)."""
        report = self.report(self.final, scores, calibration=selection.calibration)
        if selection.calibrated_gamma is None:
            return report, None
        return report, self.report(self.final, scores, calibration=selection.calibrated_gamma)

    def scores(self, model: Backbone, setting: Setting) -> np.ndarray:
        """``model``'s GZSL scores ``[N, C]`` on ``setting``'s test images."""
        return gzsl_scores(model, take(self.images, setting.test_idx), setting.fit_classes, setting.new_classes,
                           self.data.n_classes)

    def pool(self, setting: Setting) -> torch.Tensor:
        """The unlabeled images transfer runs on in ``setting``."""
        idx = pool_indices(self.data, setting, self.config.transfer.pool)
        size = self.config.transfer.pool_size
        if idx is not None:
            if 0 < size < len(idx):
                idx = np.sort(np.random.default_rng(self.config.seed + 11).choice(idx, size, replace=False))
            return take(self.images, idx)
        gen = torch.Generator().manual_seed(self.config.seed + 7)
        return torch.rand(size or max(len(self.data.source_idx), 512), *self.images.shape[1:], generator=gen)

    def niwt_model(self, setting: Setting) -> Backbone:
        """A copy of ``setting``'s backbone to transfer into, with importance at ``importance.layer``."""
        model = copy.deepcopy(self.model(setting))
        if self.config.importance.layer:
            model.set_importance_layer(self.config.importance.layer)
        return model

    def transfer(self, setting: Setting, model: Backbone, grid: list[tuple[float, float]]) -> TransferOutput:
        """:func:`niwt_transfer` of ``setting``'s new classes into ``model``, with its training images."""
        idx = setting.train_idx
        labels = torch.from_numpy(setting.rows(self.data.labels[idx]))
        return niwt_transfer(self.config, model, self.knowledge, take(self.images, idx), labels, setting.fit_classes,
                             setting.new_classes, self.pool(setting), grid, self.progress)


def build_context(config: RunConfig, data: ZSLData, knowledge: np.ndarray, *, validation: bool = True,
                  base: Backbone | None = None, models: TrainedModels | None = None,
                  progress: bool = False, store: StageStore | None = None,
                  images: torch.Tensor | ImageSource | None = None,
                  knowledge_names: tuple[str, ...] | None = None) -> RunContext:
    """Settings, images and trained models of one run (``models`` reuses models trained before).

    With ``store``, every stage's result is kept there and reused when its key has not changed
    (:class:`~niwt.rundir.StageStore`).
    """
    config = resolve_config(config)
    run_device(config)  # an unusable device or precision is refused before any training
    knowledge = np.asarray(knowledge, dtype=np.float64)
    if knowledge.shape[0] != data.n_classes:
        raise DataError(f"`knowledge` must have one row per class ({data.n_classes}), got shape {knowledge.shape}")
    settings = build_settings(data, config.seed)
    images = images if images is not None else data.images_tensor(np.arange(len(data.labels)))
    if models is None:
        models = train_models(config, data, images, settings, validation=validation, base=base, progress=progress,
                              store=store)
    return RunContext(config, data, knowledge, images, settings[0], settings[1], models, progress, store,
                      knowledge_names)


@dataclass(frozen=True, eq=False)
class TransferOutput:
    """What :func:`niwt_transfer` made: the map, the targets, one optimiser per grid point, and the
    seen images' importances it was fitted on (with their classifier rows)."""

    mapper: ImportanceMapper
    targets: np.ndarray
    optimizers: tuple[UnseenWeightOptimizer, ...]
    importances: torch.Tensor
    labels: torch.Tensor


def niwt_transfer(config: RunConfig, model: Backbone, knowledge: np.ndarray, images: torch.Tensor,
                  labels: torch.Tensor, fit_classes: np.ndarray, new_classes: np.ndarray, pool: torch.Tensor,
                  grid: list[tuple[float, float]], progress: bool = False) -> TransferOutput:
    """Importance -> mapping -> transfer for ``new_classes`` with each (Λ, lr) of ``grid``.

    ``labels`` index ``fit_classes`` (the model's seen rows).
    """
    lo, hi = distributed.shard_bounds(images.shape[0])
    with StageProgress("importance", hi - lo, unit="image", enabled=progress) as bar, \
            autocast(run_device(config), config.runtime.precision):
        alpha = _on_shards(lambda part: neuron_importance(
            model, model.importance_layer, part, labels[lo:hi], config.importance.reduction,
            batch_size=config.importance.batch_size, progress=bar.update_to), images)
    alpha = alpha.float().cpu() if alpha.dtype in (torch.float16, torch.bfloat16) else alpha.cpu()
    m = config.mapping
    mapper = ImportanceMapper(model=m.model, hidden=m.hidden, lr=m.lr, epochs=m.epochs, batch_size=m.batch_size,
                              weight_decay=m.weight_decay,
                              n_holdout=min(m.n_holdout, len(np.unique(labels.numpy())) - 1),
                              refit=m.refit, random_state=config.seed)
    mapper.fit(knowledge[fit_classes], alpha.numpy(), labels.numpy())
    targets = mapper.predict(knowledge[new_classes])
    targets = distributed.broadcast(torch.from_numpy(targets)).numpy()  # every process transfers rank 0's
    t = config.transfer
    optimizers = []
    for lam, lr in grid:
        opt = UnseenWeightOptimizer(lam=lam, lr=lr, batch_size=t.batch_size, max_steps=t.max_steps,
                                    patience=t.patience, tol=t.tol, init=t.init, mode=t.mode,
                                    reduction=config.importance.reduction, random_state=config.seed,
                                    progress=progress)
        optimizers.append(opt.fit(model, pool, targets))
        opt.weights_ = distributed.broadcast(opt.weights_)  # the rows every process scores with are rank 0's
    return TransferOutput(mapper, targets, tuple(optimizers), alpha, labels)


def gzsl_scores(model: Backbone, images: torch.Tensor, seen: np.ndarray, unseen: np.ndarray, n_classes: int,
                ) -> np.ndarray:
    """Logits of ``model`` (seen rows then unseen rows) spread into global class columns ``[N, C]``."""
    logits = _on_shards(lambda part: predict_logits(model, part), images).cpu().double().numpy()
    scores = np.full((logits.shape[0], n_classes), -np.inf)
    scores[:, seen] = logits[:, : len(seen)]
    scores[:, unseen] = logits[:, len(seen) :]
    return scores


def score_images(model: Backbone, images: torch.Tensor, setting: Setting, n_classes: int | None = None,
                 ) -> np.ndarray:
    """GZSL scores ``[N, n_classes]`` of ``images``: column c is global class c.

    The model's rows are ``setting.fit_classes`` then ``setting.new_classes`` (as trained and
    transferred); columns of classes outside the setting are ``-inf``. ``n_classes`` defaults to
    the largest class id of the setting + 1.
    """
    n_classes = n_classes if n_classes is not None else int(setting.classes.max()) + 1
    n_rows = model.classifier.n_seen + model.classifier.n_unseen
    if n_rows != setting.classes.size:
        raise DataError(f"`model` has {n_rows} classifier rows ({model.classifier.n_seen} seen, "
                        f"{model.classifier.n_unseen} unseen) but the {setting.name} setting has "
                        f"{len(setting.fit_classes)} + {len(setting.new_classes)} classes; transfer the new "
                        "classes first")
    return gzsl_scores(model, images, setting.fit_classes, setting.new_classes, n_classes)


@torch.no_grad()
def penultimate_features(model: Backbone, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """What the baselines are fitted on: the classifier's input features ``[N, D]`` (eval mode), or,
    in feature mode, the dataset's own features (the baselines' published setting)."""
    if isinstance(model, FeatureMLP):
        return torch.cat([torch.flatten(x, 1) for _, x in iter_batches(images, None, batch_size)]).double().numpy()
    device = model.classifier.weight.device

    def features(part: torch.Tensor | ImageSource) -> torch.Tensor:
        return torch.cat([model.forward_head(model.forward_features(to_device(x, device)))
                          for _, x in iter_batches(part, None, batch_size, pin_memory=device.type == "cuda")])

    with eval_mode(model):
        return _on_shards(features, images).cpu().double().numpy()


@dataclass(frozen=True, eq=False)
class NIWTRun:
    """NIWT's result, with the extended model (seen and unseen rows) and its fitted stages."""

    result: MethodResult
    model: Backbone
    mapper: ImportanceMapper
    optimizer: UnseenWeightOptimizer
    inverse: InverseMapper | None = None
    info: dict[str, object] = field(default_factory=dict)
    knowledge: np.ndarray | None = None

    @property
    def report(self) -> GZSLReport:
        return self.result.report

    @property
    def selection(self) -> Selection:
        return self.result.selection


def _niwt_config(ctx: RunContext) -> dict[str, object]:
    c = ctx.config
    return {"importance": to_dict(c.importance), "mapping": to_dict(c.mapping), "transfer": to_dict(c.transfer),
            "explain": to_dict(c.explain)}


NIWT_VARIANTS = ("niwt", "niwt-bal")
"""NIWT as in the paper (unseen rows with bias 0, scale set by the transfer), and with its unseen
rows balanced against the seen rows (:func:`niwt.transfer.balance_unseen`)."""


def select_niwt_variants(ctx: RunContext, grid: list[tuple[float, float]] | None = None,
                         ) -> dict[str, Selection]:
    """Choose Λ and the learning rate of every NIWT variant on the validation setting (the val
    classes act as unseen).

    One transfer per grid point serves every variant: each is scored with the rows as learned
    (``niwt``), then with the rows balanced (``niwt-bal``), so the variants differ only in what
    they do after the transfer.
    """
    grid = grid if grid is not None else transfer_grid(ctx.config)
    if len(grid) == 1 and not ctx.config.eval.calibrate:
        return {v: Selection({"lam": grid[0][0], "lr": grid[0][1]}) for v in NIWT_VARIANTS}

    def compute(_: Path | None) -> dict[str, Selection]:
        setting = ctx.validation
        model = ctx.niwt_model(setting)
        optimizers = ctx.transfer(setting, model, grid).optimizers
        points: dict[str, list[GridPoint]] = {v: [] for v in NIWT_VARIANTS}
        for (lam, lr), opt in zip(grid, optimizers):
            opt.apply(model)
            for variant in NIWT_VARIANTS:  # "niwt" first: balancing changes the rows in place
                if variant == "niwt-bal":
                    balance_unseen(model)
                point = ctx.grid_point({"lam": lam, "lr": lr}, ctx.scores(model, setting))
                points[variant].append(point)
                rep = point.report
                log.info("validation %s Λ=%g lr=%g: S=%.3f U=%.3f H=%.3f", variant, lam, lr, rep.seen_acc,
                         rep.unseen_acc, rep.H)
        return {v: Selection.best_of(p) for v, p in points.items()}

    def save(selections: dict[str, Selection], d: Path) -> None:
        write_json(d / "selections.json", {v: sel.to_dict() for v, sel in selections.items()})

    def load(d: Path) -> dict[str, Selection]:
        return {v: Selection.from_dict(sel) for v, sel in _read_json(d / "selections.json").items()}

    name = "niwt_selections"
    return _stage(ctx.store, name, ctx.key(name, grid=grid, **_niwt_config(ctx)), compute, save, load)


def select_niwt(ctx: RunContext, grid: list[tuple[float, float]] | None = None, *,
                variant: str = "niwt") -> Selection:
    """The Λ and learning rate of ``variant`` chosen on the validation setting
    (:func:`select_niwt_variants`)."""
    if variant not in NIWT_VARIANTS:
        raise ConfigError(f"`variant` must be one of {list(NIWT_VARIANTS)}, got {variant!r}")
    return select_niwt_variants(ctx, grid)[variant]


@dataclass(frozen=True, eq=False)
class FinalTransfer:
    """One transfer of the final setting at a chosen (Λ, lr), with the inverse map fitted on its
    seen importances (None when explanations are not asked for): what every NIWT variant that
    chose this point shares."""

    output: TransferOutput
    inverse: InverseMapper | None
    seconds: dict[str, float]


def _fit_inverse(ctx: RunContext, out: TransferOutput) -> InverseMapper:
    n_classes = len(np.unique(out.labels.numpy()))
    explain = replace(ctx.config.explain, n_holdout=min(ctx.config.explain.n_holdout, n_classes - 1))
    inverse = InverseMapper(InverseConfig(**to_dict(explain), random_state=ctx.config.seed))
    inverse.fit(out.importances.numpy(), ctx.knowledge[ctx.final.fit_classes], out.labels.numpy())
    return inverse


def final_transfers(ctx: RunContext, grid: list[tuple[float, float]] | None = None, *, explain: bool = True):
    """``get(lam, lr) -> FinalTransfer``: transfers of the final setting, computed once and shared.

    With ``grid``, the first call transfers at every point of it in one go (one importance
    extraction and one map for all; each point's rows are the same as alone), so the variants and
    the Λ curve read them; other points are transferred alone when asked. ``explain=False`` skips
    the inverse map (only explanations use it).
    """
    cache: dict[tuple[float, float], FinalTransfer] = {}

    def transfer(points: list[tuple[float, float]]) -> None:
        t0 = time.perf_counter()
        out = ctx.transfer(ctx.final, ctx.niwt_model(ctx.final), points)
        seconds = {"final": time.perf_counter() - t0}
        t0 = time.perf_counter()
        inverse = _fit_inverse(ctx, out) if explain else None
        if explain:
            seconds["inverse"] = time.perf_counter() - t0
        for point, opt in zip(points, out.optimizers):
            cache[point] = FinalTransfer(replace(out, optimizers=(opt,)), inverse, seconds)

    def get(lam: float, lr: float) -> FinalTransfer:
        if grid and not cache:
            transfer([(float(a), float(b)) for a, b in grid])
        if (lam, lr) not in cache:
            transfer([(lam, lr)])
        return cache[(lam, lr)]

    return get


def niwt_method(ctx: RunContext, selection: Selection | None = None, *,
                variant: str = "niwt", final_transfer=None, select_seconds: float | None = None,
                explain: bool = True) -> NIWTRun | MethodResult:
    """NIWT on the final model with Λ/lr chosen on validation (or given in ``selection``).

    Returns the :class:`NIWTRun` (model, mapper, optimizer and result); when the run context has a
    stage store and the stage had already finished, only its :class:`MethodResult` (the stage's
    directory holds the model and the rest as files). ``final_transfer`` (:func:`final_transfers`)
    lets variants that chose the same point share one transfer (:func:`niwt_methods`);
    ``explain=False`` skips the inverse map behind explanations.
    """
    if variant not in NIWT_VARIANTS:
        raise ConfigError(f"`variant` must be one of {list(NIWT_VARIANTS)}, got {variant!r}")
    t0 = time.perf_counter()
    selection = selection if selection is not None else select_niwt(ctx, variant=variant)
    seconds = {"select": time.perf_counter() - t0 if select_seconds is None else select_seconds}
    final_transfer = final_transfer if final_transfer is not None else final_transfers(ctx, explain=explain)

    def compute(_: Path | None) -> NIWTRun:
        shared = final_transfer(selection.params["lam"], selection.params["lr"])
        out = shared.output
        setting = ctx.final
        model = ctx.niwt_model(setting)
        (opt,) = out.optimizers
        opt.apply(model)
        if variant == "niwt-bal":
            balance_unseen(model)
        report, calibrated = ctx.final_reports(ctx.scores(model, setting), selection)
        result = MethodResult(variant, report, selection, {**ctx.models.seconds, **seconds, **shared.seconds},
                              calibrated)
        return NIWTRun(result, model, out.mapper, opt, shared.inverse, ctx.run_info(), ctx.knowledge)

    def save(run: NIWTRun, d: Path) -> None:
        save_niwt_outputs(d, ctx.config, run)
        write_json(d / "result.json", run.result.to_dict())

    key = ctx.key(variant, selection=selection.to_dict(), **_niwt_config(ctx), **({} if explain else {"inverse_map": False}))
    return _stage(ctx.store, variant, key, compute, save,
                  lambda d: MethodResult.from_dict(_read_json(d / "result.json")))


def niwt_methods(ctx: RunContext, variants: tuple[str, ...], *, final_transfer=None,
                 explain: bool = True) -> list[NIWTRun | MethodResult]:
    """Several NIWT variants with one validation transfer per grid point, and one final transfer
    per distinct chosen point (:func:`niwt_method` for each; ``final_transfer`` from
    :func:`final_transfers` to share them further)."""
    t0 = time.perf_counter()
    selections = select_niwt_variants(ctx)
    select_seconds = time.perf_counter() - t0
    final_transfer = final_transfer if final_transfer is not None else final_transfers(ctx, explain=explain)
    return [niwt_method(ctx, selections[variant], variant=variant, final_transfer=final_transfer,
                        select_seconds=select_seconds, explain=explain) for variant in variants]


def baseline_method(ctx: RunContext, name: str) -> MethodResult:
    """A baseline on the penultimate features, its hyper-parameters chosen on the validation setting.

    The grid is searched with the validation model's features, the best point refitted on every
    seen class with the final model's features.
    """

    def compute(_: Path | None) -> MethodResult:
        t0 = time.perf_counter()
        d, k = ctx.data, ctx.knowledge
        points = _baseline_points(ctx.config, name)
        seed = {"random_state": ctx.config.seed} if "random_state" in get_baseline(name).get_params() else {}
        if len(points) > 1 or ctx.config.eval.calibrate:
            val, model = ctx.validation, ctx.model(ctx.validation)
            f_fit = penultimate_features(model, take(ctx.images, val.train_idx))
            f_eval = penultimate_features(model, take(ctx.images, val.test_idx))
            grid = []
            for params in points:
                est = get_baseline(name, **params, **seed).fit(f_fit, d.labels[val.train_idx], k)
                grid.append(ctx.grid_point(params, est.decision_function(f_eval, k)))
            selection = Selection.best_of(grid)
        else:
            selection = Selection(points[0])
        final, model = ctx.final, ctx.model(ctx.final)
        f_train = penultimate_features(model, take(ctx.images, final.train_idx))
        f_test = penultimate_features(model, take(ctx.images, final.test_idx))
        est = get_baseline(name, **selection.params, **seed).fit(f_train, d.labels[final.train_idx], k)
        report, calibrated = ctx.final_reports(est.decision_function(f_test, k), selection)
        return MethodResult(name, report, selection, {"fit": time.perf_counter() - t0}, calibrated)

    return _stage(ctx.store, name, ctx.key(name, grid=ctx.config.compare.grid(name)), compute,
                  lambda r, d: write_json(d / "result.json", r.to_dict()),
                  lambda d: MethodResult.from_dict(_read_json(d / "result.json")))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def run_methods(ctx: RunContext, methods: tuple[str, ...], *, final_transfer=None,
                explain: bool = True) -> tuple[tuple[MethodResult, ...], NIWTRun | None]:
    """Each of ``methods`` on ``ctx``, in order; NIWT's full run beside the results when it was
    computed here (None when it was not run, or reused from the context's stage store). The NIWT
    variants share their transfers (:func:`niwt_methods`)."""
    variants = tuple(m for m in methods if m in NIWT_VARIANTS)
    niwt_runs = (dict(zip(variants, niwt_methods(ctx, variants, final_transfer=final_transfer, explain=explain)))
                 if variants else {})
    results, niwt_run = [], None
    for method in methods:
        if method in NIWT_VARIANTS:
            out = niwt_runs[method]
            if method == "niwt" or niwt_run is None:
                niwt_run = out if isinstance(out, NIWTRun) else niwt_run
            result = out.result if isinstance(out, NIWTRun) else out
        else:
            result = baseline_method(ctx, method)
        results.append(result)
        log.info("%s: S=%.3f U=%.3f H=%.3f", method, result.report.seen_acc, result.report.unseen_acc,
                 result.report.H)
    return tuple(results), niwt_run


def run_niwt(config: RunConfig, data: ZSLData | None = None, progress: bool = False,
             base: Backbone | None = None) -> NIWTRun:
    """Run NIWT end to end (seeded by ``config.seed``) and evaluate GZSL on the test images."""
    config = resolve_config(config)
    seed_everything(config.seed)
    images = None
    if data is None:
        data, images = open_dataset(config)
    knowledge, names = class_vectors(config, data)
    ctx = build_context(config, data, knowledge, knowledge_names=names, base=base, progress=progress,
                        validation=needs_validation(config, ("niwt",)), images=images)
    run = niwt_method(ctx)
    if not isinstance(run, NIWTRun):  # pragma: no cover - without a stage store it is always computed
        raise RuntimeError("niwt_method returned a stored result without a stage store")
    return run


def save_niwt_outputs(staging: Path, config: RunConfig, run: NIWTRun) -> None:
    """Weights (safetensors), mapping and transfer records of a NIWT run."""
    from safetensors.torch import save_file

    (staging / "model").mkdir(exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    save_file(state, str(staging / "model" / "niwt.safetensors"), metadata={"arch": config.model.arch})
    mapper_state = {k: v.detach().contiguous() for k, v in run.mapper.net_.state_dict().items()}
    (staging / "mapping").mkdir(exist_ok=True)
    save_file(mapper_state, str(staging / "mapping" / "mapper.safetensors"))
    write_json(staging / "mapping" / "selection.json", {
        "best_epoch": run.mapper.best_epoch_, "val_spearman": run.mapper.val_spearman_,
        "holdout_classes": run.mapper.holdout_classes_.tolist(),
        "history": [{"loss": a, "spearman": b} for a, b in run.mapper.history_]})
    write_json(staging / "transfer" / "history.json", {
        "lam": run.optimizer.lam, "lr": run.optimizer.lr, "steps": run.optimizer.n_steps_,
        "stopped_early": run.optimizer.stopped_early_, "loss": run.optimizer.history_,
        "selection": run.selection.to_dict()})
    write_json(staging / "model" / "run.json", {**run.info, "arch": config.model.arch,
                                                "n_seen": run.model.classifier.n_seen,
                                                "n_unseen": run.model.classifier.n_unseen})
    if run.knowledge is not None:
        save_file({"knowledge": torch.from_numpy(np.ascontiguousarray(run.knowledge))},
                  str(staging / "model" / "knowledge.safetensors"))
    if run.inverse is not None:
        (staging / "mapping").mkdir(exist_ok=True)
        run.inverse.save(staging / "mapping" / "inverse.safetensors")


def write_run(staging: Path, config: RunConfig, record: dict[str, object]) -> None:
    """``config.toml``, ``versions.json`` and ``metrics.json`` (``record``, the config, and where the
    run computed: device, precision, processes) of a run."""
    save_config(config, staging / "config.toml")
    write_json(staging / "versions.json", versions())
    runtime = runtime_record(run_device(config), config.runtime.precision)
    write_json(staging / "metrics.json", {**record, "config": to_dict(config), "runtime": runtime})


def demo_config(seed: int = 0) -> RunConfig:
    """The defaults of ``niwt demo``."""
    return replace(RunConfig(), seed=seed)


COMPARISON_WORLD = {"n_source_images": 180, "n_trainval_images": 120, "n_test_seen_images": 60,
                    "n_test_unseen_images": 120}
"""The comparison world's image counts per class (the demo world's classes; its counts are 60, 40, 15, 30)."""


def comparison_config(seed: int = 0) -> RunConfig:
    """The defaults of ``niwt compare``, ``reproduce`` and ``ablate``: the comparison world.

    The demo's world is small so that it runs in about two minutes, and a single seed's numbers move
    by several points from test-set sampling alone (15 test images per seen class). The comparison
    world has the demo's classes with three times the training images, so that no method is held
    back by data starvation, and four times the test images, so that the sampling noise of S and U
    (about 0.01 and 0.015 per seed) is well below the differences being claimed; each epoch sees
    three times the images, so fewer epochs are run.
    """
    base = RunConfig()
    return replace(base, seed=seed, data=replace(base.data, **COMPARISON_WORLD),
                   train=replace(base.train, pretrain_epochs=6, epochs=8))


def publish_niwt_outputs(store: StageStore, staging: Path) -> None:
    """Copy the NIWT stage's weights, maps and records (``model/``, ``mapping/``, ``transfer/``)
    from ``store`` to the top of the run directory."""
    stage = store.path("niwt")
    for part in ("model", "mapping", "transfer"):
        if (stage / part).is_dir():
            shutil.copytree(stage / part, staging / part, dirs_exist_ok=True)


def run_to_dir(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
               resume: bool = False) -> Comparison:
    """Run NIWT and write a complete run directory at ``out``; returns what ``metrics.json`` holds.

    With ``resume``, a killed run aimed at ``out`` continues from its last finished step.
    """
    config = resolve_config(config)

    def body(staging: Path) -> Comparison:
        seed_everything(config.seed)
        store = StageStore(staging, prefix=f"seed{config.seed}.")
        data, images = open_dataset(config)
        knowledge, names = class_vectors(config, data)
        ctx = build_context(config, data, knowledge, knowledge_names=names, progress=progress, store=store,
                            validation=needs_validation(config, ("niwt",)), images=images)
        results, _ = run_methods(ctx, ("niwt",))
        comparison = Comparison((SeedRun(config.seed, results),),
                                dataset=data.name if config.model.arch == "mlp" else "")
        publish_niwt_outputs(store, staging)
        write_run(staging, config, comparison.to_dict())
        return comparison

    return in_run_dir(out, force, body, command="run", resume=resume)
