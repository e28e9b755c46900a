"""ImportanceMapper, mean_spearman and class_mean_importance on values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from niwt.errors import DataError, NotFittedError
from niwt.mapping import ImportanceMapper, class_mean_importance, mean_spearman


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ----------------------------------------------------------------------------- helpers by hand


def test_mean_spearman_by_hand():
    # identical order: 1; reversed order: -1; the mean of the two rows is 0
    assert mean_spearman(np.array([[1.0, 2, 3], [1, 2, 3]]), np.array([[1.0, 2, 3], [3, 2, 1]])) == pytest.approx(0.0)
    # ranks 1 2 3 4 vs 1 3 2 4: sum d^2 = 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert mean_spearman(np.array([[10.0, 20, 30, 40]]), np.array([[0.1, 0.3, 0.2, 0.4]])) == pytest.approx(0.8)
    # only the order counts, not the values
    assert mean_spearman(np.array([[1.0, 5, 100]]), np.array([[-3.0, 0, 2]])) == pytest.approx(1.0)
    # a constant row has no order: its correlation counts as 0, the other row's as 1
    assert mean_spearman(np.array([[1.0, 1, 1], [1, 2, 3]]), np.array([[1.0, 2, 3], [1, 2, 3]])) == pytest.approx(0.5)


def test_class_mean_importance_by_hand():
    importances = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0], [0.0, 0.0]])
    labels = np.array([0, 0, 1, 2])
    # class 0: mean of the unit vectors [0.6, 0.8] and [0, 1] = [0.3, 0.9]; class 1: [1, 0]; a zero vector stays 0
    out = class_mean_importance(importances, labels, np.array([1, 0, 2]))
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.3, 0.9], [0.0, 0.0]], atol=1e-12)


# ----------------------------------------------------------------------------- fitting


def test_an_exactly_linear_map_is_recovered():
    # One-hot knowledge: the linear map's column c (plus the bias) is the prediction for class c, so
    # any target rows can be matched exactly; the loss only sees directions, so images of a class may
    # carry its row at different positive scales.
    rng = np.random.default_rng(0)
    n_classes, k = 5, 8
    rows = rng.normal(size=(n_classes, k))
    labels = np.repeat(np.arange(n_classes), 4)
    scales = rng.uniform(0.5, 3.0, size=labels.size)[:, None]
    mapper = ImportanceMapper(lr=0.05, epochs=60, batch_size=8, n_holdout=0, random_state=0)
    mapper.fit(np.eye(n_classes), rows[labels] * scales, labels)
    predicted = mapper.predict(np.eye(n_classes))
    assert predicted.shape == (n_classes, k)
    assert _cosine_rows(predicted, rows).min() > 0.999
    assert mapper.best_epoch_ == 60 and np.isnan(mapper.val_spearman_)
    assert len(mapper.history_) == 60 and mapper.history_[-1][0] < 1e-3


def test_a_linear_map_generalises_to_a_class_it_never_saw():
    # importance = A^T k exactly: the map learned on 12 classes predicts the direction for a 13th.
    rng = np.random.default_rng(1)
    d, k = 3, 6
    transform = rng.normal(size=(d, k))
    knowledge = rng.normal(size=(13, d))
    labels = np.repeat(np.arange(12), 3)
    mapper = ImportanceMapper(lr=0.05, epochs=200, batch_size=12, n_holdout=0, random_state=0)
    mapper.fit(knowledge, knowledge[labels] @ transform, labels)
    predicted = mapper.predict(knowledge[12:])
    assert _cosine_rows(predicted, knowledge[12:] @ transform)[0] > 0.99


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(2)
    n_classes, d, k = 8, 5, 10
    knowledge = rng.normal(size=(n_classes, d))
    labels = np.repeat(np.arange(n_classes), 6)
    importances = knowledge[labels] @ rng.normal(size=(d, k)) + rng.normal(scale=2.0, size=(labels.size, k))
    return knowledge, importances, labels


def test_selection_picks_the_epoch_of_best_held_out_rank_correlation(noisy):
    knowledge, importances, labels = noisy
    mapper = ImportanceMapper(lr=0.05, epochs=12, batch_size=8, n_holdout=3, refit=False, random_state=0)
    mapper.fit(knowledge, importances, labels)
    held_out = np.array([score for _, score in mapper.history_])
    assert len(held_out) == 12 and np.unique(held_out).size > 1  # the choice is not trivial
    assert mapper.best_epoch_ == int(np.argmax(held_out)) + 1
    assert mapper.val_spearman_ == pytest.approx(held_out.max())
    # without refit the kept weights are that epoch's: recompute its held-out score from the predictions
    hold = mapper.holdout_classes_
    assert hold.size == 3 and set(hold.tolist()) <= set(labels.tolist())
    observed = class_mean_importance(importances, labels, hold)
    assert mean_spearman(mapper.predict(knowledge[hold]), observed) == pytest.approx(mapper.val_spearman_, abs=1e-6)


def test_refit_keeps_the_chosen_epoch_count(noisy):
    knowledge, importances, labels = noisy
    kwargs = {"lr": 0.05, "epochs": 12, "batch_size": 8, "n_holdout": 3, "random_state": 0}
    chosen = ImportanceMapper(refit=False, **kwargs).fit(knowledge, importances, labels)
    refit = ImportanceMapper(refit=True, **kwargs).fit(knowledge, importances, labels)
    assert refit.best_epoch_ == chosen.best_epoch_
    assert [h[1] for h in refit.history_] == pytest.approx([h[1] for h in chosen.history_])
    assert refit.predict(knowledge).shape == (knowledge.shape[0], importances.shape[1])


# ----------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("knowledge", "importances", "labels", "kwargs", "message"),
    [
        (np.ones(4), np.ones((4, 3)), np.arange(4), {}, r"`knowledge` must be a 2-d matrix, got shape \(4,\)"),
        (np.eye(4), np.ones(4), np.arange(4), {}, r"`importances` must be a 2-d matrix, got shape \(4,\)"),
        (np.eye(4), np.ones((4, 3)), np.arange(3), {}, r"`labels` must hold one class index per image: expected \[4\], got \(3,\)"),
        (np.eye(4), np.ones((4, 3)), np.array([0, 1, 2, 7]), {}, r"`labels` must lie in \[0, 4\), got \[0, 7\]"),
        (np.where(np.eye(4) > 0, np.nan, 0.0), np.ones((4, 3)), np.arange(4), {}, r"`knowledge` must hold finite values, got 4 NaN"),
        (np.eye(4), np.full((4, 3), np.nan), np.arange(4), {}, r"`importances` must hold finite values, got 12 NaN"),
        (np.eye(4), np.ones((4, 3)), np.arange(4), {"n_holdout": 4}, r"`n_holdout`=4 leaves no class to train on"),
    ],
)
def test_bad_inputs_raise_data_errors(knowledge, importances, labels, kwargs, message):
    with pytest.raises(DataError, match=message):
        ImportanceMapper(epochs=1, **kwargs).fit(knowledge, importances, labels)


def test_predict_checks_fitting_and_width():
    with pytest.raises(NotFittedError):
        ImportanceMapper().predict(np.eye(3))
    mapper = ImportanceMapper(epochs=1, n_holdout=0).fit(np.eye(3), np.ones((3, 2)), np.arange(3))
    with pytest.raises(DataError, match=r"`knowledge` must have shape \[\*, 3\], got \(2, 4\)"):
        mapper.predict(np.ones((2, 4)))
