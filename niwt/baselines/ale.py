"""ALE: "Label-Embedding for Image Classification" (Akata, Perronnin, Harchaoui & Schmid, TPAMI 2016).

Bilinear compatibility ``F(x, c) = x W s_c`` with ``W`` ``[D, d]``, trained with a weighted approximate
ranking hinge loss. For a sample ``(x, y)`` and every other training class ``c``:

* margin violation ``ℓ_c = max(0, 1 + F(x, c) - F(x, y))``;
* ``r`` = number of classes with ``ℓ_c > 0`` (the rank of the true class, counting violators);
* loss ``= (β_r / r) Σ_c ℓ_c`` with ``β_k = Σ_{i ≤ k} 1/i`` (0 when ``r = 0``).

The rank weight is treated as a constant in the gradient. The loss is averaged over a mini-batch and
minimised with Adam (PyTorch, CPU, float32) by :func:`niwt.training.optimize`; all classes of a batch
are handled at once.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from niwt.baselines._base import (
    ZSLBaseline,
    check_int,
    non_negative_float,
    positive_float,
    single_torch_thread,
)
from niwt.training import batches, optimize

__all__ = ["ALE", "warp_loss"]

logger = logging.getLogger(__name__)


def warp_loss(scores: torch.Tensor, target: torch.Tensor, rank_weights: torch.Tensor) -> torch.Tensor:
    """Weighted approximate-ranking hinge loss, averaged over the batch.

    Args:
        scores: ``[B, C]`` compatibility of each sample with each training class.
        target: ``[B]`` int64 index of the true class.
        rank_weights: ``[C]`` ``β_k / k`` for ``k = 0 .. C-1`` (entry 0 unused).

    Returns:
        A scalar tensor.
    """
    true_score = scores.gather(1, target[:, None])
    margins = 1.0 + scores - true_score
    not_true = torch.ones_like(margins, dtype=torch.bool).scatter_(1, target[:, None], False)
    violations = torch.where(not_true, margins.clamp(min=0.0), torch.zeros_like(margins))
    rank = (violations > 0).sum(dim=1)
    weight = rank_weights[rank].detach()
    return (weight * violations.sum(dim=1)).mean()


class ALE(ZSLBaseline):
    """Attribute label embedding trained with a WARP-style ranking loss.

    Args:
        lr: Adam learning rate, > 0.
        epochs: passes over the training samples, >= 1.
        batch_size: samples per step, >= 1.
        weight_decay: L2 penalty coefficient handed to Adam, >= 0.
        random_state: seed of the initial ``W`` and of the sample order.

    Attributes:
        W_: ``[D, d]`` float64 compatibility matrix.
        loss_curve_: mean training loss of every epoch.
        classes_, n_features_in_, n_knowledge_in_: see :class:`ZSLBaseline`.
    """

    def __init__(
        self,
        *,
        lr: float = 1e-3,
        epochs: int = 50,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state

    def _fit(self, X: np.ndarray, S_y: np.ndarray, S_train: np.ndarray, y_train: np.ndarray) -> None:
        with single_torch_thread():
            self._train(X, S_train, y_train)

    def _train(self, X: np.ndarray, S_train: np.ndarray, y_train: np.ndarray) -> None:
        lr = positive_float("lr", self.lr)
        epochs = check_int("epochs", self.epochs, 1)
        batch_size = check_int("batch_size", self.batch_size, 1)
        weight_decay = non_negative_float("weight_decay", self.weight_decay)
        seed = check_int("random_state", self.random_state, 0)

        generator = torch.Generator().manual_seed(seed)
        features = torch.from_numpy(X).float()
        knowledge = torch.from_numpy(S_train).float()
        targets = torch.from_numpy(y_train)
        n, dim_x = features.shape
        n_classes, dim_s = knowledge.shape
        harmonic = torch.cumsum(1.0 / torch.arange(1, n_classes + 1, dtype=torch.float32), 0)
        rank_weights = torch.zeros(n_classes)
        rank_weights[1:] = harmonic[: n_classes - 1] / torch.arange(1, n_classes, dtype=torch.float32)

        init = torch.randn(dim_x, dim_s, generator=generator) / np.sqrt(dim_x * dim_s)
        weight = init.requires_grad_(True)
        optimizer = torch.optim.Adam([weight], lr=lr, weight_decay=weight_decay)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            return warp_loss(features[idx] @ weight @ knowledge.T, targets[idx], rank_weights)

        result = optimize([weight], batch_loss, lambda: batches(n, batch_size, generator), optimizer, epochs=epochs,
                          desc="ALE")
        self.loss_curve_: list[float] = list(result.epoch_losses)
        self.W_ = weight.detach().double().numpy().copy()
        logger.debug("ALE fitted: W %s, final loss %.4g", self.W_.shape, self.loss_curve_[-1])

    def _scores(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        return X @ self.W_ @ S.T
