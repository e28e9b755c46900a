"""What a run starts from: its config resolved, its dataset opened once, the config fitted to that
dataset, and the class vectors its ``[knowledge]`` asks for.

:func:`open_run` is the one place a run's config is resolved (:func:`niwt.config.resolve_config`)
and fitted to its data (:func:`fit_to_data`); every command that trains starts there, and what
comes after reads the config it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from niwt.config import RunConfig, resolve_config
from niwt.data import ZSLData, open_dataset
from niwt.data.source import ImageSource
from niwt.knowledge import KnowledgeEncoder, fit_encoder, knowledge_vectors

__all__ = ["RunInputs", "open_run", "fit_to_data", "class_vectors", "class_encoder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class RunInputs:
    """A run's dataset, opened once, and its config resolved and fitted to it (:func:`open_run`).

    Attributes:
        config: the resolved config, fitted to ``data``: what every stage of the run reads.
        data: the dataset record.
        images: its images ``[N, 3, H, W]``, in memory or read batch by batch (``ImageSource``).
    """

    config: RunConfig
    data: ZSLData
    images: torch.Tensor | ImageSource


def open_run(config: RunConfig, data: ZSLData | None = None,
             images: torch.Tensor | ImageSource | None = None) -> RunInputs:
    """Resolve ``config``, open the dataset its ``[data]`` asks for (or take ``data``, with its
    images made in memory unless given), and fit the config to the dataset.

    Raises:
        ConfigError: a config its architecture cannot use, or a dataset without images (features
            only) for a model that needs them.
        DataError: a dataset that cannot be read (the loader names the file and field).
    """
    config = resolve_config(config)
    if data is None:
        data, images = open_dataset(config.data, feature_mode=config.model.arch == "mlp")
    elif images is None:
        images = data.images_tensor(np.arange(len(data.labels)))
    return RunInputs(fit_to_data(config, data), data, images)


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


def class_vectors(config: RunConfig, data: ZSLData) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class vectors ``[C, d]`` of ``data`` as ``config.knowledge`` asks, and the names of their d
    dimensions (computed once per context: text embeddings are not cheap)."""
    k = config.knowledge
    return knowledge_vectors(data, k.source, k.normalize, k.text_encoder)


def class_encoder(config: RunConfig, data: ZSLData) -> KnowledgeEncoder:
    """What ``data``'s class vectors are made with, as ``config.knowledge`` asks (kept in a run)."""
    k = config.knowledge
    return fit_encoder(data, k.source, k.normalize, k.text_encoder)
