"""Textual explanations and neuron names: vocabularies, top terms, records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from niwt.errors import ConfigError, DataError, NotFittedError
from niwt.explain import (
    DimensionNames,
    EmbeddedVocabulary,
    InverseConfig,
    InverseMapper,
    Vocabulary,
    as_vocabulary,
    explain_classes,
    explain_images,
    format_neuron_names,
    name_neurons,
    top_terms,
)
from niwt.models import create_model

NAMES = ("shape:disc", "shape:square", "colour:red", "colour:blue")


class FixedLinear(InverseMapper):
    """An inverse map with hand-set weights: g(a) = a @ W.T + b (input not normalised)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__(InverseConfig(normalize=False))
        net = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            net.weight.copy_(torch.as_tensor(weight))
            net.bias.copy_(torch.as_tensor(bias))
        self.net_ = net.eval()
        self.n_features_in_, self.n_outputs_ = weight.shape[1], weight.shape[0]


@pytest.fixture()
def inverse() -> FixedLinear:
    # channel 0 -> square, channel 1 -> blue, channel 2 -> disc + red; a bias favouring "colour:red".
    weight = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 0, 0.9], [0, 0.6, 0]])
    return FixedLinear(weight, np.array([0.0, 0.0, 0.8, 0.0]))


def test_top_terms_orders_by_score_and_breaks_ties_by_index() -> None:
    terms = top_terms(np.array([[0.1, 0.5, 0.5, -1.0]]), NAMES, 3)[0]
    assert [t.name for t in terms] == ["shape:square", "colour:red", "shape:disc"]
    assert [t.index for t in terms] == [1, 2, 0]
    assert top_terms(np.zeros((1, 4)), NAMES, 10)[0][-1].index == 3  # k capped at the vocabulary
    with pytest.raises(ConfigError, match="`k`"):
        top_terms(np.zeros((1, 4)), NAMES, 0)


def test_vocabularies() -> None:
    assert isinstance(as_vocabulary(list(NAMES), 4), DimensionNames)
    with pytest.raises(DataError, match="4 knowledge dimensions"):
        as_vocabulary(NAMES[:3], 4)
    with pytest.raises(ConfigError, match="vocabulary"):
        as_vocabulary(42, 4)
    words = EmbeddedVocabulary(("round", "boxy", "warm"), np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 2.0, 0]]))
    assert isinstance(words, Vocabulary)
    scores = words.scores(np.array([[0.0, 0.0, 3.0, 0.0], [1.0, 1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(scores, [[0, 0, 1], [2**-0.5, 2**-0.5, 0]])
    with pytest.raises(DataError, match="vectors"):
        EmbeddedVocabulary(("a", "b"), np.ones((3, 4)))


def test_neuron_names_from_one_hot_importances(inverse) -> None:
    names = name_neurons(inverse, NAMES, k=2)
    assert [n.channel for n in names] == [0, 1, 2]
    assert [n.name for n in names] == ["shape:square", "colour:red", "colour:red"]  # the bias wins for channel 1
    relative = name_neurons(inverse, NAMES, k=2, relative=True)
    assert [n.name for n in relative] == ["shape:square", "colour:blue", "shape:disc"]
    assert [n.channel for n in name_neurons(inverse, NAMES, channels=[2])] == [2]
    record = json.loads(json.dumps(names[0].to_dict()))
    assert record["name"] == "shape:square" and record["terms"][0]["score"] == pytest.approx(1.0)
    assert record["terms"][1] == {"name": "colour:red", "score": pytest.approx(0.8), "index": 2}
    assert "shape:square (+1.000)" in format_neuron_names(names)
    with pytest.raises(NotFittedError):
        name_neurons(InverseMapper(), NAMES)
    with pytest.raises(DataError, match="channels"):
        name_neurons(inverse, NAMES, channels=[3])


def test_class_explanations_of_predicted_importance(inverse) -> None:
    told = np.array([[0.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    out = explain_classes(told, inverse, NAMES, classes=[5, 7], class_names=[f"c{i}" for i in range(8)], k=2)
    assert [(e.class_index, e.class_name) for e in out] == [(5, "c5"), (7, "c7")]
    assert out[0].text == "colour:red, shape:disc"  # 2 * 0.9 + 0.8 > 2
    assert out[1].terms[0].name == "colour:blue"
    assert json.loads(json.dumps(out[0].to_dict()))["terms"][1]["index"] == 0


def test_image_explanations_default_to_the_prediction() -> None:
    torch.manual_seed(0)
    model = create_model("vgg", 3, width=4, hidden=8).eval()
    k_dim = 16  # channels of the importance layer
    inv = FixedLinear(np.random.default_rng(0).standard_normal((4, k_dim)), np.zeros(4))
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        pred = model(x).argmax(1).tolist()
    out = explain_images(model, "features", x, inv, NAMES, k=3, class_names=["a", "b", "c"])
    assert [e.target for e in out] == pred and [e.predicted for e in out] == pred
    assert [e.image for e in out] == list(range(5))
    assert all(len(e.terms) == 3 for e in out)
    fixed = explain_images(model, "features", x, inv, NAMES, targets=[2, 2, 2, 2, 2], k=1)
    assert [e.target for e in fixed] == [2] * 5 and [e.predicted for e in fixed] == pred
    assert fixed[0].target_name is None
    json.dumps([e.to_dict() for e in out])
