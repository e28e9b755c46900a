"""ESZSL: "An embarrassingly simple approach to zero-shot learning" (Romera-Paredes & Torr, ICML 2015).

A bilinear compatibility ``score(x, c) = x V s_c`` whose matrix ``V`` has a closed form. In the
row-major convention used here (one sample / class per row):

* ``X`` ``[N, D]`` training features, ``Y`` ``[N, C_tr]`` **one-hot {0, 1}** label matrix (the original
  paper uses a {-1, +1} matrix; with one-hot labels ``Y S_tr`` is simply the class vector of each
  sample), ``S_tr`` ``[C_tr, d]`` the vectors of the trained classes;
* ``V = (Xᵀ X + α I_D)⁻¹ Xᵀ Y S_tr (S_trᵀ S_tr + γ I_d)⁻¹``, ``V`` ``[D, d]``;
* scores ``X V Sᵀ`` ``[M, K]`` for any class vectors ``S`` ``[K, d]``.

This is the minimiser of ``‖X V S_trᵀ - Y‖² + γ‖X V‖² + α‖V S_trᵀ‖² + αγ‖V‖²`` (the paper's objective
with its third regulariser tied to ``α γ``). Features and class vectors are used as given.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

from niwt.baselines._base import ZSLBaseline, non_negative_float

__all__ = ["ESZSL"]

logger = logging.getLogger(__name__)


def _solve_regularised(gram: np.ndarray, reg: float, rhs: np.ndarray) -> np.ndarray:
    """Solve ``(gram + reg I) Z = rhs`` for symmetric PSD ``gram``; least squares when singular."""
    matrix = gram + reg * np.eye(gram.shape[0])
    if reg > 0:
        try:
            return scipy.linalg.solve(matrix, rhs, assume_a="pos")
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            logger.debug("Cholesky solve failed, falling back to least squares")
    return scipy.linalg.lstsq(matrix, rhs)[0]


class ESZSL(ZSLBaseline):
    """Closed-form bilinear zero-shot model.

    Args:
        alpha: ``α`` above, added to the feature Gram matrix ``XᵀX`` (penalises ``‖V S_trᵀ‖²``), >= 0.
        gamma: ``γ`` above, added to the knowledge Gram matrix ``S_trᵀS_tr`` (penalises ``‖X V‖²``),
            >= 0. With 0 and a singular Gram matrix the minimum-norm least-squares solution is used.

    Attributes:
        V_: ``[D, d]`` learned compatibility matrix.
        classes_, n_features_in_, n_knowledge_in_: see :class:`ZSLBaseline`.
    """

    def __init__(self, *, alpha: float = 1.0, gamma: float = 1.0) -> None:
        self.alpha = alpha
        self.gamma = gamma

    def _fit(self, X: np.ndarray, S_y: np.ndarray, S_train: np.ndarray, y_train: np.ndarray) -> None:
        alpha = non_negative_float("alpha", self.alpha)
        gamma = non_negative_float("gamma", self.gamma)
        # Xᵀ Y S_tr == Xᵀ S_y with one-hot Y: [D, d]
        middle = X.T @ S_y
        left = _solve_regularised(X.T @ X, alpha, middle)  # (XᵀX + αI)⁻¹ Xᵀ Y S_tr, [D, d]
        # right-multiplication by the symmetric inverse: V = ((S_trᵀS_tr + γI)⁻¹ leftᵀ)ᵀ
        self.V_ = _solve_regularised(S_train.T @ S_train, gamma, left.T).T
        logger.debug("ESZSL fitted: V %s, alpha=%g, gamma=%g", self.V_.shape, alpha, gamma)

    def _scores(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        return X @ self.V_ @ S.T
