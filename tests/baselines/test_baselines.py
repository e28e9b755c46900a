"""Tests of the feature-based zero-shot baselines (ALE, DEM, ESZSL, SAE)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from niwt.baselines import ALE, BASELINE_NAMES, BASELINES, DEM, ESZSL, SAE, get_baseline
from niwt.errors import ConfigError, DataError, NotFittedError
from niwt.evaluate import per_class_accuracy

# short training keeps the generic tests fast; accuracy tests use the defaults
FAST = {"ale": {"epochs": 3}, "dem": {"epochs": 3, "hidden": 16}, "eszsl": {}, "sae": {}}


def _toy(seed: int = 0, n_classes: int = 30, n_unseen: int = 8, dim_s: int = 6, dim_x: int = 24,
         per_class: int = 15, noise: float = 0.05):
    """Features = fixed random linear map of unit-norm class vectors, plus an offset and small noise.

    Returns S [C, d], X [N, D], y [N], and the seen / unseen class index arrays.
    """
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n_classes, dim_s))
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    mapping = rng.normal(size=(dim_s, dim_x))
    y = np.repeat(np.arange(n_classes), per_class)
    X = S[y] @ mapping + 2.0 + noise * rng.normal(size=(y.size, dim_x))
    unseen = np.arange(n_classes - n_unseen, n_classes)
    seen = np.arange(n_classes - n_unseen)
    return S, X, y, seen, unseen


def _small(seed: int = 0):
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(8, 4))  # rows 6 and 7 are never trained on
    X = rng.normal(size=(40, 6))
    y = rng.permutation(np.arange(40) % 6)
    return S, X, y


def test_eszsl_matches_closed_form() -> None:
    S, X, y = _small()
    alpha, gamma = 0.7, 0.3
    model = ESZSL(alpha=alpha, gamma=gamma).fit(X, y, S)
    classes = np.unique(y)
    Y = (y[:, None] == classes[None, :]).astype(float)  # one-hot [N, C_tr]
    S_tr = S[classes]
    V = (
        np.linalg.inv(X.T @ X + alpha * np.eye(X.shape[1]))
        @ X.T @ Y @ S_tr
        @ np.linalg.inv(S_tr.T @ S_tr + gamma * np.eye(S.shape[1]))
    )
    np.testing.assert_allclose(model.V_, V, rtol=1e-9, atol=1e-12)
    X_test = np.random.default_rng(5).normal(size=(7, 6))
    np.testing.assert_allclose(model.decision_function(X_test, S), X_test @ V @ S.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X_test, S), (X_test @ V @ S.T).argmax(1))
    np.testing.assert_array_equal(model.classes_, classes)


def test_sae_solves_the_sylvester_equation() -> None:
    S, X, y = _small(1)
    lam = 0.5
    model = SAE(lam=lam).fit(X, y, S)
    W = model.W_
    assert W.shape == (4, 6)
    S_y = S[y]
    residual = (S_y.T @ S_y) @ W + W @ (lam * X.T @ X) - (1 + lam) * S_y.T @ X
    assert np.abs(residual).max() < 1e-8
    general = scipy.linalg.solve_sylvester(S_y.T @ S_y, lam * X.T @ X, (1 + lam) * S_y.T @ X)
    np.testing.assert_allclose(W, general, rtol=1e-8, atol=1e-10)
    # s2f: cosine of each feature with each decoded class vector
    decoded = S @ W
    expected = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (
        decoded / np.linalg.norm(decoded, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(model.decision_function(X, S), expected, atol=1e-12)
    # f2s: cosine of each encoded feature with each class vector (mode is read at scoring time)
    model.set_params(mode="f2s")
    encoded = X @ W.T
    expected = (encoded / np.linalg.norm(encoded, axis=1, keepdims=True)) @ (
        S / np.linalg.norm(S, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(model.decision_function(X, S), expected, atol=1e-12)


def test_sae_singular_sylvester_still_solved() -> None:
    # 12 samples of 20-d features (XᵀX singular) and 5-d class vectors for 3 classes (S_yᵀS_y
    # singular): the solution is not unique, the minimum-norm one must still satisfy the equation.
    rng = np.random.default_rng(4)
    S = rng.normal(size=(3, 5))
    X = rng.normal(size=(12, 20))
    y = np.arange(12) % 3
    W = SAE(lam=2.0).fit(X, y, S).W_
    assert np.isfinite(W).all()
    S_y = S[y]
    residual = (S_y.T @ S_y) @ W + W @ (2.0 * X.T @ X) - 3.0 * S_y.T @ X
    assert np.abs(residual).max() < 1e-8


@pytest.mark.parametrize(("name", "params"), [("ale", {"lr": 1e-2}), ("dem", {})])
def test_trained_baselines_solve_a_separable_toy(name: str, params: dict) -> None:
    # ALE at lr 1e-3 needs about 3x the default epochs on this small set; lr 1e-2 is in its grid
    S, X, y, seen, unseen = _toy()
    train = np.isin(y, seen)
    model = get_baseline(name, **params).fit(X[train], y[train], S)
    np.testing.assert_array_equal(model.classes_, seen)
    pred = model.predict(X[~train], S[unseen])
    assert per_class_accuracy(unseen[pred], y[~train]) >= 0.95
    assert model.loss_curve_[-1] < model.loss_curve_[0]


@pytest.mark.parametrize("name", ["eszsl", "sae"])
def test_closed_form_baselines_solve_a_separable_toy(name: str) -> None:
    S, X, y, seen, unseen = _toy()
    train = np.isin(y, seen)
    model = get_baseline(name).fit(X[train], y[train], S)
    pred = model.predict(X[~train], S[unseen])
    assert per_class_accuracy(unseen[pred], y[~train]) >= 0.95


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_not_fitted(name: str) -> None:
    model = get_baseline(name)
    S, X, _ = _small()
    for call in (model.decision_function, model.predict):
        with pytest.raises(NotFittedError, match=f"This {type(model).__name__} instance is not fitted yet"):
            call(X, S)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_dimension_mismatches(name: str) -> None:
    S, X, y = _small()
    model = get_baseline(name, **FAST[name]).fit(X, y, S)
    with pytest.raises(DataError, match=r"5 features.*fitted with 6"):
        model.decision_function(X[:, :5], S)
    with pytest.raises(DataError, match=r"3 knowledge dimensions.*fitted with 4"):
        model.predict(X, S[:, :3])
    with pytest.raises(DataError, match=r"40 rows, y has 39"):
        get_baseline(name).fit(X, y[:-1], S)
    with pytest.raises(DataError, match=r"\[0, 5\)"):
        get_baseline(name).fit(X, y, S[:5])
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        get_baseline(name).fit(X_nan, y, S)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_same_random_state_same_scores(name: str) -> None:
    S, X, y = _small(2)
    first = get_baseline(name, **FAST[name]).fit(X, y, S).decision_function(X, S)
    second = get_baseline(name, **FAST[name]).fit(X, y, S).decision_function(X, S)
    assert first.shape == (40, 8)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", ["ale", "dem"])
def test_random_state_changes_trained_models(name: str) -> None:
    S, X, y = _small(2)
    first = get_baseline(name, random_state=0, **FAST[name]).fit(X, y, S).decision_function(X, S)
    other = get_baseline(name, random_state=1, **FAST[name]).fit(X, y, S).decision_function(X, S)
    assert not np.array_equal(first, other)


def test_dem_metrics() -> None:
    S, X, y = _small(3)
    model = DEM(epochs=2, hidden=8, output_relu=False).fit(X, y, S)
    prototypes = model.embed_classes(S)
    assert prototypes.shape == (8, 6)
    expected = -((X[:, None, :] - prototypes[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(model.decision_function(X, S), expected, atol=1e-9)
    model.set_params(metric="cosine")
    scores = model.decision_function(X, S)
    assert np.all(np.abs(scores) <= 1 + 1e-12)
    model.set_params(metric="manhattan")
    with pytest.raises(ConfigError, match="metric"):
        model.decision_function(X, S)


def test_invalid_hyper_parameters_fail_in_fit() -> None:
    S, X, y = _small()
    model = ESZSL(alpha=-1.0)  # __init__ does not validate
    with pytest.raises(ConfigError, match="alpha"):
        model.fit(X, y, S)
    with pytest.raises(ConfigError, match="mode"):
        SAE(mode="both").fit(X, y, S)
    with pytest.raises(ConfigError, match="epochs"):
        ALE(epochs=0).fit(X, y, S)
    with pytest.raises(ConfigError, match="lr"):
        DEM(lr=0.0).fit(X, y, S)


def test_registry_and_get_baseline() -> None:
    assert set(BASELINES) == {"ale", "dem", "eszsl", "sae"}
    assert BASELINE_NAMES == tuple(BASELINES) and isinstance(BASELINE_NAMES, tuple)
    model = get_baseline("ESZSL", alpha=3.0)
    assert isinstance(model, ESZSL) and model.alpha == 3.0 and model.gamma == 1.0
    with pytest.raises(ConfigError, match=r"unknown baseline 'clip'.*'ale', 'dem', 'eszsl', 'sae'"):
        get_baseline("clip")
    with pytest.raises(ConfigError, match="learning_rate"):
        get_baseline("ale", learning_rate=0.1)
    with pytest.raises(ConfigError, match="learning_rate"):
        ALE().set_params(learning_rate=0.1)
