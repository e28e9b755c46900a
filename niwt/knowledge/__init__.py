"""Domain knowledge turned into per-class vectors (attributes or text descriptions)."""

from niwt.knowledge import vectors
from niwt.knowledge.encoder import KnowledgeEncoder, fit_encoder
from niwt.knowledge.vectors import *  # noqa: F403 - the package's public names are the module's

__all__ = [*vectors.__all__, "KnowledgeEncoder", "fit_encoder"]
