"""A run's knowledge encoder: what turns one class's knowledge into its vector, as fitted on the run's classes.

:func:`fit_encoder` builds the class vectors of a dataset exactly as
:func:`~niwt.knowledge.knowledge_vectors` does and keeps what a class that was never in the dataset
needs to get its vector the same way: the attribute names; for TF-IDF the vocabulary and the idf
as fitted (never refitted, so no existing class's vector moves); for ``zscore`` the per-dimension
mean and standard deviation over the fitted classes; the sentence model's name.
:meth:`KnowledgeEncoder.encode` applies them to a description or to attribute values, and gives a
fitted class its own vector back. It round-trips through JSON (:meth:`~KnowledgeEncoder.to_dict`).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from niwt.checks import as_matrix
from niwt.data.record import ZSLData
from niwt.errors import DataError
from niwt.knowledge.vectors import (
    DEFAULT_SENTENCE_MODEL,
    NORMALIZATIONS,
    SOURCES,
    TEXT_ENCODERS,
    _apply_zscore,
    _check_choice,
    _normalize,
    _terms,
    _tfidf_fit,
    _zscore_stats,
    sentence_vectors,
)
from niwt.messages import close_names, first_names

__all__ = ["KnowledgeEncoder", "fit_encoder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnowledgeEncoder:
    """What a run's class vectors were made with (see the module docstring).

    Attributes:
        source: ``"attributes"`` or ``"text"``.
        normalize: ``"none"``, ``"l2"`` or ``"zscore"``, as the run's config.
        text_encoder: ``"tfidf"`` or ``"sentence-transformers"`` (for text).
        names: the d dimensions: attribute names, TF-IDF terms, or ``embedding:i``.
        idf: TF-IDF: the idf of each term, as fitted.
        ngram: TF-IDF: the longest n-gram.
        scale: zscore: what each column was divided by before its statistics (1 but for huge values).
        mean, std: zscore: each dimension's mean and standard deviation over the fitted classes.
        constant: zscore: the dimensions that were constant over them (they become 0).
        sentence_model: the sentence model's name (for ``sentence-transformers``).
        low, high: attributes: the smallest and largest value of each attribute over the fitted
            classes (a new class's values must lie between them; empty for runs written before).
    """

    source: str
    normalize: str
    text_encoder: str
    names: tuple[str, ...]
    idf: tuple[float, ...] = ()
    ngram: int = 1
    scale: tuple[float, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    constant: tuple[bool, ...] = ()
    sentence_model: str = ""
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("source", self.source, SOURCES)
        _check_choice("normalize", self.normalize, NORMALIZATIONS)
        _check_choice("text_encoder", self.text_encoder, TEXT_ENCODERS)
        d = len(self.names)
        sized = {"idf": self.idf} if self.uses_tfidf else {}
        if self.normalize == "zscore":
            sized.update(scale=self.scale, mean=self.mean, std=self.std, constant=self.constant)
        if self.low or self.high:
            sized.update(low=self.low, high=self.high)
        wrong = {k: len(v) for k, v in sized.items() if len(v) != d}
        if wrong:
            raise DataError(f"knowledge encoder: {wrong} must each have one value per dimension ({d})")

    @property
    def uses_tfidf(self) -> bool:
        return self.source == "text" and self.text_encoder == "tfidf"

    def encode(self, *, description: str | Sequence[str] | None = None,
               attributes: Mapping[str, float] | None = None) -> np.ndarray:
        """The ``[d]`` vector of one class, from its description(s) (text) or attribute values.

        Args:
            description: for a text run: one description, or several (one class document, as a
                dataset's several descriptions of a class).
            attributes: for an attribute run: ``{name: value}``; attributes not named are 0.

        Raises:
            DataError: knowledge of the other kind; an empty description, or one with no word the
                TF-IDF vocabulary knows (the unknown words are named); an attribute the run does not
                have (the closest names listed), or a value that is not a finite number.
        """
        if self.source == "attributes":
            if attributes is None or description is not None:
                raise DataError("this run's classes were described by attributes: give `attributes` "
                                f"({{name: value}} over {first_names(self.names, 5, show=repr)}), not a description")
            raw = self._attribute_row(attributes)
            if not np.any(raw):
                raise DataError("every attribute of the class is 0, which tells the network nothing about it; give "
                                f"the values of the attributes it has (its {len(self.names)} attributes: "
                                f"{first_names(self.names, 6, show=str)})")
        else:
            if description is None or attributes is not None:
                raise DataError("this run's classes were described by text: give `description`, not attributes")
            texts = [description] if isinstance(description, str) else list(description)
            if not texts or not all(isinstance(t, str) for t in texts) or not any(t.strip() for t in texts):
                raise DataError("`description` is empty: describe the class in words")
            raw = self._tfidf_row(texts) if self.uses_tfidf else sentence_vectors([texts], self.sentence_model)[0]
        return self._normalized(raw)

    def _attribute_row(self, attributes: Mapping[str, float]) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.names)}
        row = np.zeros(len(self.names))
        for name, value in attributes.items():
            if name not in index:
                close = close_names(name, self.names)
                raise DataError(f"unknown attribute {name!r}" + (f"; close names: {', '.join(close)}" if close else "")
                                + f"; this run's {len(self.names)} attributes: {first_names(self.names, 8, show=str)}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise DataError(f"attribute {name!r}: {value!r} is not a number") from None
            if not np.isfinite(number):
                raise DataError(f"attribute {name!r}: {value!r} is not a finite number")
            j = index[name]
            if self.low and number != 0:  # 0 is what an unnamed attribute gets
                self._check_range(name, number, self.low[j], self.high[j])
            row[j] = number
        return row

    def _check_range(self, name: str, number: float, low: float, high: float) -> None:
        """Refuse a value the map can make nothing of: a negative one when every attribute value
        of the run's classes is >= 0, or one more than ten times the largest of them (another unit,
        a typing slip: ``1e300``); use one outside the attribute's own range over the run's classes,
        with a warning (the map has seen no class with such a value)."""
        smallest, largest = min(self.low), max(self.high)
        scale = max(abs(smallest), abs(largest), 1e-12)
        if number < 0 <= smallest:
            raise DataError(f"attribute {name!r}: {number:g} is negative, but every attribute value of the run's "
                            f"classes is >= 0 (they lie in {smallest:g} to {largest:g}); give a value in that range")
        if abs(number) > 10 * scale:
            raise DataError(f"attribute {name!r}: {number:g} is far outside the values of the run's classes "
                            f"({smallest:g} to {largest:g}); give a value in that range")
        slack = 1e-6 * max(high - low, abs(high), abs(low), 1e-12)  # a bound as printed, to 6 digits, is in it
        if not low - slack <= number <= high + slack:
            log.warning("attribute %r: %g is outside the range the run's classes have (%g to %g): the map has seen "
                        "no class with such a value", name, number, low, high)

    def _tfidf_row(self, texts: list[str]) -> np.ndarray:
        column = {t: j for j, t in enumerate(self.names)}
        counts = Counter(term for text in texts for term in _terms(text, self.ngram))
        known = {t: k for t, k in counts.items() if t in column}
        if not known:
            words = sorted({t for t in counts if " " not in t})
            raise DataError(f"no word of the description is in this run's TF-IDF vocabulary of {len(self.names)} "
                            f"terms (unknown: {first_names(words, 8, show=repr)}); describe the class with words "
                            "its classes' descriptions use")
        unknown = sorted({t for t in counts if t not in column and " " not in t})
        if unknown:
            log.warning("%d word(s) of the description are not in this run's TF-IDF vocabulary and tell it nothing: %s",
                        len(unknown), first_names(unknown, 8, show=repr))
        row = np.zeros(len(self.names))
        for term, k in known.items():
            row[column[term]] = k
        return _normalize((row * np.asarray(self.idf))[None, :], "l2")[0][0]

    def _normalized(self, raw: np.ndarray) -> np.ndarray:
        if self.normalize == "zscore":  # the fitted classes' statistics, never this one class's
            return _apply_zscore(raw, *(np.asarray(v) for v in (self.scale, self.mean, self.std, self.constant)))
        return _normalize(raw[None, :].copy(), self.normalize)[0][0]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KnowledgeEncoder:
        try:
            return cls(str(d["source"]), str(d["normalize"]), str(d["text_encoder"]), tuple(map(str, d["names"])),
                       tuple(map(float, d.get("idf", ()))), int(d.get("ngram", 1)),
                       tuple(map(float, d.get("scale", ()))), tuple(map(float, d.get("mean", ()))),
                       tuple(map(float, d.get("std", ()))), tuple(map(bool, d.get("constant", ()))),
                       str(d.get("sentence_model", "")), tuple(map(float, d.get("low", ()))),
                       tuple(map(float, d.get("high", ()))))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"knowledge encoder record is malformed ({type(err).__name__}: {err})") from None

    def save(self, path: str | Path) -> Path:
        """Write the encoder as JSON (through a temporary name: never half a file); returns the path."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeEncoder:
        """Read an encoder :meth:`save` wrote.

        Raises:
            DataError: a file that is not JSON or not an encoder record (named).
        """
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise DataError(f"cannot read the knowledge encoder {path}: {err}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: knowledge encoder record is malformed (not a JSON object)")
        try:
            return cls.from_dict(record)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None


def fit_encoder(data: ZSLData, source: str = "attributes", normalize: str = "l2",
                text_encoder: str = "tfidf") -> KnowledgeEncoder:
    """The encoder of ``data``'s class vectors as :func:`~niwt.knowledge.knowledge_vectors` builds them.

    Raises:
        niwt.errors.ConfigError: an invalid ``source``, ``normalize`` or ``text_encoder``.
        DataError: ``source="text"`` on a dataset without descriptions.
    """
    _check_choice("source", source, SOURCES)
    _check_choice("normalize", normalize, NORMALIZATIONS)
    _check_choice("text_encoder", text_encoder, TEXT_ENCODERS)
    idf: tuple[float, ...] = ()
    model = ""
    bounds: dict[str, tuple[float, ...]] = {}
    if source == "attributes":
        raw = as_matrix("knowledge", data.knowledge, row_names=data.class_names)
        names = tuple(data.knowledge_names)
        bounds = {"low": tuple(float(v) for v in raw.min(0)), "high": tuple(float(v) for v in raw.max(0))}
    elif not data.descriptions or not any(len(texts) for texts in data.descriptions):
        raise DataError(f"source='text' needs class descriptions, but dataset {data.name!r} holds none")
    elif text_encoder == "tfidf":
        raw, names, idf_values = _tfidf_fit(data.descriptions)
        idf = tuple(float(v) for v in idf_values)
    else:
        raw = sentence_vectors(data.descriptions)
        names = tuple(f"embedding:{i}" for i in range(raw.shape[1]))
        model = DEFAULT_SENTENCE_MODEL
    if normalize == "zscore":
        scale, mean, std, constant = _zscore_stats(np.asarray(raw, dtype=np.float64))
        stats = {"scale": tuple(scale.tolist()), "mean": tuple(mean.tolist()), "std": tuple(std.tolist()),
                 "constant": tuple(bool(c) for c in constant)}
    else:
        stats = {}
    return KnowledgeEncoder(source, normalize, text_encoder, names, idf=idf, sentence_model=model, **stats, **bounds)
