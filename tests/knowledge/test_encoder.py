"""A run's knowledge encoder gives every fitted class its own vector back, and a new class its vector
the same way; bad knowledge for a new class is refused with what to fix."""

from __future__ import annotations

import numpy as np
import pytest

from niwt.data.shapes import ShapesConfig, make_shapes
from niwt.errors import DataError
from niwt.knowledge import knowledge_vectors
from niwt.knowledge.encoder import KnowledgeEncoder, fit_encoder


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(ShapesConfig(seed=3, n_source=4, n_seen=6, n_unseen=3, n_val=2, n_source_images=2,
                                    n_trainval_images=2, n_test_seen_images=1, n_test_unseen_images=1))


@pytest.mark.parametrize("normalize", ["none", "l2", "zscore"])
@pytest.mark.parametrize("source", ["attributes", "text"])
def test_the_encoder_gives_every_fitted_class_its_vector_back(shapes, source, normalize):
    vectors, names = knowledge_vectors(shapes, source, normalize, "tfidf")
    encoder = KnowledgeEncoder.from_dict(fit_encoder(shapes, source, normalize, "tfidf").to_dict())  # via JSON
    assert encoder.names == names
    for c in range(shapes.n_classes):
        if source == "attributes":
            got = encoder.encode(attributes=dict(zip(names, shapes.knowledge[c])))
        else:
            got = encoder.encode(description=list(shapes.descriptions[c]))
        np.testing.assert_allclose(got, vectors[c], rtol=1e-10, atol=1e-12)


def test_bad_knowledge_for_a_new_class_is_named(shapes):
    text = fit_encoder(shapes, "text", "l2", "tfidf")
    with pytest.raises(DataError, match="`description` is empty"):
        text.encode(description="   ")
    with pytest.raises(DataError, match=r"no word of the description is in this run's TF-IDF vocabulary .*'zebra'"):
        text.encode(description="zebra, okapi; giraffe")
    with pytest.raises(DataError, match="described by text: give `description`"):
        text.encode(attributes={"x": 1})
    attrs = fit_encoder(shapes, "attributes", "l2")
    name = attrs.names[0]
    with pytest.raises(DataError, match=rf"unknown attribute '{name}x'; close names: {name}"):
        attrs.encode(attributes={name + "x": 1.0})
    with pytest.raises(DataError, match="not a finite number"):
        attrs.encode(attributes={name: float("nan")})
    # unlisted attributes are 0: one attribute alone is that attribute's unit vector under l2
    one = attrs.encode(attributes={name: 2.0})
    assert one[0] == pytest.approx(1.0) and np.count_nonzero(one) == 1


def test_the_sentence_encoder_gives_fitted_classes_their_vectors_back(shapes):
    pytest.importorskip("sentence_transformers")
    vectors, _ = knowledge_vectors(shapes, "text", "zscore", "sentence-transformers")
    encoder = fit_encoder(shapes, "text", "zscore", "sentence-transformers")
    assert encoder.sentence_model == "all-MiniLM-L6-v2"
    # The model runs in float32 and rounds one class's sentences alone differently from the batch of
    # every class (other padding, other matrix shapes): its unit-norm embedding moves by a few 1e-8.
    # zscore then divides each dimension by its std over the classes, which ranges down to ~1e-9 here
    # (dimensions nearly constant over the classes), so in zscore units that noise can be anything.
    # Compare in the embedding's own units instead (undo the division): 1e-6 is ~8 float32 ulps of a
    # unit vector's scale, and every two classes differ by more than 0.05 there.
    std = np.where(encoder.constant, 0.0, encoder.std)  # constant dimensions are 0 in both
    tolerance = 1e-6
    between = np.abs((vectors[:, None] - vectors[None]) * std).max(-1)
    assert between[~np.eye(len(vectors), dtype=bool)].min() > 1e4 * tolerance  # the check can tell classes apart
    for c in (0, 5, 12):
        got = encoder.encode(description=list(shapes.descriptions[c]))
        np.testing.assert_array_equal(got[np.asarray(encoder.constant)], 0.0)
        np.testing.assert_allclose(got * std, vectors[c] * std, rtol=0, atol=tolerance)


def test_a_run_keeps_its_encoder_and_encodes_a_class_as_it_did(small_run_dir):
    from dataclasses import replace

    from niwt.runs import RunFormatError, load_run

    run = load_run(small_run_dir)
    assert run.encoder is not None and run.encoder.names == run.knowledge_names
    data, _ = run.dataset()
    for c in run.new_classes[:2]:  # an unseen class's own attributes give its vector back
        got = run.encode(attributes=dict(zip(run.knowledge_names, data.knowledge[c])))
        np.testing.assert_allclose(got, run.knowledge[c], rtol=1e-10, atol=1e-12)
    with pytest.raises(RunFormatError, match="written before runs kept their knowledge encoder"):
        replace(run, encoder=None).encode(attributes={run.knowledge_names[0]: 1.0})
