"""Per-class vectors built from domain knowledge: attributes, TF-IDF of descriptions, sentence embeddings.

Every function returns one row per class, in the order of the classes it was given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np

from niwt.checks import as_matrix
from niwt.data.record import ZSLData
from niwt.errors import ConfigError, DataError

__all__ = [
    "NORMALIZATIONS",
    "SOURCES",
    "TEXT_ENCODERS",
    "attribute_vectors",
    "tfidf_vectors",
    "sentence_vectors",
    "knowledge_vectors",
]

logger = logging.getLogger(__name__)

NORMALIZATIONS: tuple[str, ...] = ("none", "l2", "zscore")
"""Valid values of the ``normalize`` argument."""

SOURCES: tuple[str, ...] = ("attributes", "text")
"""Valid values of the ``source`` argument of :func:`knowledge_vectors`."""

TEXT_ENCODERS: tuple[str, ...] = ("tfidf", "sentence-transformers")
"""Valid values of the ``text_encoder`` argument of :func:`knowledge_vectors`."""

_TOKEN = re.compile(r"[^\W\d_]+")  # runs of letters (any alphabet)
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _check_choice(argument: str, value: object, valid: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ConfigError(f"`{argument}` must be one of {list(valid)}, got {value!r}")
    return value


def attribute_vectors(knowledge: np.ndarray, normalize: str = "l2") -> np.ndarray:
    """Turn a class-by-attribute matrix into class vectors.

    Args:
        knowledge: ``[C, d]`` attribute values, one row per class.
        normalize: ``"none"`` (a float copy), ``"l2"`` (each row scaled to unit Euclidean norm; rows
            of zeros stay zero) or ``"zscore"`` (each column standardised over the classes with
            its population standard deviation; constant columns become 0).

    Returns:
        ``[C, d]`` float64 class vectors.

    Raises:
        ConfigError: if ``normalize`` is not a valid name.
        DataError: if ``knowledge`` is not 2-d or holds NaN or infinite values.
    """
    _check_choice("normalize", normalize, NORMALIZATIONS)
    mat = as_matrix("knowledge", knowledge)
    if normalize == "l2":
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        np.divide(mat, norms, out=mat, where=norms > 0)
    elif normalize == "zscore":
        mean = mat.mean(axis=0, keepdims=True)
        std = mat.std(axis=0, keepdims=True)
        scale = np.maximum(1.0, np.abs(mat).max(axis=0, keepdims=True, initial=0.0))
        constant = std <= 1e-12 * scale
        mat = np.where(constant, 0.0, (mat - mean) / np.where(constant, 1.0, std))
    return mat


def _check_descriptions(descriptions: Sequence[Sequence[str]]) -> list[list[str]]:
    if isinstance(descriptions, str) or not isinstance(descriptions, Sequence):
        raise DataError(
            f"`descriptions` must be a sequence (one entry per class) of sequences of strings, "
            f"got {type(descriptions).__name__}"
        )
    if len(descriptions) == 0:
        raise DataError("`descriptions` must describe at least one class, got an empty sequence")
    out = []
    for c, texts in enumerate(descriptions):
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise DataError(
                f"`descriptions[{c}]` must be a sequence of strings (the class's descriptions), "
                f"got {type(texts).__name__}"
            )
        for t in texts:
            if not isinstance(t, str):
                raise DataError(f"`descriptions[{c}]` must hold strings, got {type(t).__name__}")
        out.append(list(texts))
    return out


def _terms(text: str, ngram: int) -> list[str]:
    tokens = _TOKEN.findall(text.lower())
    terms = list(tokens)
    for n in range(2, ngram + 1):
        terms.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return terms


def tfidf_vectors(
    descriptions: Sequence[Sequence[str]], *, min_df: int = 1, ngram: int = 1
) -> tuple[np.ndarray, tuple[str, ...]]:
    """TF-IDF vectors of the classes' descriptions.

    Each class is one document made of all its descriptions. Text is lowercased and split into
    runs of letters; terms are the n-grams of 1 to ``ngram`` tokens, taken within each description
    (an n-gram never spans two descriptions). The weight of a term in a document is its raw count
    times the smooth inverse document frequency ``idf = log((1 + n) / (1 + df)) + 1``, with ``n``
    the number of documents and ``df`` the number of documents holding the term. Each row is then
    scaled to unit Euclidean norm (a class without terms gives a row of zeros).

    Args:
        descriptions: per class, a sequence of description strings.
        min_df: keep only terms found in at least this many class documents.
        ngram: the longest n-gram used as a term (1 = single words).

    Returns:
        ``(matrix, vocabulary)``: the ``[C, V]`` float64 TF-IDF matrix and the V terms, sorted,
        naming its columns.

    Raises:
        ConfigError: if ``min_df`` or ``ngram`` is not a positive int.
        DataError: if ``descriptions`` is malformed or no term survives ``min_df``.
    """
    for name, value in (("min_df", min_df), ("ngram", ngram)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"`{name}` must be a positive int, got {value!r}")
    docs = _check_descriptions(descriptions)
    counts = [Counter(term for text in texts for term in _terms(text, int(ngram))) for texts in docs]
    df: Counter[str] = Counter()
    for counter in counts:
        df.update(counter.keys())
    vocabulary = tuple(sorted(term for term, k in df.items() if k >= min_df))
    if not vocabulary:
        raise DataError(
            f"no term occurs in at least min_df={min_df} of the {len(docs)} class documents "
            f"(vocabulary before filtering: {len(df)} terms)"
        )
    column = {term: j for j, term in enumerate(vocabulary)}
    n_docs = len(docs)
    tf = np.zeros((n_docs, len(vocabulary)), dtype=np.float64)
    for c, counter in enumerate(counts):
        for term, k in counter.items():
            j = column.get(term)
            if j is not None:
                tf[c, j] = k
    doc_freq = np.array([df[term] for term in vocabulary], dtype=np.float64)
    idf = np.log((1.0 + n_docs) / (1.0 + doc_freq)) + 1.0
    return attribute_vectors(tf * idf, "l2"), vocabulary


@contextlib.contextmanager
def _offline_env() -> Iterator[None]:
    """Set the Hugging Face offline variables for the duration of the block only."""
    saved = {key: os.environ.get(key) for key in _OFFLINE_ENV}
    os.environ.update(_OFFLINE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sentence_vectors(
    descriptions: Sequence[Sequence[str]], model_name: str = "all-MiniLM-L6-v2"
) -> np.ndarray:
    """Mean sentence embedding of each class's descriptions, L2-normalised.

    The model is loaded from local files only: nothing is downloaded. Install the extra with
    ``pip install 'niwt[text]'`` and place the model in the local Hugging Face cache (or pass a
    local directory as ``model_name``).

    Args:
        descriptions: per class, a non-empty sequence of description strings.
        model_name: a sentence-transformers model name or local path.

    Returns:
        ``[C, d]`` float64 class vectors of unit norm.

    Raises:
        ConfigError: if sentence-transformers is not installed or the model is not available
            locally.
        DataError: if ``descriptions`` is malformed or a class has no description.
    """
    docs = _check_descriptions(descriptions)
    for c, texts in enumerate(docs):
        if not texts:
            raise DataError(f"`descriptions[{c}]` is empty: every class needs at least one description")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(
            "sentence embeddings need the sentence-transformers package: "
            "install the extra with `pip install 'niwt[text]'`"
        ) from exc
    try:
        with _offline_env():
            try:
                model = SentenceTransformer(model_name, local_files_only=True)
            except TypeError:  # releases without the `local_files_only` argument
                model = SentenceTransformer(model_name)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ConfigError(
            f"sentence-transformers model {model_name!r} is not available locally ({exc}); "
            "download it once into the Hugging Face cache or pass a local directory as `model_name`"
        ) from exc
    sentences = [t for texts in docs for t in texts]
    emb = np.asarray(model.encode(sentences, convert_to_numpy=True, show_progress_bar=False), dtype=np.float64)
    bounds = np.cumsum([0] + [len(texts) for texts in docs])
    means = np.stack([emb[bounds[c]:bounds[c + 1]].mean(axis=0) for c in range(len(docs))])
    logger.debug("encoded %d descriptions of %d classes with %s", len(sentences), len(docs), model_name)
    return attribute_vectors(means, "l2")


def knowledge_vectors(
    data: ZSLData,
    source: str = "attributes",
    normalize: str = "l2",
    text_encoder: str = "tfidf",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class vectors of a dataset from its attributes or its descriptions.

    Args:
        data: the dataset.
        source: ``"attributes"`` (``data.knowledge``) or ``"text"`` (``data.descriptions``).
        normalize: ``"none"``, ``"l2"`` or ``"zscore"``, applied to the vectors of either source
            (see :func:`attribute_vectors`).
        text_encoder: ``"tfidf"`` or ``"sentence-transformers"``; used when ``source="text"``.

    Returns:
        ``(vectors, names)``: ``[C, d]`` float64 class vectors and the names of the d dimensions
        (attribute names, TF-IDF terms, or ``"embedding:i"`` for sentence embeddings).

    Raises:
        ConfigError: if ``source``, ``normalize`` or ``text_encoder`` is not a valid name.
        DataError: if ``source="text"`` and the dataset holds no descriptions.
    """
    _check_choice("source", source, SOURCES)
    _check_choice("normalize", normalize, NORMALIZATIONS)
    _check_choice("text_encoder", text_encoder, TEXT_ENCODERS)
    if source == "attributes":
        return attribute_vectors(data.knowledge, normalize), tuple(data.knowledge_names)
    if not data.descriptions or not any(len(texts) for texts in data.descriptions):
        raise DataError(
            f"source='text' needs class descriptions, but dataset {data.name!r} holds none; "
            "use source='attributes'"
        )
    if text_encoder == "tfidf":
        vectors, names = tfidf_vectors(data.descriptions)
    else:
        vectors = sentence_vectors(data.descriptions)
        names = tuple(f"embedding:{i}" for i in range(vectors.shape[1]))
    return attribute_vectors(vectors, normalize), names
