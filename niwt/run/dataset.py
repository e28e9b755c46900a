"""The dataset of a run and its class vectors, opened as the run's config asks."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import torch

from niwt.config import RunConfig, resolve_config
from niwt.data import ZSLData
from niwt.data.shapes import ShapesConfig, make_shapes
from niwt.data.source import FileImages, ImageSource
from niwt.errors import ConfigError
from niwt.knowledge import knowledge_vectors

__all__ = ['open_dataset', 'load_dataset', 'class_vectors', 'load_knowledge', 'data_key']

log = logging.getLogger(__name__)


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
