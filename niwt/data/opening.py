"""Opening a run's dataset from its resolved ``[data]`` config: the record and its images.

:func:`open_dataset` makes the shapes world in memory, or loads a file format through the
registry (its notes logged) with the images read lazily from disk, or, in feature mode, the
format's pre-extracted features as one-pixel images.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from niwt.data.record import ZSLData
from niwt.data.registry import KINDS, DataConfig, load_dataset
from niwt.data.source import FileImages, ImageSource
from niwt.data.withhold import withhold_classes
from niwt.errors import ConfigError

__all__ = ["open_dataset"]

log = logging.getLogger(__name__)


def open_dataset(data_config: DataConfig, *, feature_mode: bool) -> tuple[ZSLData, torch.Tensor | ImageSource]:
    """The dataset of a run and its images: the shapes world in memory, or files read lazily.

    Args:
        data_config: the run's resolved ``[data]`` config (``ShapesConfig`` or a files data config;
            ``niwt.config.resolve_config`` fills its seed); its ``withhold`` classes are left out.
        feature_mode: the model runs on pre-extracted features (``model.arch = "mlp"``): the images
            are the features ``[N, D, 1, 1]``, each vector a one-pixel image of D channels.

    Returns:
        ``(record, images)``: images ``[N, C, H, W]`` as a tensor (shapes world, features) or an
        :class:`~niwt.data.source.ImageSource` reading the files.

    Raises:
        ConfigError: for feature mode on a dataset without features (the shapes world included),
            or a dataset without images (features only), which NIWT cannot train a CNN on.
        DataError: from the loader, or for ``withhold`` naming a class that is not an unseen one.
    """
    data, images = _open(data_config, feature_mode)
    return withhold_classes(data, images, data_config.withhold)


def _open(cfg: DataConfig, feature_mode: bool) -> tuple[ZSLData, torch.Tensor | ImageSource]:
    kind = KINDS[cfg.kind]
    if not kind.from_files:
        if feature_mode:
            raise ConfigError("model.arch = \"mlp\" runs on pre-extracted features (data.kind = \"xlsa17\"); the "
                              "shapes world has images: use \"vgg\" or \"resnet\"")
        data = kind.make(cfg)
        return data, data.images_tensor(np.arange(len(data.labels)))
    loaded = load_dataset(cfg.root, format=cfg.kind, **cfg.loader_options())
    for note in loaded.notes:
        log.info("%s: %s", cfg.kind, note)
    if feature_mode:  # each feature vector is a one-pixel image of D channels
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
