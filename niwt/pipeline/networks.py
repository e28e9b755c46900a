"""The training stages of a run: pre-training on the source classes, then one seen-class training per setting."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from niwt.config import RunConfig, model_options, to_dict
from niwt.data import ZSLData, data_key
from niwt.data.settings import Setting
from niwt.data.source import ImageSource, take
from niwt.device import run_device
from niwt.errors import ConfigError, DataError
from niwt.models import Backbone, create_model, load_model
from niwt.models.adopted import state_digest
from niwt.pipeline.stages import model_stage
from niwt.rundir import StageStore, layout, stage_key
from niwt.seeding import seeded, stage_generator, stage_seed
from niwt.training import train_classifier
from niwt.training.validation import ADOPTED, HELD_OUT_ROWS, held_out_rows

__all__ = ["in_features", "pretrain", "fit_seen", "TrainedModels", "train_models", "held_out_validation"]


def in_features(images: torch.Tensor | ImageSource) -> int | None:
    """The feature width of a features dataset (one-pixel images of D channels), else None."""
    return int(images.shape[1]) if tuple(images.shape[2:]) == (1, 1) else None


def pretrain(config: RunConfig, data: ZSLData, images: torch.Tensor, progress: bool = False,
             checkpoint: Path | None = None) -> Backbone:
    """A backbone trained on the source classes (or untrained when there are none / 0 epochs)."""
    n_out = max(len(data.source_classes), 1)
    with seeded(stage_seed(config.seed, "pretrain", "init")):
        model = create_model(config.model.arch, n_out, **model_options(config, in_features(images)))
        model.to(run_device(config.runtime.device, config.runtime.precision))  # made on the CPU: the same start on every device
        if len(data.source_idx) and config.train.pretrain_epochs:
            t = config.train
            setting = Setting("source", data.source_classes, np.zeros(0, np.int64), data.source_idx, data.source_idx)
            labels = torch.from_numpy(setting.rows(data.labels[data.source_idx]))
            train_classifier(model, take(images, data.source_idx), labels, epochs=t.pretrain_epochs, lr=t.lr,
                             batch_size=t.batch_size, weight_decay=t.weight_decay, mode="finetuned",
                             augment=t.augment, generator=stage_generator(config.seed, "pretrain", "batches"),
                             progress=progress, desc="pre-train", checkpoint=checkpoint,
                             precision=config.runtime.precision)
    return model


def fit_seen(config: RunConfig, base: Backbone, images: torch.Tensor, labels: torch.Tensor, n_classes: int,
             progress: bool = False, desc: str = "seen", checkpoint: Path | None = None,
             stage: str = "train_final") -> Backbone:
    """A copy of ``base`` with a fresh classifier, trained on seen classes (fixed or finetuned).

    ``labels`` are classifier rows (``Setting.rows``). In finetuned mode with ``train.head_epochs``,
    the new classifier first trains alone (``fixed``), then every layer, as the authors' code does.
    ``stage`` names the training (``"train_val"``, ``"train_final"``): each draws its own streams.
    """
    model = copy.deepcopy(base)
    t = config.train
    with seeded(stage_seed(config.seed, stage, "init")):
        model.reset_classifier(n_classes)
        if t.mode == "finetuned" and t.head_epochs:
            train_classifier(model, images, labels, epochs=t.head_epochs, lr=t.head_lr or t.lr,
                             batch_size=t.batch_size, weight_decay=t.weight_decay, mode="fixed", augment=t.augment,
                             generator=stage_generator(config.seed, stage, "head batches"), progress=progress,
                             desc=f"{desc} (classifier)",
                             checkpoint=checkpoint.with_name(f"head-{checkpoint.name}") if checkpoint else None,
                             precision=config.runtime.precision)
        train_classifier(model, images, labels, epochs=t.epochs, lr=t.lr, batch_size=t.batch_size,
                         weight_decay=t.weight_decay, mode=t.mode, augment=t.augment,
                         generator=stage_generator(config.seed, stage, "batches"), progress=progress, desc=desc,
                         checkpoint=checkpoint, precision=config.runtime.precision)
    return model


@dataclass(frozen=True, eq=False)
class TrainedModels:
    """The backbones one run shares between methods: pre-trained, and trained per setting.

    ``keys`` are the stage keys they were made from (what the methods' keys build on);
    ``more_validation`` the models of the further validation splits, in their order.
    """

    base: Backbone
    final: Backbone
    validation: Backbone | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    more_validation: tuple[Backbone, ...] = ()


def train_models(config: RunConfig, data: ZSLData, images: torch.Tensor, settings: tuple[Setting, Setting], *,
                 validation: bool = True, base: Backbone | None = None, progress: bool = False,
                 store: StageStore | None = None, more_validation: tuple[Setting, ...] = ()) -> TrainedModels:
    """Pre-train (unless ``base`` is given), then train the final and (if asked) the validation
    model, and one more validation model per setting of ``more_validation`` (``train_val2``, ...).

    With ``store``, each model is a stage: reused when it finished with the same key, continued
    from its last epoch when it was interrupted. With ``eval.validation = "held_out_rows"`` only the
    final model is trained, and each validation model is it with the split's val classes' rows held
    out (:func:`held_out_validation`). With ``train.mode = "adopted"`` nothing is trained: ``base``
    is the final model as it is (``niwt adopt``), validated on its held-out rows.
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
    device = run_device(config.runtime.device, config.runtime.precision)
    if t.mode == ADOPTED:
        return _adopted(config, None if base is None else base.to(device), settings, more_validation, validation)
    t0 = time.perf_counter()
    if base is None:
        n_src = max(len(data.source_classes), 1)
        base = model_stage(store, "pretrain", keys["pretrain"],
                           lambda d: pretrain(config, data, images, progress, d / layout.CHECKPOINT if d else None),
                           lambda file: load_model(config.model.arch, n_src, file,
                                                   **model_options(config, in_features(images))).to(device))
    seconds["pretrain"] = time.perf_counter() - t0

    def trained(name: str, setting: Setting, desc: str) -> Backbone:
        keys[name] = stage_key(stage=name, base=keys["pretrain"], train=to_dict(t), seed=config.seed,
                               classes=setting.fit_classes.tolist(), images=setting.train_idx.tolist())
        idx = setting.train_idx
        labels = torch.from_numpy(setting.rows(data.labels[idx]))

        def compute(d: Path | None) -> Backbone:
            return fit_seen(config, base, take(images, idx), labels, len(setting.fit_classes), progress, desc=desc,
                            checkpoint=d / layout.CHECKPOINT if d else None, stage=name)

        def load(file: Path) -> Backbone:
            model = copy.deepcopy(base)
            model.reset_classifier(len(setting.fit_classes))
            model.load_state_dict(load_file(str(file)))
            return model.to(device).eval()

        t0 = time.perf_counter()
        model = model_stage(store, name, keys[name], compute, load)
        seconds[name] = time.perf_counter() - t0
        return model

    if validation and not len(val_setting.new_classes):
        raise DataError("choosing hyper-parameters needs validation classes, but `val_classes` is empty; "
                        "set data.n_val > 0 or transfer.select = false")
    if validation and config.eval.validation == HELD_OUT_ROWS:
        final = trained("train_final", final_setting, "train (seen)")
        return held_out_validation(TrainedModels(base, final, None, seconds, keys), final_setting,
                                   (val_setting, *more_validation))
    val_model = trained("train_val", val_setting, "train (val)") if validation else None
    more = tuple(trained(f"train_val{k}", setting, f"train (val {k})")
                 for k, setting in enumerate(more_validation, start=2)) if validation else ()
    final = trained("train_final", final_setting, "train (seen)")
    return TrainedModels(base, final, val_model, seconds, keys, more)


def _adopted(config: RunConfig, model: Backbone | None, settings: tuple[Setting, Setting],
             more_validation: tuple[Setting, ...], validation: bool) -> TrainedModels:
    """The models of an adopted classifier (``train.mode = "adopted"``): ``model`` is the final
    network as it is, nothing is trained, validation is inside it (``"held_out_rows"``)."""
    val_setting, final_setting = settings
    if model is None:
        raise ConfigError('train.mode = "adopted" takes a classifier trained elsewhere, which `niwt adopt` (or '
                          'niwt.pipeline.adoption) gives; to have niwt train one set train.mode to "finetuned" or "fixed"')
    if model.classifier.n_seen != len(final_setting.fit_classes):
        raise DataError(f"the adopted classifier has {model.classifier.n_seen} outputs, the dataset "
                        f"{len(final_setting.fit_classes)} seen classes")
    if validation and config.eval.validation != HELD_OUT_ROWS:
        raise ConfigError(f'an adopted classifier cannot be retrained for validation: eval.validation must be '
                          f'"{HELD_OUT_ROWS}", got {config.eval.validation!r}')
    key = stage_key(stage="adopted", weights=state_digest(model.state_dict()), rows=len(final_setting.fit_classes))
    models = TrainedModels(model, model, None, {"pretrain": 0.0, "train_final": 0.0},
                           {"pretrain": key, "train_final": key})
    return held_out_validation(models, final_setting, (val_setting, *more_validation)) if validation else models


def held_out_validation(models: TrainedModels, final_setting: Setting,
                        validations: tuple[Setting, ...]) -> TrainedModels:
    """``models`` with one validation network per setting of ``validations`` made without
    training: the final network with that setting's val classes' rows held out
    (``eval.validation = "held_out_rows"``, :mod:`niwt.training.validation`).

    Each is keyed by the final network's key and the rows it keeps (``train_val``, ``train_val2``, ...).
    """
    keys = dict(models.keys)
    made = []
    for k, setting in enumerate(validations, start=1):
        name = "train_val" if k == 1 else f"train_val{k}"
        rows = final_setting.rows(setting.fit_classes)
        keys[name] = stage_key(stage=name, rows_of=keys["train_final"], rows=rows.tolist(),
                               images=setting.test_idx.tolist())
        made.append(held_out_rows(models.final, rows))
    return replace(models, validation=made[0] if made else None, more_validation=tuple(made[1:]), keys=keys)
