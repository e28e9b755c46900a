"""The run context: what every method of one run shares (config, data, knowledge, settings, trained models), built once and never mutated."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from niwt.config import RunConfig, to_dict
from niwt.data import ZSLData, data_key
from niwt.data.settings import Setting, build_settings, pool_indices, validation_splits
from niwt.data.source import ImageSource, take
from niwt.device import run_device
from niwt.errors import DataError
from niwt.evaluate import GZSLReport, choose_calibration, choose_common_calibration, evaluate_gzsl, mean_report
from niwt.models import Backbone, FeatureMLP
from niwt.pipeline.inputs import class_vectors
from niwt.pipeline.networks import TrainedModels, in_features, train_models
from niwt.results import GridPoint, Selection
from niwt.rundir import RunInfo, StageStore, stage_key
from niwt.scores import gzsl_scores, penultimate_features, spread_rows
from niwt.seeding import stage_generator, stage_rng, stage_seed

__all__ = ["RunContext", "build_context", "array_key"]


def array_key(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float64).tobytes()).hexdigest()[:20]


@dataclass(frozen=True, eq=False)
class RunContext:
    """What every method of one run shares; built once by :func:`build_context`, never mutated
    (but for the memo of :meth:`features`).

    Attributes:
        config: the resolved run config.
        data: the dataset.
        knowledge: ``[C, d]`` class vectors.
        images: ``[N, 3, H, W]`` float images of the dataset.
        validation, final: the two settings (:mod:`niwt.data.settings`).
        models: the trained backbones.
        more_validation: the further validation splits (``eval.val_splits``), after ``validation``.
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
    more_validation: tuple[Setting, ...] = ()
    _features: dict[tuple[int, str], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def key(self, stage: str, **parts: object) -> str:
        """The key of a method's stage: its config and the keys of the models and knowledge it uses."""
        return stage_key(stage=stage, models=self.models.keys, knowledge=array_key(self.knowledge),
                         seed=self.config.seed, eval=to_dict(self.config.eval), results_version=4, **parts)

    def run_info(self, model: Backbone) -> RunInfo:
        """What a later command needs to read ``model`` (the final setting's, extended) back:
        classes, rows, knowledge names, the dataset's fingerprint and how images were prepared."""
        names = self.knowledge_names
        if names is None:
            names = class_vectors(self.config, self.data)[1]
        data_cfg = self.config.data
        transform = (data_cfg.transform().to_dict() if hasattr(data_cfg, "transform")
                     else {"resize": None, "crop": None, "normalize": False})
        return RunInfo(tuple(self.data.class_names), tuple(self.final.fit_classes.tolist()),
                       tuple(self.final.new_classes.tolist()), tuple(names), data_key(self.data), self.data.name,
                       self.data.split_origin, int(self.images.shape[-1]), transform,
                       self.config.importance.layer or self.models.final.importance_layer, in_features(self.images),
                       self.config.model.arch, model.classifier.n_seen, model.classifier.n_unseen)

    @property
    def validations(self) -> tuple[Setting, ...]:
        """Every validation split: ``validation``, then ``more_validation``."""
        return (self.validation, *self.more_validation)

    def model(self, setting: Setting) -> Backbone:
        """The backbone trained for ``setting`` (shared: copy it before changing its rows)."""
        if setting is self.final:
            return self.models.final
        if self.models.validation is None:
            raise DataError("this run context has no validation model; build it with validation=True")
        if setting is self.validation:
            return self.models.validation
        for other, model in zip(self.more_validation, self.models.more_validation):
            if setting is other:
                return model
        raise DataError(f"no model was trained for the setting {setting.name!r} of this run context")

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

    def grid_point(self, params: dict[str, float], scores: np.ndarray | tuple[np.ndarray, ...]) -> GridPoint:
        """A point tried on the validation splits: its mean report over them, and the one
        calibrated-stacking constant that maximises their mean H (used for the calibrated comparison
        of every method).

        ``scores`` are the point's scores on each split of :attr:`validations`, in order (one array
        for the single split). With calibration asked for, each split's report uses that constant.
        """
        parts = (scores,) if isinstance(scores, np.ndarray) else tuple(scores)
        if len(parts) != len(self.validations):
            raise DataError(f"`scores` must hold one array per validation split ({len(self.validations)}), "
                            f"got {len(parts)}")
        problems = [(part, self.data.labels[s.test_idx], s.fit_classes, s.new_classes)
                    for part, s in zip(parts, self.validations)]
        gamma = choose_common_calibration(problems)
        calibration = gamma if self.config.eval.calibrate else 0.0
        reports = [self.report(s, part, calibration=calibration) for part, s in zip(parts, self.validations)]
        return GridPoint(params, mean_report(reports), gamma)

    def final_reports(self, scores: np.ndarray, selection: Selection) -> tuple[GZSLReport, GZSLReport | None]:
        """The final setting's report (calibrated only if the config asks), and the report with the
        calibrated-stacking constant chosen on validation (None when nothing was validated)."""
        report = self.report(self.final, scores, calibration=selection.calibration)
        if selection.calibrated_gamma is None:
            return report, None
        return report, self.report(self.final, scores, calibration=selection.calibrated_gamma)

    def features(self, setting: Setting, part: str) -> np.ndarray:
        """The penultimate features ``[N, D]`` of ``setting``'s model on its ``"train"`` or ``"test"``
        images (what the baselines are fitted on), computed once per run and shared by every baseline."""
        if part not in ("train", "test"):
            raise DataError(f"`part` must be 'train' or 'test', got {part!r}")
        key = (id(setting), part)
        if key not in self._features:
            idx = setting.train_idx if part == "train" else setting.test_idx
            self._features[key] = penultimate_features(self.model(setting), take(self.images, idx))
        return self._features[key]

    def row_scores(self, model: Backbone, setting: Setting) -> np.ndarray:
        """:meth:`scores` of a copy of ``setting``'s backbone whose classifier rows were changed (by a
        transfer): its classifier applied to the setting's cached penultimate features (:meth:`features`),
        so each grid point costs a matrix product instead of a pass through the network."""
        if isinstance(self.model(setting), FeatureMLP):  # its baselines' features are the dataset's own
            return self.scores(model, setting)
        weight = model.classifier.weight
        features = torch.from_numpy(self.features(setting, "test")).to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            logits = torch.cat([model.classifier(part) for part in features.split(512)]).cpu().double().numpy()
        return spread_rows(logits, setting.fit_classes, setting.new_classes, self.data.n_classes)

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
                idx = np.sort(stage_rng(self.config.seed, "pool", setting.name).choice(idx, size, replace=False))
            return take(self.images, idx)
        gen = stage_generator(self.config.seed, "noise pool", setting.name)
        return torch.rand(size or max(len(self.data.source_idx), 512), *self.images.shape[1:], generator=gen)

    def niwt_model(self, setting: Setting) -> Backbone:
        """A copy of ``setting``'s backbone to transfer into, with importance at ``importance.layer``."""
        model = copy.deepcopy(self.model(setting))
        if self.config.importance.layer:
            model.set_importance_layer(self.config.importance.layer)
        return model


def build_context(config: RunConfig, data: ZSLData, knowledge: np.ndarray, *, validation: bool = True,
                  base: Backbone | None = None, models: TrainedModels | None = None,
                  progress: bool = False, store: StageStore | None = None,
                  images: torch.Tensor | ImageSource | None = None,
                  knowledge_names: tuple[str, ...] | None = None) -> RunContext:
    """Settings, images and trained models of one seed of a run (``models`` reuses models trained
    before); :func:`niwt.pipeline.recipe.seed_context` is the way in.

    ``config`` is the run's config as :func:`~niwt.pipeline.inputs.open_run` resolved and fitted
    it (with the seed's and the arm's changes). With ``store``, every stage's result is kept there
    and reused when its key has not changed (:class:`~niwt.rundir.StageStore`).
    """
    run_device(config.runtime.device, config.runtime.precision)  # an unusable device or precision is refused before any training
    knowledge = np.asarray(knowledge, dtype=np.float64)
    if knowledge.shape[0] != data.n_classes:
        raise DataError(f"`knowledge` must have one row per class ({data.n_classes}), got shape {knowledge.shape}")
    settings = build_settings(data, stage_seed(config.seed, "validation split"))
    more = validation_splits(data, config.seed, config.eval.val_splits) if validation else ()
    images = images if images is not None else data.images_tensor(np.arange(len(data.labels)))
    if models is None:
        models = train_models(config, data, images, settings, validation=validation, base=base, progress=progress,
                              store=store, more_validation=more)
    if validation and len(models.more_validation) != len(more):
        raise DataError(f"the models were trained for {len(models.more_validation) + 1} validation split(s), the "
                        f"config asks for {len(more) + 1} (eval.val_splits)")
    return RunContext(config, data, knowledge, images, settings[0], settings[1], models, progress, store,
                      knowledge_names, more)
