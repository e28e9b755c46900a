"""Reading a finished run back: the extended model, its classes, knowledge and maps.

Everything comes from the run directory itself (weights as safetensors, records as JSON); the
dataset, when a command needs its images, is opened from the run's config and checked against the
fingerprint the run recorded, so a changed dataset is never silently mistaken for the run's own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from safetensors.torch import load_file

from niwt.config import RunConfig, load_config, model_options, resolve_config
from niwt.data import data_key, open_dataset
from niwt.data.files.images import ImageTransform, open_rgb
from niwt.errors import DataError, NIWTError, RunDirectoryError
from niwt.explain.inverse import InverseMapper
from niwt.knowledge import KnowledgeEncoder
from niwt.mapping import ImportanceMapper, build_map
from niwt.models import Backbone, load_model
from niwt.results import RunMetrics
from niwt.rundir import FORMAT_VERSION, RunInfo, read_manifest, verify_run

__all__ = ["RunFormatError", "LoadedRun", "Prediction", "load_run"]

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
                                 "(model/knowledge_encoder.json), so a new class's knowledge cannot be encoded as "
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

        Grey and RGBA images are converted to RGB, with a note in the log.

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
            out.append(build(open_rgb(path)))
        return torch.stack(out)

    @property
    def calibration(self) -> float:
        """The calibrated-stacking constant NIWT chose on validation classes (0 when the run's
        config does not calibrate): subtracted from the seen classes' scores before a prediction."""
        if not self.config.eval.calibrate:
            return 0.0
        selection = self.metrics.result.niwt_selection()
        return 0.0 if selection is None else float(selection.calibration)

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
        with torch.no_grad():
            logits = self.model.eval()(batch).double()
        logits[:, : len(self.fit_classes)] -= self.calibration
        probs = logits.softmax(1)
        k = min(top_k, probs.shape[1])
        values, rows = probs.topk(k, dim=1)
        names = self.row_names
        return tuple(Prediction(src, tuple(names[r] for r in row.tolist()), tuple(float(v) for v in value.tolist()))
                     for src, row, value in zip(sources, rows, values))

    def dataset(self):  # -> tuple[ZSLData, torch.Tensor | ImageSource]
        """The run's dataset and images, opened from its config and checked against its fingerprint."""
        data, images = open_dataset(resolve_config(self.config).data, feature_mode=self.config.model.arch == "mlp")
        if data_key(data) != self.info.data_key:
            raise DataError(f"the dataset opened from {self.path / 'config.toml'} is not the one this run was made "
                            "from (its fingerprint differs); point data.root at the run's dataset")
        return data, images


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFormatError(f"cannot read {path}: {err}") from err


def load_run(path: str | Path) -> LoadedRun:
    """Read a run directory written by niwt (only safetensors and JSON are read; nothing is unpickled).

    Raises:
        RunFormatError: ``path`` is not a complete niwt run, was written by another format version, has
            a file that is missing, truncated or altered since it was written (named), or lacks the
            trained model (a run of ``sweep-lambda`` or ``reproduce``, or ``compare`` without NIWT).
    """
    path = Path(path)
    if not path.is_dir():
        raise RunFormatError(f"run directory {str(path)!r} does not exist")
    manifest = read_manifest(path)
    if manifest is None:
        raise RunFormatError(f"{str(path)!r} is not a complete niwt run (no niwt manifest.json)")
    if manifest.format_version != FORMAT_VERSION:
        raise RunFormatError(f"{str(path)!r} was written in run format {manifest.format_version} (niwt "
                             f"{manifest.niwt_version or '?'}); this niwt reads format {FORMAT_VERSION}: rerun it")
    try:
        verify_run(path)  # every file against the checksum the manifest holds
    except RunDirectoryError as err:
        raise RunFormatError(str(err)) from None
    weights, info_path = path / "model" / "niwt.safetensors", path / "model" / "run.json"
    if not weights.exists() or not info_path.exists():
        raise RunFormatError(f"{str(path)!r} holds no trained NIWT model (model/niwt.safetensors and "
                             f"model/run.json); it was written by `niwt {manifest.command}`. Use a run of "
                             "`niwt run`, `niwt demo` or `niwt compare` with NIWT among its methods")
    config = load_config(path / "config.toml")
    try:
        info = RunInfo.from_dict(_read_json(info_path), source=str(info_path))
        metrics = RunMetrics.from_dict(_read_json(path / "metrics.json"))
    except (NIWTError, KeyError, TypeError, ValueError) as err:
        raise RunFormatError(f"{str(path)!r}: {err}") from err
    model = _load_model(config, info, weights)
    mapper = _load_mapper(config, path / "mapping" / "mapper.safetensors")
    inverse_path = path / "mapping" / "inverse.safetensors"
    inverse = InverseMapper.load(inverse_path) if inverse_path.exists() else None
    knowledge = _knowledge(config, info, path)
    encoder_path = path / "model" / "knowledge_encoder.json"
    try:
        encoder = KnowledgeEncoder.from_dict(_read_json(encoder_path)) if encoder_path.exists() else None
    except NIWTError as err:
        raise RunFormatError(f"{encoder_path}: {err}") from err
    return LoadedRun(path, config, metrics, model, info.class_names, np.asarray(info.fit_classes, np.int64),
                     np.asarray(info.new_classes, np.int64), knowledge, info.knowledge_names, mapper, inverse, info,
                     encoder)


def _load_model(config: RunConfig, info: RunInfo, weights: Path) -> Backbone:
    try:
        model = load_model(config.model.arch, info.n_seen, weights, **model_options(config, info.in_features))
    except (RuntimeError, OSError, KeyError) as err:
        raise RunFormatError(f"{weights} does not fit a {config.model.arch!r} model: {err}") from err
    if config.importance.layer:
        model.set_importance_layer(config.importance.layer)
    return model


def _load_mapper(config: RunConfig, path: Path) -> ImportanceMapper:
    m = config.mapping
    state = load_file(str(path))
    weight_key = "weight" if "weight" in state else "2.weight"
    first_key = "weight" if "weight" in state else "0.weight"
    mapper = ImportanceMapper(model=m.model, hidden=m.hidden)
    net = build_map(m.model, state[first_key].shape[1], state[weight_key].shape[0], m.hidden)
    net.load_state_dict(state)
    mapper.net_ = net.eval()
    mapper.n_features_in_ = int(state[first_key].shape[1])
    return mapper


def _knowledge(config: RunConfig, info: RunInfo, path: Path) -> np.ndarray:
    file = path / "model" / "knowledge.safetensors"
    if file.exists():
        return load_file(str(file))["knowledge"].double().numpy()
    raise RunFormatError(f"{path} lacks model/knowledge.safetensors (the class vectors the run used)")
