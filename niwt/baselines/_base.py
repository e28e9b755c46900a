"""Shared machinery of the feature-based baselines: parameters, input checks, fitted state.

The estimators follow scikit-learn conventions: ``__init__`` only stores its keyword arguments,
``fit`` validates them and the data and stores what it learns in attributes ending in ``_``.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from niwt.errors import ConfigError, DataError, NotFittedError

__all__ = [
    "ZSLBaseline",
    "cosine_similarity",
    "positive_float",
    "non_negative_float",
    "check_int",
    "single_torch_thread",
]


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run the enclosed PyTorch code with one intra-op thread, restoring the previous count after.

    Mini-batch steps of the baselines are far too small to gain from intra-op parallelism, and on a
    busy machine with few cores the thread pool's synchronisation makes each step many times slower.
    """
    import torch

    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b``.

    Args:
        a: ``[M, k]`` array.
        b: ``[K, k]`` array.

    Returns:
        ``[M, K]`` similarities; a zero row has similarity 0 with everything.
    """
    a_norm = np.linalg.norm(a, axis=1, keepdims=True)
    b_norm = np.linalg.norm(b, axis=1, keepdims=True)
    a_unit = a / np.where(a_norm > 0, a_norm, 1.0)
    b_unit = b / np.where(b_norm > 0, b_norm, 1.0)
    return a_unit @ b_unit.T


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"`{name}` must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ConfigError(f"`{name}` must be finite, got {value}")
    return value


def positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float, raising ConfigError unless it is finite and > 0."""
    number = _real(name, value)
    if number <= 0:
        raise ConfigError(f"`{name}` must be > 0, got {number}")
    return number


def non_negative_float(name: str, value: object) -> float:
    """Return ``value`` as a float, raising ConfigError unless it is finite and >= 0."""
    number = _real(name, value)
    if number < 0:
        raise ConfigError(f"`{name}` must be >= 0, got {number}")
    return number


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int, raising ConfigError unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}, got {value}")
    return int(value)


def _float_matrix(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise DataError(f"`{name}` must be a 2-d array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"`{name}` must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"`{name}` holds {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    return arr


def _warn_constant(X: np.ndarray, S_train: np.ndarray) -> None:
    """Warn when the features, or the trained classes' vectors, are all alike: the fit is defined but says nothing."""
    if not np.any(X != X[0]):
        warnings.warn(
            f"`X`: all {X.shape[0]} samples have the same features; every image gets the same scores, so "
            f"predictions do not depend on the image", UserWarning, stacklevel=4,
        )
    if not np.any(S_train != S_train[0]):
        warnings.warn(
            f"`S`: all {S_train.shape[0]} trained classes have the same class vector; the model cannot tell "
            f"them apart", UserWarning, stacklevel=4,
        )


class ZSLBaseline:
    """Base class of the zero-shot baselines operating on fixed image features.

    Subclasses implement ``_fit(X, S_y, S_train, y_train)`` and ``_scores(X, S)``.

    Attributes set by ``fit``:
        n_features_in_: D, the feature dimension.
        n_knowledge_in_: d, the class-knowledge dimension.
        classes_: ``[C_tr]`` sorted rows of ``S`` that were trained on (the classes present in ``y``).
    """

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return the constructor parameters of this estimator as a dict."""
        del deep
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> ZSLBaseline:
        """Set constructor parameters; raises ConfigError naming any unknown parameter."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigError(
                    f"unknown parameter {name!r} for {type(self).__name__}; valid parameters: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [p.name for p in signature.parameters.values() if p.name != "self" and p.kind in kinds]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ checks

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator."
            )

    def _validate_fit(
        self, X: object, y: object, S: object
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Check training inputs.

        Returns:
            X ``[N, D]``, S_y ``[N, d]`` (class vector of each sample), S_train ``[C_tr, d]`` (vectors of
            the trained classes), y_train ``[N]`` (labels re-indexed into ``[0, C_tr)``) and classes
            ``[C_tr]`` (the rows of ``S`` trained on).
        """
        X = _float_matrix("X", X)
        S = _float_matrix("S", S)
        y = np.asarray(y)
        if y.ndim != 1:
            raise DataError(f"`y` must be a 1-d array of class indices, got shape {y.shape}")
        if y.size and not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"`y` must hold integer row indices into `S`, got dtype {y.dtype}")
        if X.shape[0] != y.shape[0]:
            raise DataError(
                "`X` and `y` must have the same number of samples: "
                f"X has {X.shape[0]} rows, y has {y.shape[0]}"
            )
        if X.shape[0] == 0:
            raise DataError("`X` is empty: fitting needs at least one sample")
        if X.shape[1] == 0 or S.shape[1] == 0:
            raise DataError(f"`X` and `S` need at least one column, got X {X.shape} and S {S.shape}")
        y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= S.shape[0]:
            raise DataError(
                f"`y` must index the {S.shape[0]} rows of `S`, i.e. lie in [0, {S.shape[0]}), "
                f"got min {y.min()}, max {y.max()}"
            )
        classes, y_train = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise DataError(f"`y` must contain at least 2 classes, got {classes.size}")
        _warn_constant(X, S[classes])
        return X, S[y], S[classes], y_train.astype(np.int64), classes

    def _validate_predict(self, X: object, S: object) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        X = _float_matrix("X", X)
        S = _float_matrix("S", S)
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"`X` has {X.shape[1]} features but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}"
            )
        if S.shape[1] != self.n_knowledge_in_:
            raise DataError(
                f"`S` has {S.shape[1]} knowledge dimensions but {type(self).__name__} was fitted with "
                f"{self.n_knowledge_in_}"
            )
        if S.shape[0] == 0:
            raise DataError("`S` has no rows: give at least one class vector to score against")
        return X, S

    # ------------------------------------------------------------------ public API

    def fit(self, X: np.ndarray, y: np.ndarray, S: np.ndarray) -> ZSLBaseline:
        """Learn the model from image features and class knowledge.

        Args:
            X: ``[N, D]`` image features.
            y: ``[N]`` integer labels, row indices into ``S``; only the classes present are trained on.
            S: ``[C, d]`` class knowledge (e.g. attribute vectors); may hold more rows than used.

        Returns:
            self.

        Raises:
            DataError: on mismatched shapes, labels outside ``[0, C)``, NaN or fewer than 2 classes.
            ConfigError: on invalid hyper-parameters.

        Warns:
            UserWarning: when every sample has the same features, or every trained class the same
                vector (the fit is finite but cannot separate anything).
        """
        X, S_y, S_train, y_train, classes = self._validate_fit(X, y, S)
        self._fit(X, S_y, S_train, y_train)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.n_knowledge_in_ = S_train.shape[1]
        return self

    def decision_function(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        """Compatibility scores of each image with each class vector.

        Args:
            X: ``[M, D]`` image features.
            S: ``[K, d]`` class vectors to score against (pass all classes for GZSL).

        Returns:
            ``[M, K]`` float64 scores, higher = more likely.

        Raises:
            NotFittedError: before ``fit``.
            DataError: if D or d differ from the fitted dimensions, or inputs hold NaN.
        """
        X, S = self._validate_predict(X, S)
        return self._scores(X, S)

    def predict(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        """Most compatible class of each image.

        Args:
            X: ``[M, D]`` image features.
            S: ``[K, d]`` class vectors.

        Returns:
            ``[M]`` int64 row indices into ``S``.
        """
        return self.decision_function(X, S).argmax(axis=1).astype(np.int64)

    # ------------------------------------------------------------------ subclass hooks

    def _fit(self, X: np.ndarray, S_y: np.ndarray, S_train: np.ndarray, y_train: np.ndarray) -> None:
        raise NotImplementedError

    def _scores(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        raise NotImplementedError
