r"""Textual explanations: the knowledge terms an importance vector points to, through the inverse map.

For an image i and a class c (default: the predicted one), the importance :math:`\alpha^c_i` goes
through the inverse map :math:`g` (:class:`~niwt.explain.inverse.InverseMapper`) to a knowledge
vector; a *vocabulary* turns that vector into one score per name, and the top ``k`` names are the
explanation. For a class, the same is done with the importance the forward map predicted from its
knowledge (what the network "was told" about the class).

A vocabulary is anything with ``names`` and ``scores(knowledge) -> [M, V]`` (:class:`Vocabulary`):

* :class:`DimensionNames`: one name per knowledge dimension (attributes, TF-IDF terms); the
  score of a name is the value of its dimension;
* :class:`EmbeddedVocabulary`: words with vectors in the knowledge space (such as sentence
  embeddings of the words); the score of a word is its cosine similarity with the knowledge vector.

A plain sequence of strings is read as :class:`DimensionNames`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from niwt.checks import as_image_batch, as_labels, as_matrix
from niwt.errors import ConfigError, DataError
from niwt.explain.gradcam import layer_importance, predicted_classes
from niwt.explain.inverse import InverseMapper

__all__ = ["Vocabulary", "DimensionNames", "EmbeddedVocabulary", "as_vocabulary", "Term", "ImageExplanation",
           "ClassExplanation", "top_terms", "explain_importances", "explain_images", "explain_classes"]

log = logging.getLogger(__name__)


@runtime_checkable
class Vocabulary(Protocol):
    """Names for knowledge vectors: ``names`` (V strings) and ``scores(knowledge [M, d]) -> [M, V]``."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def scores(self, knowledge: np.ndarray) -> np.ndarray: ...


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise DataError("`names` must be a sequence of strings")
    names = tuple(names)
    if not names:
        raise DataError("`names` is empty: give at least one name")
    return names


@dataclass(frozen=True)
class DimensionNames:
    """One name per knowledge dimension; ``scores`` is the knowledge itself.

    Attributes:
        names: the d names, in the order of the knowledge dimensions.
    """

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", _check_names(self.names))

    def scores(self, knowledge: np.ndarray) -> np.ndarray:
        return as_matrix("knowledge", knowledge, cols=len(self.names))


@dataclass(frozen=True, eq=False)
class EmbeddedVocabulary:
    r"""Words with vectors in the knowledge space; ``scores`` is the cosine similarity.

    :math:`s_{mv} = \cos(k_m, e_v)` for knowledge vector :math:`k_m` and word vector :math:`e_v`.

    Attributes:
        names: the V words.
        vectors: ``[V, d]`` their vectors, in the same space as the knowledge (e.g. the sentence
            embedding of each word with the encoder that made the class vectors).
    """

    names: tuple[str, ...]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        names = _check_names(self.names)
        vectors = as_matrix("vectors", self.vectors, rows=len(names))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "vectors", vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))

    def scores(self, knowledge: np.ndarray) -> np.ndarray:
        k = as_matrix("knowledge", knowledge, cols=self.vectors.shape[1])
        k = k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-12)
        return k @ self.vectors.T


def as_vocabulary(vocabulary: Vocabulary | Sequence[str], dim: int | None = None) -> Vocabulary:
    """``vocabulary`` as a :class:`Vocabulary`; a sequence of strings names the ``dim`` knowledge dimensions.

    Raises:
        ConfigError: for another type.
        DataError: for a number of names other than ``dim``.
    """
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    if isinstance(vocabulary, Sequence) and not isinstance(vocabulary, str):
        vocab = DimensionNames(tuple(vocabulary))
        if dim is not None and len(vocab.names) != dim:
            raise DataError(f"`vocabulary` must name the {dim} knowledge dimensions, got {len(vocab.names)} names")
        return vocab
    raise ConfigError("`vocabulary` must be a sequence of names or an object with `names` and `scores(knowledge)`, "
                      f"got {type(vocabulary).__name__}")


@dataclass(frozen=True)
class Term:
    """One name of an explanation: its position in the vocabulary and its score."""

    name: str
    score: float
    index: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "score": self.score, "index": self.index}


@dataclass(frozen=True)
class ImageExplanation:
    """Why the network says ``target`` for image ``image``, in words.

    Attributes:
        image: row of the image in the batch explained.
        target: logit row explained; target_name: its class name (or ``None``).
        predicted: the image's arg-max logit row (``None`` when not computed).
        terms: the top names, best first.
    """

    image: int
    target: int
    target_name: str | None
    predicted: int | None
    terms: tuple[Term, ...]

    @property
    def text(self) -> str:
        """``"name, name, name"``."""
        return ", ".join(t.name for t in self.terms)

    def to_dict(self) -> dict[str, object]:
        return {"image": self.image, "target": self.target, "target_name": self.target_name,
                "predicted": self.predicted, "terms": [t.to_dict() for t in self.terms]}


@dataclass(frozen=True)
class ClassExplanation:
    """What the network was told about class ``class_index``: the top names of its predicted importance."""

    class_index: int
    class_name: str | None
    terms: tuple[Term, ...]

    @property
    def text(self) -> str:
        return ", ".join(t.name for t in self.terms)

    def to_dict(self) -> dict[str, object]:
        return {"class_index": self.class_index, "class_name": self.class_name,
                "terms": [t.to_dict() for t in self.terms]}


def _check_k(k: int, n_names: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"`k` must be an integer >= 1, got {k!r}")
    return min(int(k), n_names)


def top_terms(scores: np.ndarray, names: Sequence[str], k: int) -> list[tuple[Term, ...]]:
    """The ``k`` best names of every row of ``scores`` ``[M, V]``, best first (ties: lower index first)."""
    k = _check_k(k, len(names))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [tuple(Term(names[j], float(row[j]), int(j)) for j in idx) for row, idx in zip(scores, order)]


def explain_importances(importances: object, inverse: InverseMapper, vocabulary: Vocabulary | Sequence[str],
                        k: int = 5) -> list[tuple[Term, ...]]:
    """Top-``k`` terms of each importance vector ``[M, K]``: ``vocabulary.scores(inverse.predict(alpha))``."""
    knowledge = inverse.predict(importances)
    vocab = as_vocabulary(vocabulary, knowledge.shape[1])
    return top_terms(vocab.scores(knowledge), vocab.names, k)


def _name(class_names: Sequence[str] | None, row: int) -> str | None:
    if class_names is None:
        return None
    if not 0 <= row < len(class_names):
        raise DataError(f"`class_names` has {len(class_names)} names but class row {row} is explained")
    return class_names[row]


def explain_images(
    model: nn.Module,
    layer: nn.Module | str,
    images: object,
    inverse: InverseMapper,
    vocabulary: Vocabulary | Sequence[str],
    *,
    targets: object | None = None,
    k: int = 5,
    class_names: Sequence[str] | None = None,
    batch_size: int | None = None,
) -> tuple[ImageExplanation, ...]:
    """Explain in words why ``model`` says ``targets`` (default: its predictions) for ``images``.

    Args:
        model: a classifier returning logits.
        layer: the importance layer the inverse map was fitted at.
        images: ``[N, C, H, W]`` float images.
        inverse: a fitted inverse map.
        vocabulary: names of the knowledge dimensions, or a :class:`Vocabulary`.
        targets: ``[N]`` logit rows to explain; ``None``: each image's predicted class.
        k: number of terms per image.
        class_names: names of the logit rows, for the records.
        batch_size: stream the images in batches of this size.

    Returns:
        One :class:`ImageExplanation` per image.
    """
    weights, _acts, y = layer_importance(model, layer, images, targets, batch_size=batch_size)
    predicted = y if targets is None else predicted_classes(model, _as_batch(images, model), batch_size)
    terms = explain_importances(weights.cpu().numpy(), inverse, vocabulary, k)
    return tuple(ImageExplanation(i, int(t), _name(class_names, int(t)), int(p), ts)
                 for i, (t, p, ts) in enumerate(zip(y.tolist(), predicted.tolist(), terms)))


def _as_batch(images: object, model: nn.Module) -> torch.Tensor:
    ref = next(model.parameters(), None)
    return as_image_batch("images", images, channels=None, dtype=None if ref is None else ref.dtype,
                          device=None if ref is None else ref.device)


def explain_classes(
    importances: object,
    inverse: InverseMapper,
    vocabulary: Vocabulary | Sequence[str],
    *,
    classes: object | None = None,
    class_names: Sequence[str] | None = None,
    k: int = 5,
) -> tuple[ClassExplanation, ...]:
    """Explain the importance each class was given (e.g. the forward map's prediction from its knowledge).

    Args:
        importances: ``[M, K]`` one importance vector per class (``ImportanceMapper.predict(knowledge)``).
        inverse: a fitted inverse map.
        vocabulary: names of the knowledge dimensions, or a :class:`Vocabulary`.
        classes: ``[M]`` class index of each row (default ``0..M-1``), used to look up ``class_names``.
        class_names: names indexed by ``classes``.
        k: number of terms per class.
    """
    alpha = as_matrix("importances", importances)
    rows = np.arange(alpha.shape[0]) if classes is None else as_labels("classes", classes, length=alpha.shape[0])
    terms = explain_importances(alpha, inverse, vocabulary, k)
    return tuple(ClassExplanation(int(c), _name(class_names, int(c)), ts) for c, ts in zip(rows, terms))
