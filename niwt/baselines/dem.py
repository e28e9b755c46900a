"""DEM: "Learning a Deep Embedding Model for Zero-Shot Learning" (Zhang, Xiang & Gong, CVPR 2017).

The image feature space is the embedding space: a two-layer ReLU network maps a class vector into it,

    ``f(s) = relu(relu(s W1 + b1) W2 + b2)``, ``W1`` ``[d, hidden]``, ``W2`` ``[hidden, D]``

(the output ReLU matches non-negative CNN features; switch it off with ``output_relu=False``). Training
minimises, over mini-batches of images, the mean over images of ``‖f(s_y) - x‖²`` plus
``lam · (‖W1‖² + ‖b1‖² + ‖W2‖² + ‖b2‖²)``, with Adam (PyTorch, CPU, float32) by
:func:`niwt.training.optimize`. An image is scored against a class by ``-‖x - f(s)‖²``
(``metric="euclidean"``) or by the cosine of ``x`` and ``f(s)`` (``metric="cosine"``). ``metric`` is
read when scoring, so it may be changed after ``fit``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from niwt.baselines._base import (
    ZSLBaseline,
    check_int,
    cosine_similarity,
    non_negative_float,
    positive_float,
    single_torch_thread,
)
from niwt.errors import ConfigError
from niwt.training import batches, optimize

__all__ = ["DEM"]

logger = logging.getLogger(__name__)

_METRICS = ("euclidean", "cosine")


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    return ((torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound).requires_grad_(True)


class DEM(ZSLBaseline):
    """Deep embedding model: class vectors regressed onto image features.

    Args:
        hidden: width of the hidden layer, >= 1.
        lam: weight of the L2 penalty on all weights and biases, >= 0.
        lr: Adam learning rate, > 0.
        epochs: passes over the training images, >= 1.
        batch_size: images per step, >= 1.
        metric: ``"euclidean"`` (negative squared distance) or ``"cosine"``.
        output_relu: apply a ReLU to the network output (right for non-negative features).
        random_state: seed of the initial weights and of the sample order.

    Attributes:
        W1_, b1_, W2_, b2_: float64 weights ``[d, hidden]``, ``[hidden]``, ``[hidden, D]``, ``[D]``.
        output_relu_: whether the fitted network ends with a ReLU.
        loss_curve_: mean training loss of every epoch.
        classes_, n_features_in_, n_knowledge_in_: see :class:`ZSLBaseline`.
    """

    def __init__(
        self,
        *,
        hidden: int = 256,
        lam: float = 1e-3,
        lr: float = 1e-3,
        epochs: int = 100,
        batch_size: int = 64,
        metric: str = "euclidean",
        output_relu: bool = True,
        random_state: int = 0,
    ) -> None:
        self.hidden = hidden
        self.lam = lam
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.metric = metric
        self.output_relu = output_relu
        self.random_state = random_state

    def _fit(self, X: np.ndarray, S_y: np.ndarray, S_train: np.ndarray, y_train: np.ndarray) -> None:
        with single_torch_thread():
            self._train(X, S_train, y_train)

    def _train(self, X: np.ndarray, S_train: np.ndarray, y_train: np.ndarray) -> None:
        hidden = check_int("hidden", self.hidden, 1)
        lam = non_negative_float("lam", self.lam)
        lr = positive_float("lr", self.lr)
        epochs = check_int("epochs", self.epochs, 1)
        batch_size = check_int("batch_size", self.batch_size, 1)
        seed = check_int("random_state", self.random_state, 0)
        if self.metric not in _METRICS:
            raise ConfigError(f"`metric` must be one of {list(_METRICS)}, got {self.metric!r}")
        if not isinstance(self.output_relu, (bool, np.bool_)):
            raise ConfigError(f"`output_relu` must be a bool, got {self.output_relu!r}")
        output_relu = bool(self.output_relu)

        generator = torch.Generator().manual_seed(seed)
        features = torch.from_numpy(X).float()
        knowledge = torch.from_numpy(S_train).float()
        targets = torch.from_numpy(y_train)
        n, dim_x = features.shape
        dim_s = knowledge.shape[1]
        params = [
            _uniform((dim_s, hidden), 1.0 / np.sqrt(dim_s), generator),
            _uniform((hidden,), 1.0 / np.sqrt(dim_s), generator),
            _uniform((hidden, dim_x), 1.0 / np.sqrt(hidden), generator),
            _uniform((dim_x,), 1.0 / np.sqrt(hidden), generator),
        ]
        w1, b1, w2, b2 = params
        optimizer = torch.optim.Adam(params, lr=lr)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            mapped = torch.relu(knowledge[targets[idx]] @ w1 + b1) @ w2 + b2
            if output_relu:
                mapped = torch.relu(mapped)
            fit_term = (mapped - features[idx]).pow(2).sum(dim=1).mean()
            return fit_term + lam * sum(p.pow(2).sum() for p in params)

        result = optimize(params, batch_loss, lambda: batches(n, batch_size, generator), optimizer, epochs=epochs,
                          desc="DEM")
        self.loss_curve_: list[float] = list(result.epoch_losses)
        self.W1_, self.b1_, self.W2_, self.b2_ = (p.detach().double().numpy().copy() for p in params)
        self.output_relu_ = output_relu
        logger.debug("DEM fitted: hidden %d, final loss %.4g", hidden, self.loss_curve_[-1])

    def embed_classes(self, S: np.ndarray) -> np.ndarray:
        """Map class vectors into the feature space.

        Args:
            S: ``[K, d]`` class vectors.

        Returns:
            ``[K, D]`` float64 prototypes.
        """
        self._check_fitted()
        _, S = self._validate_predict(np.zeros((0, self.n_features_in_)), S)
        return self._embed(S)

    def _embed(self, S: np.ndarray) -> np.ndarray:
        out = np.maximum(S @ self.W1_ + self.b1_, 0.0) @ self.W2_ + self.b2_
        return np.maximum(out, 0.0) if self.output_relu_ else out

    def _scores(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        prototypes = self._embed(S)
        if self.metric == "cosine":
            return cosine_similarity(X, prototypes)
        if self.metric == "euclidean":
            sq_dist = (
                np.sum(X * X, axis=1, keepdims=True)
                - 2.0 * X @ prototypes.T
                + np.sum(prototypes * prototypes, axis=1)[None, :]
            )
            return -np.maximum(sq_dist, 0.0)
        raise ConfigError(f"`metric` must be one of {list(_METRICS)}, got {self.metric!r}")
