"""Numerical edge cases: each has a defined, finite result, and a ``UserWarning`` where the result means little.

All-zero importance vectors and targets, all-zero knowledge rows, constant zscore columns, a class
with one image, repeated class names, Λ = 0, an unseen class indistinguishable from another, a
class without test images, baselines on constant features.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from niwt.baselines import BASELINES, get_baseline
from niwt.data.formats.splits import split_seen_images
from niwt.data.record import ZSLData
from niwt.errors import DataError
from niwt.evaluate import choose_calibration, evaluate_gzsl
from niwt.knowledge import attribute_vectors, knowledge_vectors
from niwt.mapping import ImportanceMapper, class_mean_importance, mean_spearman
from niwt.transfer import UnseenWeightOptimizer

FAST = {"ale": {"epochs": 3}, "dem": {"epochs": 3, "hidden": 8}, "eszsl": {}, "sae": {}}


@contextlib.contextmanager
def _no_warning() -> Iterator[None]:
    """A block in which any warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _data(knowledge: np.ndarray, class_names: tuple[str, ...] = ("a", "b", "c", "d")) -> ZSLData:
    """Four classes: a, b seen (a train, b val), c, d unseen; one image each."""
    return ZSLData(
        name="toy", class_names=class_names, knowledge=knowledge, knowledge_names=("x", "y"),
        labels=np.arange(4), seen_classes=np.array([0, 1]), unseen_classes=np.array([2, 3]),
        train_classes=np.array([0]), val_classes=np.array([1]), trainval_idx=np.array([0, 1]),
        test_seen_idx=np.zeros(0, np.int64), test_unseen_idx=np.array([2, 3]),
    )


def _mapping_problem(seed: int = 0, n_classes: int = 5, per_class: int = 4):
    rng = np.random.default_rng(seed)
    knowledge = rng.normal(size=(n_classes, 3))
    labels = np.repeat(np.arange(n_classes), per_class)
    importances = knowledge[labels] @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(labels.size, 6))
    return knowledge, importances, labels


# ------------------------------------------------------------------------------------------ importance -> mapping


def test_mapper_leaves_out_all_zero_importance_vectors():
    knowledge, importances, labels = _mapping_problem()
    importances[[0, 5, 6]] = 0.0
    with pytest.warns(UserWarning, match=r"3 of 20 importance vectors are all zero and are left out"):
        mapper = ImportanceMapper(epochs=4, n_holdout=1, batch_size=8).fit(knowledge, importances, labels)
    assert np.isfinite(mapper.predict(knowledge)).all() and np.isfinite(mapper.val_spearman_)
    assert len(mapper.history_) == 4 and all(np.isfinite(loss) for loss, _ in mapper.history_)  # one per epoch


def test_mapper_names_a_class_whose_importances_are_all_zero():
    knowledge, importances, labels = _mapping_problem()
    importances[labels == 2] = 0.0
    with pytest.warns(UserWarning, match=r"class\(es\) \[2\] have no other image"):
        mapper = ImportanceMapper(epochs=3, n_holdout=1).fit(knowledge, importances, labels)
    assert 2 not in mapper.holdout_classes_.tolist()
    assert np.isfinite(mapper.predict(knowledge)).all()


def test_mapper_refuses_only_zero_importances():
    knowledge, importances, labels = _mapping_problem()
    with pytest.raises(DataError, match=r"all 20 importance vectors in `importances` are zero"):
        ImportanceMapper(epochs=2).fit(knowledge, np.zeros_like(importances), labels)


def test_class_mean_importance_of_an_all_zero_class_is_zero_with_a_warning():
    importances = np.array([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    labels = np.array([0, 1, 1, 0])
    with pytest.warns(UserWarning, match=r"class\(es\) \[1\]: every importance vector is zero"):
        means = class_mean_importance(importances, labels, np.array([0, 1]))
    assert np.isfinite(means).all() and not means[1].any()
    assert mean_spearman(means[[1]], means[[0]]) == 0.0  # a constant row correlates with nothing


def test_class_mean_importance_of_a_zero_image_counts_it_as_no_direction():
    importances = np.array([[3.0, 4.0], [0.0, 0.0]])
    with _no_warning():
        means = class_mean_importance(importances, np.array([0, 0]), np.array([0]))
    np.testing.assert_allclose(means, [[0.3, 0.4]])


def test_class_mean_importance_refuses_a_class_without_images():
    with pytest.raises(DataError, match=r"class\(es\) \[7\] of `classes` have no image"):
        class_mean_importance(np.ones((2, 3)), np.array([0, 1]), np.array([0, 7]))


def test_a_class_with_one_image():
    knowledge, importances, labels = _mapping_problem(per_class=3)
    keep = np.flatnonzero((labels != 4) | (np.arange(labels.size) == np.flatnonzero(labels == 4)[0]))
    importances, labels = importances[keep], labels[keep]
    assert (labels == 4).sum() == 1
    with _no_warning():
        mapper = ImportanceMapper(epochs=3, n_holdout=2, random_state=3).fit(knowledge, importances, labels)
        means = class_mean_importance(importances, labels, np.arange(5))
    assert np.isfinite(mapper.predict(knowledge)).all() and np.isfinite(means).all()
    # Held out for test_seen it cannot be: the single image trains, and the class has no seen test image.
    trainval, test = split_seen_images(labels, np.arange(5), 0.5, seed=0)
    assert np.flatnonzero(labels == 4)[0] in trainval and not np.isin(labels[test], [4]).any()


# ----------------------------------------------------------------------------------------------------- transfer


@pytest.fixture()
def pool() -> torch.Tensor:
    return torch.rand(12, 3, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_transfer_with_an_all_zero_target_row_keeps_its_start_when_lambda_is_0(gap_model, pool):
    targets = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    targets[1] = 0.0
    opt = UnseenWeightOptimizer(lam=0.0, lr=0.05, batch_size=6, max_steps=20, patience=100)
    with pytest.warns(UserWarning, match=r"`targets` rows \[1\] .* all zero.*nothing \(Λ = 0"):
        opt.fit(gap_model, pool, targets)
    assert torch.isfinite(opt.weights_).all() and all(np.isfinite(opt.history_))
    torch.testing.assert_close(opt.weights_[1], opt.init_weights_[1])  # no direction to go
    assert not torch.equal(opt.weights_[0], opt.init_weights_[0])


def test_transfer_with_an_all_zero_target_row_is_pulled_to_the_mean_seen_row(gap_model, pool):
    targets = torch.zeros(1, 6, dtype=torch.float64)
    opt = UnseenWeightOptimizer(lam=1.0, lr=0.05, batch_size=6, max_steps=300, patience=300)
    with pytest.warns(UserWarning, match=r"Λ pull towards the mean seen row"):
        opt.fit(gap_model, pool, targets)
    mean_seen = gap_model.classifier.weight.detach().mean(0)
    assert torch.isfinite(opt.weights_).all()
    assert (opt.weights_[0] - mean_seen).norm() < 0.1 * (opt.init_weights_[0] - mean_seen).norm()


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_lambda_zero_is_a_plain_cosine_fit(gap_model, pool, mode):
    targets = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with _no_warning():
        opt = UnseenWeightOptimizer(lam=0.0, lr=0.02, batch_size=6, max_steps=30, patience=100, mode=mode)
        opt.fit(gap_model, pool, targets)
    assert torch.isfinite(opt.weights_).all() and all(np.isfinite(opt.history_))
    assert opt.history_[-1] < opt.history_[0]


# ---------------------------------------------------------------------------------------------------- knowledge


def test_all_zero_attribute_row_stays_zero_with_a_warning():
    k = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]])
    for normalize in ("l2", "none"):
        with pytest.warns(UserWarning, match=r"1 of 3 class\(es\) have an all-zero knowledge vector: 'b'"):
            out = attribute_vectors(k, normalize, class_names=("a", "b", "c"))
        assert np.isfinite(out).all() and not out[1].any()
    with _no_warning():  # zscore: the zero row is a class below the mean, not an empty one
        out = attribute_vectors(k, "zscore")
    assert np.isfinite(out).all() and out[1].any()


def test_constant_attribute_column_under_zscore_becomes_zero_with_a_warning():
    k = np.array([[1.0, 7.0], [2.0, 7.0], [4.0, 7.0]])
    with pytest.warns(UserWarning, match=r"1 of 2 knowledge dimension\(s\) are constant .*'legs'"):
        out = attribute_vectors(k, "zscore", column_names=("stripes", "legs"))
    assert np.isfinite(out).all() and not out[:, 1].any()
    np.testing.assert_allclose(out[:, 0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[:, 0].std(), 1.0)
    with pytest.warns(UserWarning, match="constant"):  # every column constant: all zero, still finite
        assert not attribute_vectors(np.ones((3, 2)), "zscore").any()


def test_huge_attribute_values_normalise_without_overflow():
    k = np.array([[1e300, 2e300], [1.0, 2.0], [3.0, -1e308]])
    with _no_warning():
        l2 = attribute_vectors(k, "l2")
        z = attribute_vectors(k, "zscore")
    np.testing.assert_allclose(l2[:2], [[1 / np.sqrt(5), 2 / np.sqrt(5)]] * 2)
    np.testing.assert_allclose(z, attribute_vectors(k / np.array([1e300, 1e308]), "zscore"))
    assert np.isfinite(l2).all() and np.isfinite(z).all()


def test_unseen_class_with_a_seen_class_knowledge_is_warned():
    k = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])  # c = 2 * a: equal after l2
    with pytest.warns(UserWarning, match=r"'c' \(unseen\) = 'a' \(seen\).*cannot tell these classes apart"):
        vectors, _ = knowledge_vectors(_data(k))
    assert np.isfinite(vectors).all()
    with _no_warning():  # without normalisation they differ
        knowledge_vectors(_data(k), normalize="none")


def test_two_unseen_classes_with_one_vector_are_warned():
    k = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0], [1.0, 2.0]])
    with pytest.warns(UserWarning, match=r"'c' \(unseen\) = 'd' \(unseen\)"):
        knowledge_vectors(_data(k), normalize="none")


def test_repeated_class_names_are_refused_with_the_names_listed():
    k = np.eye(4)[:, :2]
    with pytest.raises(DataError, match=r"`class_names` holds 1 repeated name\(s\): 'b' at positions \[1, 3\]"):
        _data(k, class_names=("a", "b", "c", "b"))
    with pytest.raises(DataError, match="must hold strings"):
        _data(k, class_names=("a", "b", "c", 4))


# --------------------------------------------------------------------------------------------------- evaluation


def _scores(n: int, n_classes: int, seed: int = 0) -> np.ndarray:
    """Random scores ``[n, n_classes]``."""
    return np.random.default_rng(seed).normal(size=(n, n_classes))


def test_evaluation_with_a_seen_class_without_test_images():
    labels = np.array([0, 0, 2, 3, 3])  # seen 0, 1 (no image); unseen 2, 3
    scores = np.array([
        [5.0, 1.0, 0.0, 0.0],  # class 0, right
        [1.0, 5.0, 0.0, 0.0],  # class 0, taken for class 1: still a candidate, only left out of the mean
        [0.0, 0.0, 5.0, 1.0],  # class 2, right
        [0.0, 0.0, 1.0, 5.0],  # class 3, right
        [0.0, 5.0, 1.0, 2.0],  # class 3, taken for class 1 (right among the unseen classes)
    ])
    with pytest.warns(UserWarning, match=r"1 of 2 seen class\(es\) have no test image \(\[1\]\): seen_acc"):
        report = evaluate_gzsl(scores, labels, [0, 1], [2, 3])
    assert (report.seen_acc, report.unseen_acc, report.zsl_acc) == (0.5, 0.75, 1.0)
    assert all(np.isfinite(v) for v in report.to_dict().values())


def test_evaluation_with_an_unseen_class_without_test_images():
    labels = np.array([0, 1, 2, 2])
    with pytest.warns(UserWarning, match=r"1 of 2 unseen class\(es\) have no test image \(\[3\]\): unseen_acc"):
        report = evaluate_gzsl(_scores(4, 4), labels, [0, 1], [2, 3])
    assert all(np.isfinite(v) for v in report.to_dict().values())
    assert np.isfinite(choose_calibration(_scores(4, 4), labels, [0, 1], [2, 3]))


# ---------------------------------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("value", [0.0, 3.5])
def test_baselines_on_constant_features(name, value):
    rng = np.random.default_rng(0)
    S = rng.normal(size=(5, 3))
    y = np.repeat(np.arange(3), 4)
    X = np.full((y.size, 6), value)
    with pytest.warns(UserWarning, match=r"`X`: all 12 samples have the same features"):
        model = get_baseline(name, **FAST[name]).fit(X, y, S)
    scores = model.decision_function(np.vstack([X[:2], rng.normal(size=(2, 6))]), S)
    assert scores.shape == (4, 5) and np.isfinite(scores).all()
    assert np.ptp(scores[0] - scores[1]) == 0.0  # identical images, identical scores


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_on_identical_class_vectors(name):
    rng = np.random.default_rng(1)
    S = np.ones((4, 3))
    y = np.repeat(np.arange(3), 4)
    with pytest.warns(UserWarning, match=r"`S`: all 3 trained classes have the same class vector"):
        model = get_baseline(name, **FAST[name]).fit(rng.normal(size=(y.size, 6)), y, S)
    assert np.isfinite(model.decision_function(rng.normal(size=(3, 6)), S)).all()
