"""The dataset of a run, opened as its config asks, and the settings that must fit it."""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from niwt.config import RunConfig, resolve_config
from niwt.data import ZSLData
from niwt.data import open_dataset as open_data
from niwt.data.source import ImageSource

__all__ = ["open_dataset", "load_dataset", "fit_to_data"]

log = logging.getLogger(__name__)


def open_dataset(config: RunConfig) -> tuple[ZSLData, torch.Tensor | ImageSource]:
    """The dataset of a run and its images (:func:`niwt.data.open_dataset` of its resolved
    ``[data]``, in feature mode for ``model.arch = "mlp"``).

    Raises:
        ConfigError: for a dataset without images (features only), which NIWT cannot train a CNN on.
    """
    return open_data(resolve_config(config).data, feature_mode=config.model.arch == "mlp")


def load_dataset(config: RunConfig) -> ZSLData:
    """The dataset record of a run (:func:`open_dataset` without the images)."""
    return open_dataset(config)[0]


def fit_to_data(config: RunConfig, data: ZSLData) -> RunConfig:
    """``config`` with the settings that cannot work with ``data`` replaced by ones that fit, each
    said in the log, before any training: ``transfer.pool = "source"`` on a dataset without
    source images (a folder dataset, AwA2, CUB) becomes ``"seen"``, the seen classes' training
    images (the config written beside the run's outputs says so)."""
    if config.transfer.pool == "source" and not len(data.source_idx):
        log.warning('transfer.pool = "source" needs source images and dataset %r has none: the transfer runs on '
                    'the seen classes\' training images (transfer.pool = "seen"); set it in the config to choose '
                    '"noise" instead', data.name)
        config = replace(config, transfer=replace(config.transfer, pool="seen"))
    return config
