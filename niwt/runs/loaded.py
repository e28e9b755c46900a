"""Reading a finished run back: the extended model, its classes, knowledge and maps; and what it
can do then: predict a user's images, be taught new classes or forget some (:mod:`niwt.runs.teach`)
and be saved as a new run.

Everything comes from the run directory itself (weights as safetensors, records as JSON); the
dataset, when a command needs its images, is opened from the run's config and checked against the
fingerprint the run recorded, so a changed dataset is never silently mistaken for the run's own.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from safetensors.torch import load_file

from niwt.config import RunConfig, load_config, model_options, to_dict
from niwt.data import data_key, open_dataset
from niwt.data.files.images import ImageTransform, open_rgb
from niwt.errors import DataError, NIWTError, RunDirectoryError
from niwt.explain.inverse import InverseMapper
from niwt.faults import failpoint
from niwt.knowledge import KnowledgeEncoder, load_class_vectors, save_class_vectors
from niwt.mapping import ImportanceMapper
from niwt.messages import first_names
from niwt.models import Backbone, load_model, save_weights
from niwt.models.adopted import MODULE_PREFIX, module_backbone
from niwt.results import RunMetrics
from niwt.rundir import (
    FORMAT_VERSION,
    RunInfo,
    check_output_dir,
    file_checksum,
    layout,
    owned_outputs,
    read_manifest,
    run_dir,
    run_lock,
    verify_run,
    write_json,
)
from niwt.runs.teach import (
    Lesson,
    TeachEvent,
    check_new_names,
    learn_rows,
    lessons_of,
    read_events,
    write_events,
)
from niwt.transfer import PoolCache

__all__ = ["RunFormatError", "LoadedRun", "Prediction", "load_run", "write_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """What a run's model says of one image: its ``top_k`` classes, most probable first, with
    their probabilities over every class the run knows."""

    source: str
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "top": [{"class": c, "probability": p}
                                               for c, p in zip(self.classes, self.probabilities)]}


class RunFormatError(NIWTError, ValueError):
    """A run directory that cannot be read: not a niwt run, another format version, or incomplete."""


@dataclass(frozen=True, eq=False)
class LoadedRun:
    """A finished run, as written by ``niwt run`` / ``demo`` / ``compare``.

    Attributes:
        path: the run directory.
        config: its resolved config.
        metrics: its ``metrics.json`` (:class:`~niwt.results.RunMetrics`).
        model: the extended model (seen rows, then unseen rows), in eval mode.
        class_names: every class of the dataset; a class id is a position here.
        fit_classes, new_classes: class ids of the model's seen rows and of its unseen rows, in order.
        knowledge: ``[C, d]`` class vectors the run used; knowledge_names: their d names.
        mapper: the forward map knowledge -> importance; inverse: the inverse map (None if absent).
        info: its ``model/run.json`` (:class:`~niwt.rundir.RunInfo`: dataset fingerprint, image transform, layer).
        encoder: what its class vectors were made with (:class:`~niwt.knowledge.KnowledgeEncoder`;
            None for a run written before runs kept it).
        events: what it was taught or made to forget since its run (:class:`~niwt.runs.teach.TeachEvent`).
        saved: False for a run :meth:`teach` or :meth:`forget` changed in memory: :meth:`save` writes
            it (``path`` is then the run it came from).
        loaded_from: the checksum of the manifest the run was loaded with: :meth:`save` refuses to
            write when the run at ``path`` has changed since.
    """

    path: Path
    config: RunConfig
    metrics: RunMetrics
    model: Backbone
    class_names: tuple[str, ...]
    fit_classes: np.ndarray
    new_classes: np.ndarray
    knowledge: np.ndarray
    knowledge_names: tuple[str, ...]
    mapper: ImportanceMapper
    inverse: InverseMapper | None
    info: RunInfo
    encoder: KnowledgeEncoder | None = None
    events: tuple[TeachEvent, ...] = ()
    saved: bool = True
    loaded_from: str = ""

    @property
    def classes(self) -> np.ndarray:
        """Class ids in classifier-row order."""
        return np.concatenate([self.fit_classes, self.new_classes])

    @property
    def row_names(self) -> tuple[str, ...]:
        """Class names in classifier-row order."""
        return tuple(self.class_names[c] for c in self.classes)

    def row_of(self, name: str) -> int:
        """The classifier row of class ``name``.

        Raises:
            DataError: for a name that is not a class of the run (the valid ones are listed).
        """
        rows = {n: i for i, n in enumerate(self.row_names)}
        if name not in rows:
            shown = ", ".join(self.row_names[:40]) + (" ..." if len(self.row_names) > 40 else "")
            raise DataError(f"unknown class {name!r}; the classes of this run are: {shown}")
        return rows[name]

    def encode(self, *, description: str | Sequence[str] | None = None,
               attributes: dict[str, float] | None = None) -> np.ndarray:
        """The knowledge vector a new class would get in this run, from its description or its
        attribute values, made exactly as the run's own classes' vectors were
        (:meth:`~niwt.knowledge.KnowledgeEncoder.encode`).

        Raises:
            RunFormatError: a run written before runs kept their knowledge encoder.
            DataError: knowledge the encoder cannot use (said why).
        """
        if self.encoder is None:
            raise RunFormatError(f"run {str(self.path)!r} was written before runs kept their knowledge encoder "
                                 f"({layout.KNOWLEDGE_ENCODER}), so a new class's knowledge cannot be encoded as "
                                 "its classes' was; rerun it with this niwt")
        return self.encoder.encode(description=description, attributes=attributes)

    def image_transform(self) -> ImageTransform:
        """How the run's images were prepared (resize, crop, normalisation)."""
        t = dict(self.info.transform)
        size = self.info.image_size
        if t.get("resize") is None and t.get("crop") is None:  # the shapes world: its images are size x size
            t.update(resize=size, crop=size, normalize=False)
        return ImageTransform.from_dict(t)

    def load_images(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """Image files (PNG or JPEG, any size and mode) prepared as the run's images were.

        Grey and RGBA images are converted to RGB, with a note in the log; a photo with an EXIF
        orientation is turned upright first (as ``niwt serve`` shows it).

        Raises:
            DataError: naming a file that is missing or not an image.
        """
        build = self.image_transform().build()
        out = []
        for path in paths:
            try:
                with Image.open(path) as probe:
                    mode = probe.mode
            except FileNotFoundError:
                raise DataError(f"image file not found: {path}") from None
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(f"{path} is not an image niwt can read (PNG or JPEG): {err}") from None
            if mode != "RGB":
                log.warning("%s: a %s image, converted to RGB", path, mode)
            out.append(build(open_rgb(path, upright=True)))  # a phone photo as serve shows it
        return torch.stack(out)

    @property
    def calibration(self) -> float:
        """The calibrated-stacking constant NIWT chose on validation classes (0 when the run's
        config does not calibrate): subtracted from the seen classes' scores before a prediction."""
        if not self.config.eval.calibrate:
            return 0.0
        selection = self.metrics.result.niwt_selection()
        return 0.0 if selection is None else float(selection.calibration)

    def scores(self, images: torch.Tensor) -> torch.Tensor:
        """The scores ``[N, classes]`` (float64) the run ranks prepared images by: the extended
        classifier's logits with :attr:`calibration` taken off the seen classes'. Their arg-max is
        what :meth:`predict`, ``explain`` and the report call each image."""
        with torch.no_grad():
            logits = self.model.eval()(images).double()
        logits[:, : len(self.fit_classes)] -= self.calibration
        return logits

    def predict(self, images: Sequence[str | Path] | torch.Tensor, top_k: int = 5) -> tuple[Prediction, ...]:
        """The ``top_k`` classes of every image, with their probabilities over every class the run
        knows (a softmax over the extended classifier, after the run's calibration).

        Args:
            images: image files (prepared as the run's images were), or a prepared ``[N, 3, H, W]`` batch.
            top_k: classes listed per image (capped at the number of classes).

        Raises:
            DataError: a file that is missing or not an image, or a ``top_k`` below 1.
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise DataError(f"`top_k` must be an integer >= 1, got {top_k!r}")
        if isinstance(images, torch.Tensor):
            batch, sources = images, [f"image {i}" for i in range(images.shape[0])]
        else:
            batch, sources = self.load_images(list(images)), [str(p) for p in images]
        probs = self.scores(batch).softmax(1)
        k = min(top_k, probs.shape[1])
        values, rows = probs.topk(k, dim=1)
        names = self.row_names
        return tuple(Prediction(src, tuple(names[r] for r in row.tolist()), tuple(float(v) for v in value.tolist()))
                     for src, row, value in zip(sources, rows, values))

    @property
    def taught_classes(self) -> tuple[str, ...]:
        """The classes taught since the run that it still has, in the order they were taught."""
        names = set(self.row_names)
        out: list[str] = []
        for event in self.events:
            if event.action == "teach":
                out += [c for c in event.classes if c not in out]
            else:
                out = [c for c in out if c not in event.classes]
        return tuple(c for c in out if c in names)

    def teach(self, lessons: Lesson | Sequence[Lesson] | str, *, description: str | None = None,
              attributes: Mapping[str, float] | None = None) -> LoadedRun:
        """This run with new classes, each from its description or attribute values
        (:mod:`niwt.runs.teach`): their rows are learned as the run's transfer learned its own, from
        the pool cache the run kept, at its chosen Λ and learning rate, beside its unseen classes;
        nothing else of the run changes. In memory: :meth:`save` writes it.

        ``run.teach("zebra", description="a striped horse")``, or several classes at once:
        ``run.teach([Lesson("zebra", description=...), Lesson("okapi", description=...)])``.

        Raises:
            RunFormatError: a run written before runs kept their knowledge encoder and pool cache.
            DataError: a name that is already a class of the run, or knowledge its encoder cannot
                use (an empty description, no word of its vocabulary, an unknown attribute: said which).
        """
        lessons = lessons_of(lessons, description, attributes)
        names = [x.name for x in lessons]
        back = check_new_names(names, self.row_names, seen_names=[self.class_names[c] for c in self.fit_classes],
                               dataset_names=self.class_names)
        for name in back:
            log.warning("%r is a class of the run's dataset that the run forgot: it is taught back under its own name, "
                        "with the knowledge given now (its images in the dataset keep that name)", name)
        vectors = []
        for lesson in lessons:
            try:
                vectors.append(self.encode(description=lesson.description, attributes=lesson.attributes))
            except DataError as err:
                raise DataError(f"class {lesson.name!r}: {err}") from None
        cache_file = self.path / layout.POOL_CACHE
        if not cache_file.is_file():
            raise RunFormatError(f"run {str(self.path)!r} was written before runs kept their transfer pool's cache "
                                 f"({layout.POOL_CACHE}), which teaching learns the new rows from; rerun it with "
                                 "this niwt")
        try:
            pool_cache = PoolCache.load(cache_file)
        except RunDirectoryError as err:
            raise RunFormatError(str(err)) from None
        lam, lr = self._transfer_point()
        rows = learn_rows(self.model, self.mapper, self.knowledge[self.new_classes], np.stack(vectors), pool_cache,
                          lam=lam, lr=lr, transfer=to_dict(self.config.transfer),
                          reduction=self.config.importance.reduction, seed=self.config.seed, names=names)
        class_names, knowledge = list(self.class_names), self.knowledge.copy()
        ids = []
        for name, vector in zip(names, vectors):
            if name in class_names:  # a class of the dataset without a row (forgotten): it takes the new vector
                ids.append(class_names.index(name))
                knowledge[ids[-1]] = vector
            else:
                ids.append(len(class_names))
                class_names.append(name)
                knowledge = np.concatenate([knowledge, vector[None].astype(knowledge.dtype)])
        model = copy.deepcopy(self.model)
        head = model.classifier
        weight = torch.cat([head.unseen_weight.detach().cpu(), rows.weights.to(head.unseen_weight.dtype)])
        bias = torch.cat([head.unseen_bias.detach().cpu(), torch.zeros(len(ids), dtype=head.unseen_bias.dtype)])
        head.set_unseen(weight, bias)
        event = TeachEvent("teach", tuple(names), lessons=lessons, lam=lam, lr=lr, steps=rows.steps, loss=rows.loss,
                           seconds=rows.seconds)
        return self._changed(tuple(class_names), knowledge, np.concatenate([self.new_classes, ids]).astype(np.int64),
                             model, event)

    def forget(self, names: str | Sequence[str]) -> LoadedRun:
        """This run without the rows of classes ``names``: taught ones leave the run, the dataset's
        unseen classes keep their name and vector but get no score. In memory: :meth:`save` writes it.

        Raises:
            DataError: a name that is not a class of the run, or a seen class (its row was trained
                on its images), or all of the run's unseen classes.
        """
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise DataError("no class to forget: give at least one name")
        rows = [self.row_of(n) for n in names]
        seen = [n for n, r in zip(names, rows) if r < len(self.fit_classes)]
        if seen:
            raise DataError(f"{seen[0]!r} is a seen class of this run: its row was trained on its images and stays; "
                            "the classes that can be forgotten are the taught and unseen ones: "
                            f"{first_names(self.row_names[len(self.fit_classes):], 12, show=repr)}")
        keep = [i for i in range(len(self.new_classes)) if len(self.fit_classes) + i not in set(rows)]
        if not keep:
            raise DataError("forgetting every unseen class of the run leaves no unseen row; keep at least one")
        taught = set(self.taught_classes)
        gone = sorted(int(self.new_classes[r - len(self.fit_classes)]) for n, r in zip(names, rows) if n in taught)
        model = copy.deepcopy(self.model)
        head = model.classifier
        head.set_unseen(head.unseen_weight.detach()[keep].cpu(), head.unseen_bias.detach()[keep].cpu())
        new_classes = self.new_classes[keep]
        class_names = [c for i, c in enumerate(self.class_names) if i not in gone]
        knowledge = np.delete(self.knowledge, gone, axis=0)
        new_classes = np.array([c - sum(g < c for g in gone) for c in new_classes.tolist()], np.int64)
        return self._changed(tuple(class_names), knowledge, new_classes, model, TeachEvent("forget", tuple(names)))

    def _changed(self, class_names: tuple[str, ...], knowledge: np.ndarray, new_classes: np.ndarray, model: Backbone,
                 event: TeachEvent) -> LoadedRun:
        info = replace(self.info, class_names=class_names, new_classes=tuple(int(c) for c in new_classes),
                       n_unseen=len(new_classes))
        return replace(self, model=model.eval(), class_names=class_names, new_classes=new_classes, knowledge=knowledge,
                       info=info, events=(*self.events, event), saved=False)

    def _transfer_point(self) -> tuple[float, float]:
        """The Λ and learning rate of the transfer behind the run's unseen rows (``transfer/history.json``)."""
        path = self.path / layout.TRANSFER_HISTORY
        record = _read_json(path)
        try:
            return float(record["lam"]), float(record["lr"])
        except (KeyError, TypeError, ValueError) as err:
            raise RunFormatError(f"{path} holds no transfer point: {err!r}") from None

    def default_out(self) -> Path:
        """Where :meth:`save` writes without ``out``: ``<run>-taught`` beside the run (``-2``, ``-3`` ... when taken)."""
        here = Path(os.path.abspath(self.path))
        base = here.parent / f"{here.name}-taught"
        out, i = base, 1
        while out.exists():
            i += 1
            out = base.with_name(f"{base.name}-{i}")
        return out

    def save_target(self, out: str | Path | None = None, *, in_place: bool = False, force: bool = False) -> Path:
        """Where :meth:`save` would write, checked before any work: the run itself (``in_place``),
        ``out``, or :meth:`default_out`.

        Raises:
            DataError: ``out`` and ``in_place`` both given.
            RunDirectoryError: ``out`` is the run itself (without ``in_place``) or inside it, a file,
                a folder holding files that are not a niwt run, or a run and ``force`` is False.
        """
        if in_place and out is not None:
            raise DataError("give `out` or `in_place=True`, not both")
        here = Path(os.path.abspath(self.path))
        if in_place:
            return here
        target = Path(os.path.abspath(out)) if out is not None else self.default_out()
        if target == here:
            raise RunDirectoryError(f"{str(out)!r} is the run being changed itself; to replace it, change it in place "
                                    "(--in-place), or give another folder")
        if here in target.parents:
            raise RunDirectoryError(f"{str(out)!r} is inside the run {str(self.path)!r}; give a folder outside it")
        check_output_dir(target, force)
        return target

    def save(self, out: str | Path | None = None, *, in_place: bool = False, force: bool = False) -> LoadedRun:
        """Write this run as a complete run directory and return it read back from there.

        The run it came from is copied (every file its manifest lists), then its model, classes,
        knowledge and ``taught.json`` are written. What commands wrote about the run it came from
        (``report.html``, the report's plots, ``explain/``) describes that run: a new run starts
        without them, and an in-place change keeps them, as they were (``niwt report`` writes the
        report anew). Like every run directory it is written in a private staging directory and
        renamed into place when complete, so a killed save leaves every run as it was; while it
        is renamed into place no other niwt command writes the run (:func:`~niwt.rundir.run_lock`).

        Args:
            out: the new run directory (default: :meth:`default_out`).
            in_place: replace the run it came from instead (``out`` must not be given).
            force: replace a niwt run at ``out``.

        Raises:
            RunDirectoryError: ``out`` may not be written (:meth:`save_target`); the source run
                changed since it was loaded (another command changed it: load it again).
        """
        target = self.save_target(out, in_place=in_place, force=force)
        command = self.events[-1].action if self.events else "teach"
        with run_lock(self.path), run_dir(target, force=force or in_place, command=command) as staging:
            self._check_unchanged()
            manifest = verify_run(self.path)
            for name in manifest.files:
                if name == layout.MANIFEST or layout.is_about(name):
                    continue
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.path / name, staging / name)
            if in_place:
                for name in sorted(owned_outputs(self.path)):
                    (staging / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(self.path / name, staging / name)
            write_model(staging, self.model, self.info, self.knowledge)
            write_json(staging / layout.TAUGHT, write_events(self.events))
            failpoint("teach:before-finish")
        log.info("wrote %s (%s)", target, "; ".join(e.summary() for e in self.events[-1:]))
        return load_run(target)

    def _check_unchanged(self) -> None:
        """Refuse to save when the run at :attr:`path` is no longer the one this was loaded from."""
        try:
            now = file_checksum(Path(self.path) / layout.MANIFEST)
        except OSError:
            now = None
        if self.loaded_from and now != self.loaded_from:
            raise RunDirectoryError(f"run {str(self.path)!r} changed since it was loaded (another command taught it, "
                                    "made it forget or wrote it again); load it again and repeat the change")

    def dataset(self):  # -> tuple[ZSLData, torch.Tensor | ImageSource]
        """The run's dataset and images, opened from its config and checked against its fingerprint."""
        data, images = open_dataset(self.config.data, feature_mode=self.config.model.arch == "mlp")
        if data_key(data) != self.info.data_key:
            raise DataError(f"the dataset opened from {self.path / layout.CONFIG} is not the one this run was made "
                            "from (its fingerprint differs); point data.root at the run's dataset")
        return data, images


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFormatError(f"cannot read {path}: {err}") from err


def load_run(path: str | Path, model: torch.nn.Module | None = None) -> LoadedRun:
    """Read a run directory written by niwt (only safetensors and JSON are read; nothing is unpickled).

    ``model`` is needed only for a run adopted from a Python network (``model.arch =
    "module/<class>"``): a network of the same class and shape (its weights are replaced by the run's).

    Raises:
        RunFormatError: ``path`` is not a complete niwt run, was written by another format version, has
            a file that is missing, truncated or altered since it was written (named), or lacks the
            trained model (a run of ``sweep-lambda`` or ``reproduce``, or ``compare`` without NIWT).
    """
    given = str(path)
    path = Path(os.path.abspath(path))  # "." and other spellings name the run's own folder
    if path.exists() and not path.is_dir():
        raise RunFormatError(f"{given!r} is a file, not a run directory; give the folder a niwt run wrote "
                             f"(it holds {layout.MANIFEST})")
    if not path.is_dir():
        raise RunFormatError(f"run directory {given!r} does not exist")
    with run_lock(path):  # a run being replaced in place is read before or after, never half
        return _load(path, model)


def _load(path: Path, module: torch.nn.Module | None = None) -> LoadedRun:
    try:
        loaded_from = file_checksum(path / layout.MANIFEST)
    except OSError:
        loaded_from = ""
    manifest = read_manifest(path)
    if manifest is None:
        raise RunFormatError(f"{str(path)!r} is not a complete niwt run (no niwt {layout.MANIFEST})")
    if manifest.format_version != FORMAT_VERSION:
        raise RunFormatError(f"{str(path)!r} was written in run format {manifest.format_version} (niwt "
                             f"{manifest.niwt_version or '?'}); this niwt reads format {FORMAT_VERSION}: rerun it")
    try:
        verify_run(path)  # every file against the checksum the manifest holds
    except RunDirectoryError as err:
        raise RunFormatError(str(err)) from None
    weights, info_path = path / layout.MODEL_WEIGHTS, path / layout.RUN_INFO
    if not weights.exists() or not info_path.exists():
        raise RunFormatError(f"{str(path)!r} holds no trained NIWT model ({layout.MODEL_WEIGHTS} and "
                             f"{layout.RUN_INFO}); it was written by `niwt {manifest.command}`. Use a run of "
                             "`niwt run`, `niwt demo` or `niwt compare` with NIWT among its methods")
    config = load_config(path / layout.CONFIG)
    try:
        info = RunInfo.from_dict(_read_json(info_path), source=str(info_path))
        metrics = RunMetrics.from_dict(_read_json(path / layout.METRICS))
    except (NIWTError, KeyError, TypeError, ValueError) as err:
        raise RunFormatError(f"{str(path)!r}: {layout.RUN_INFO} or {layout.METRICS}: {err}") from err
    model = _load_model(config, info, weights, module)
    try:
        mapper = ImportanceMapper.load(path / layout.FORWARD_MAP, model=config.mapping.model,
                                       hidden=config.mapping.hidden)
    except DataError as err:
        raise RunFormatError(str(err)) from None
    inverse_path = path / layout.INVERSE_MAP
    inverse = InverseMapper.load(inverse_path) if inverse_path.exists() else None
    knowledge_path = path / layout.KNOWLEDGE
    if not knowledge_path.exists():
        raise RunFormatError(f"{path} lacks {layout.KNOWLEDGE} (the class vectors the run used)")
    try:
        knowledge = load_class_vectors(knowledge_path)
    except DataError as err:
        raise RunFormatError(str(err)) from None
    encoder_path = path / layout.KNOWLEDGE_ENCODER
    try:
        encoder = KnowledgeEncoder.load(encoder_path) if encoder_path.exists() else None
    except NIWTError as err:
        raise RunFormatError(str(err)) from err
    try:
        events = read_events(path / layout.TAUGHT)
    except RunDirectoryError as err:
        raise RunFormatError(str(err)) from None
    return LoadedRun(path, config, metrics, model, info.class_names, np.asarray(info.fit_classes, np.int64),
                     np.asarray(info.new_classes, np.int64), knowledge, info.knowledge_names, mapper, inverse, info,
                     encoder, events, loaded_from=loaded_from)


def _load_model(config: RunConfig, info: RunInfo, weights: Path, module: torch.nn.Module | None = None) -> Backbone:
    arch = config.model.arch
    if arch.startswith(MODULE_PREFIX):
        return _module_model(config, info, weights, module)
    if module is not None:
        raise RunFormatError(f"this run's network is niwt's {arch!r}, which it builds itself; load it without model=")
    try:
        model = load_model(config.model.arch, info.n_seen, weights, **model_options(config, info.in_features))
    except (RuntimeError, OSError, KeyError) as err:
        raise RunFormatError(f"{weights} does not fit a {config.model.arch!r} model: {err}") from err
    if config.importance.layer:
        model.set_importance_layer(config.importance.layer)
    return model


def _module_model(config: RunConfig, info: RunInfo, weights: Path, module: torch.nn.Module | None) -> Backbone:
    """The backbone of a run adopted from a Python network, built on ``module`` (a copy)."""
    name = config.model.arch[len(MODULE_PREFIX):]
    if module is None:
        raise RunFormatError(f"this run was adopted from a Python {name} (model.arch = {config.model.arch}): load it "
                             f"with niwt.load_run(RUN, model=<a {name} of the same shape>)")
    if type(module).__name__ != name:
        raise RunFormatError(f"this run was adopted from a {name}; `model` is a {type(module).__name__}")
    try:
        model = module_backbone(module, config.importance.layer)
        model.load_state_dict(load_file(str(weights)))
    except (NIWTError, RuntimeError, KeyError) as err:
        raise RunFormatError(f"{weights} does not fit the given {name}: {str(err)[:300]}") from err
    return model.eval()


def write_model(directory: Path, model: Backbone, info: RunInfo, knowledge: np.ndarray | None) -> None:
    """The model part of a run in ``directory`` (a run, or NIWT's stage): the extended model's
    weights, ``info`` (its classes and rows, :class:`~niwt.rundir.RunInfo`) and the class vectors."""
    (directory / layout.MODEL).mkdir(parents=True, exist_ok=True)
    save_weights(model, directory / layout.MODEL_WEIGHTS, metadata={"arch": info.arch})
    write_json(directory / layout.RUN_INFO, info.to_dict())
    if knowledge is not None:
        save_class_vectors(directory / layout.KNOWLEDGE, knowledge)
