"""The class vectors of a run's dataset, as its config's ``[knowledge]`` asks."""

from __future__ import annotations

import numpy as np

from niwt.config import RunConfig
from niwt.data import ZSLData
from niwt.knowledge import KnowledgeEncoder, fit_encoder, knowledge_vectors

__all__ = ["class_vectors", "load_knowledge", "class_encoder"]


def class_vectors(config: RunConfig, data: ZSLData) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class vectors ``[C, d]`` of ``data`` as ``config.knowledge`` asks, and the names of their d
    dimensions (computed once: text embeddings are not cheap)."""
    k = config.knowledge
    return knowledge_vectors(data, k.source, k.normalize, k.text_encoder)


def load_knowledge(config: RunConfig, data: ZSLData) -> np.ndarray:
    """Class vectors ``[C, d]`` of ``data`` as ``config.knowledge`` asks."""
    return class_vectors(config, data)[0]


def class_encoder(config: RunConfig, data: ZSLData) -> KnowledgeEncoder:
    """What ``data``'s class vectors are made with, as ``config.knowledge`` asks (kept in a run)."""
    k = config.knowledge
    return fit_encoder(data, k.source, k.normalize, k.text_encoder)
