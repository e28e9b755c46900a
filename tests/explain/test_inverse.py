"""InverseMapper: recovers a known map, selects on held-out classes, saves and loads exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from niwt.errors import ConfigError, DataError, NotFittedError
from niwt.explain import InverseConfig, InverseMapper
from niwt.mapping import mean_spearman


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images whose importance is a fixed linear image of their class knowledge, plus noise."""
    rng = np.random.default_rng(0)
    n_classes, d, k, per_class = 14, 8, 24, 12
    knowledge = rng.random((n_classes, d))
    mix = rng.standard_normal((d, k))
    labels = np.repeat(np.arange(n_classes), per_class)
    importances = knowledge[labels] @ mix + 0.05 * rng.standard_normal((labels.size, k))
    importances *= rng.uniform(0.5, 3.0, (labels.size, 1))  # per-image scale: normalised away
    return importances, knowledge, labels


@pytest.fixture(scope="module")
def fitted(pairs) -> InverseMapper:
    importances, knowledge, labels = pairs
    return InverseMapper(InverseConfig(epochs=40, n_holdout=3, lr=2e-2, batch_size=32)).fit(importances, knowledge,
                                                                                              labels)


def test_fit_returns_self_and_predicts_the_class_knowledge(pairs, fitted) -> None:
    importances, knowledge, labels = pairs
    assert isinstance(fitted, InverseMapper)
    assert fitted.n_features_in_ == importances.shape[1] and fitted.n_outputs_ == knowledge.shape[1]
    pred = fitted.predict(importances)
    assert pred.shape == (labels.size, knowledge.shape[1])
    assert mean_spearman(pred, knowledge[labels]) > 0.8


def test_epoch_is_chosen_on_held_out_classes(fitted) -> None:
    assert fitted.holdout_classes_.size == 3
    scores = [s for _, s in fitted.history_]
    assert len(scores) == 40
    assert fitted.val_spearman_ == pytest.approx(max(scores))
    assert fitted.best_epoch_ == int(np.argmax(scores)) + 1
    assert fitted.val_spearman_ > 0.6


def test_same_seed_same_map_and_the_global_generator_is_left_alone(pairs) -> None:
    importances, knowledge, labels = pairs
    cfg = InverseConfig(epochs=3, n_holdout=0, random_state=5)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = InverseMapper(cfg).fit(importances, knowledge, labels).predict(importances[:5])
    assert torch.equal(torch.rand(1), before)  # fit drew nothing from the global generator
    b = InverseMapper(cfg).fit(importances, knowledge, labels).predict(importances[:5])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_safetensors_round_trip(pairs, tmp_path, model: str) -> None:
    importances, knowledge, labels = pairs
    inv = InverseMapper(InverseConfig(model=model, hidden=16, epochs=4, n_holdout=2)).fit(importances, knowledge,
                                                                                         labels)
    back = InverseMapper.load(inv.save(tmp_path / "inverse.safetensors"))
    np.testing.assert_array_equal(back.predict(importances), inv.predict(importances))
    assert back.config == inv.config
    assert (back.best_epoch_, back.history_) == (inv.best_epoch_, inv.history_)
    np.testing.assert_array_equal(back.holdout_classes_, inv.holdout_classes_)
    again = InverseMapper.from_state(inv.state_dict(), inv.metadata())
    np.testing.assert_array_equal(again.predict(importances[:3]), inv.predict(importances[:3]))


def test_errors_name_the_argument(pairs) -> None:
    importances, knowledge, labels = pairs
    with pytest.raises(NotFittedError):
        InverseMapper().predict(importances)
    with pytest.raises(ConfigError, match="loss"):
        InverseConfig(loss="hinge")
    with pytest.raises(ConfigError, match="lr"):
        InverseConfig(lr=0.0)
    with pytest.raises(ConfigError, match="epochs"):
        InverseConfig(epochs=-1)
    with pytest.raises(ConfigError, match="config"):
        InverseMapper({"epochs": 3})
    with pytest.raises(DataError, match="labels"):
        InverseMapper(InverseConfig(epochs=1, n_holdout=0)).fit(importances, knowledge, labels[:-1])
    with pytest.raises(DataError, match="n_holdout"):
        InverseMapper(InverseConfig(epochs=1, n_holdout=14)).fit(importances, knowledge, labels)
    fitted = InverseMapper(InverseConfig(epochs=1, n_holdout=0)).fit(importances, knowledge, labels)
    with pytest.raises(DataError, match="importances"):
        fitted.predict(importances[:, :5])
    with pytest.raises(DataError, match="metadata"):
        InverseMapper.from_state(fitted.state_dict(), {})
