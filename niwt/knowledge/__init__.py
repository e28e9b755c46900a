"""Domain knowledge turned into per-class vectors (attributes or text descriptions)."""

from niwt.knowledge.vectors import (
    NORMALIZATIONS,
    SOURCES,
    TEXT_ENCODERS,
    attribute_vectors,
    knowledge_vectors,
    sentence_vectors,
    tfidf_vectors,
)

__all__ = [
    "NORMALIZATIONS",
    "SOURCES",
    "TEXT_ENCODERS",
    "attribute_vectors",
    "tfidf_vectors",
    "sentence_vectors",
    "knowledge_vectors",
]
