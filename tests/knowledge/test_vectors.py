"""Tests of niwt.knowledge: attribute normalisation, TF-IDF, sentence embeddings, dispatch."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from niwt.data.record import ZSLData
from niwt.errors import ConfigError, DataError
from niwt.knowledge import (
    attribute_vectors,
    knowledge_vectors,
    sentence_vectors,
    tfidf_vectors,
)

# Three class "documents":
#   class 0: "Red disc"                -> red:1, disc:1
#   class 1: "red square", "RED!"      -> red:2, square:1   (lowercased, punctuation dropped)
#   class 2: "blue disc"               -> blue:1, disc:1
TOY = [["Red disc"], ["red square", "RED!"], ["blue disc"]]


def test_tfidf_hand_worked() -> None:
    matrix, vocab = tfidf_vectors(TOY)
    assert vocab == ("blue", "disc", "red", "square")
    # n = 3 documents; df(red) = df(disc) = 2, df(blue) = df(square) = 1.
    # idf(df=2) = ln((1+3)/(1+2)) + 1 = ln(4/3) + 1 = 1.2876821
    # idf(df=1) = ln((1+3)/(1+1)) + 1 = ln(2)   + 1 = 1.6931472
    idf2 = math.log(4 / 3) + 1
    idf1 = math.log(2) + 1
    assert idf2 == pytest.approx(1.2876821)
    assert idf1 == pytest.approx(1.6931472)
    # class 0: disc = red = idf2 -> after L2 both 1/sqrt(2) = 0.7071068
    # class 1: red = 2 * idf2 = 2.5753641, square = idf1 = 1.6931472,
    #          norm = sqrt(2.5753641^2 + 1.6931472^2) = 3.0820850 -> red 0.8355915, square 0.5493512
    # class 2: blue = idf1 = 1.6931472, disc = idf2 = 1.2876821,
    #          norm = sqrt(1.6931472^2 + 1.2876821^2) = 2.1271748 -> blue 0.7959605, disc 0.6053485
    expected = np.array([
        [0.0, 0.7071068, 0.7071068, 0.0],
        [0.0, 0.0, 0.8355915, 0.5493512],
        [0.7959605, 0.6053485, 0.0, 0.0],
    ])
    np.testing.assert_allclose(matrix, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0)


def test_tfidf_min_df_and_ngrams() -> None:
    # min_df=2 keeps the terms found in two documents: disc and red.
    matrix, vocab = tfidf_vectors(TOY, min_df=2)
    assert vocab == ("disc", "red")
    # class 1 only holds "red" (twice) -> unit vector on red.
    np.testing.assert_allclose(matrix[1], [0.0, 1.0])
    _, vocab2 = tfidf_vectors(TOY, ngram=2)
    # bigrams are taken within a description, never across two ("square red" is absent).
    assert "red disc" in vocab2 and "red square" in vocab2 and "blue disc" in vocab2
    assert "square red" not in vocab2
    with pytest.raises(DataError, match="min_df=4"):
        tfidf_vectors(TOY, min_df=4)
    with pytest.raises(ConfigError, match="ngram"):
        tfidf_vectors(TOY, ngram=0)


def test_tfidf_rejects_plain_strings() -> None:
    with pytest.raises(DataError, match=r"descriptions\[0\]"):
        tfidf_vectors(["a red disc", "a blue square"])


def test_l2_by_hand() -> None:
    # [3, 4] has norm 5 -> [0.6, 0.8]; an all-zero row stays zero.
    out = attribute_vectors(np.array([[3.0, 4.0], [0.0, 0.0]]), "l2")
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_zscore_by_hand() -> None:
    # column 0 = [1, 3, 5]: mean 3, population std sqrt((4 + 0 + 4) / 3) = sqrt(8/3) = 1.6329932
    #   -> [-2, 0, 2] / 1.6329932 = [-1.2247449, 0, 1.2247449]
    # column 1 = [0.1, 0.1, 0.1] is constant -> 0
    k = np.array([[1.0, 0.1], [3.0, 0.1], [5.0, 0.1]])
    out = attribute_vectors(k, "zscore")
    np.testing.assert_allclose(out, [[-1.2247449, 0.0], [0.0, 0.0], [1.2247449, 0.0]], atol=1e-7)


def test_none_is_a_copy() -> None:
    k = np.array([[1.0, 2.0]])
    out = attribute_vectors(k, "none")
    np.testing.assert_array_equal(out, k)
    out[0, 0] = 9.0
    assert k[0, 0] == 1.0


def test_nan_names_the_row() -> None:
    k = np.ones((4, 3))
    k[2, 1] = np.nan
    with pytest.raises(DataError, match="row 2"):
        attribute_vectors(k)


def test_unknown_normalize_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        attribute_vectors(np.ones((2, 2)), "minmax")
    message = str(info.value)
    assert "minmax" in message
    for name in ("none", "l2", "zscore"):
        assert name in message


def test_sentence_vectors_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import sentence_transformers` raise ImportError.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ConfigError, match=r"pip install 'niwt\[text\]'"):
        sentence_vectors(TOY)


class _FakeModel:
    calls: list[dict] = []

    def __init__(self, name: str, **kwargs: object) -> None:
        import os

        _FakeModel.calls.append({"name": name, "offline": os.environ.get("HF_HUB_OFFLINE"), **kwargs})
        if name == "missing-model":
            raise OSError("not found in the local cache")

    def encode(self, sentences: list[str], **kwargs: object) -> np.ndarray:
        # Embedding = [length of the sentence, 1].
        return np.array([[len(s), 1.0] for s in sentences])


def test_sentence_vectors_with_fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=_FakeModel))
    _FakeModel.calls.clear()
    out = sentence_vectors([["ab", "abcd"], ["abc"]])
    # class 0: mean of [2, 1] and [4, 1] = [3, 1] -> / sqrt(10); class 1: [3, 1] -> / sqrt(10)
    np.testing.assert_allclose(out, [[3 / math.sqrt(10), 1 / math.sqrt(10)]] * 2)
    assert _FakeModel.calls[-1]["local_files_only"] is True
    assert _FakeModel.calls[-1]["offline"] == "1"
    import os

    assert "HF_HUB_OFFLINE" not in os.environ  # restored after the call
    with pytest.raises(ConfigError, match="missing-model"):
        sentence_vectors([["ab"]], model_name="missing-model")


def _toy_data(descriptions: tuple[tuple[str, ...], ...] = ()) -> ZSLData:
    return ZSLData(
        name="toy",
        class_names=("a", "b", "c"),
        knowledge=np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]),
        knowledge_names=("x", "y"),
        labels=np.array([0, 1, 2]),
        seen_classes=np.array([0, 1]),
        unseen_classes=np.array([2]),
        train_classes=np.array([0]),
        val_classes=np.array([1]),
        trainval_idx=np.array([0, 1]),
        test_seen_idx=np.zeros(0, np.int64),
        test_unseen_idx=np.array([2]),
        descriptions=descriptions,
    )


def test_knowledge_vectors_dispatch() -> None:
    vectors, names = knowledge_vectors(_toy_data())
    assert names == ("x", "y")
    np.testing.assert_allclose(vectors[0], [0.6, 0.8])
    data = _toy_data(tuple(tuple(d) for d in TOY))
    text, vocab = knowledge_vectors(data, source="text")
    expected, expected_vocab = tfidf_vectors(TOY)
    assert vocab == expected_vocab
    np.testing.assert_allclose(text, expected)
    with pytest.raises(DataError, match="descriptions"):
        knowledge_vectors(_toy_data(), source="text")
    with pytest.raises(ConfigError, match="source"):
        knowledge_vectors(_toy_data(), source="images")
    with pytest.raises(ConfigError, match="text_encoder"):
        knowledge_vectors(data, source="text", text_encoder="bert")
