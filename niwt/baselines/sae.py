"""SAE: "Semantic Autoencoder for Zero-Shot Learning" (Kodirov, Xiang & Gong, CVPR 2017).

A linear encoder ``W`` ``[d, D]`` maps a feature to its class vector and its transpose decodes the class
vector back to the feature. With features as columns, ``Xc`` ``[D, N]``, and the class vector of every
sample as columns, ``Sc`` ``[d, N]``, the objective ``‖Xc - Wᵀ Sc‖² + λ ‖W Xc - Sc‖²`` is minimised
exactly by the solution of the Sylvester equation

    ``(Sc Scᵀ) W + W (λ Xc Xcᵀ) = (1 + λ) Sc Xcᵀ``,

here written for the row-major arrays of the library (``X`` ``[N, D]``, ``S_y`` ``[N, d]``) as
``A W + W B = C`` with ``A = S_yᵀ S_y``, ``B = λ XᵀX``, ``C = (1 + λ) S_yᵀ X``.

Both ``A`` and ``B`` are symmetric positive semi-definite, so the equation is solved exactly through
their eigendecompositions ``A = P diag(a) Pᵀ``, ``B = Q diag(b) Qᵀ``: with ``C' = Pᵀ C Q``,
``W = P (C' / (a_i + b_j)) Qᵀ``. This is the Bartels-Stewart method specialised to symmetric
matrices (the Schur forms are diagonal) and, for ``D = 2048`` features, far faster than the general
:func:`scipy.linalg.solve_sylvester`. A pair with ``a_i + b_j = 0`` (both matrices singular: more
knowledge dimensions than trained classes *and* more feature dimensions than samples) makes the
solution non-unique; the equation is still consistent there (``C'_ij = 0``) and the minimum-norm
solution, with those components set to 0, is returned.

Scoring:

* ``"s2f"`` (default): decode each class vector to feature space (``s W``, ``[K, D]``) and score by the
  cosine similarity with the image feature;
* ``"f2s"``: encode each image (``x Wᵀ``, ``[M, d]``) and score by the cosine similarity with the class
  vectors.

``mode`` is read when scoring, so both variants can be evaluated from one fit.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

from niwt.baselines._base import ZSLBaseline, cosine_similarity, positive_float
from niwt.errors import ConfigError

__all__ = ["SAE", "solve_symmetric_sylvester"]

logger = logging.getLogger(__name__)

_MODES = ("s2f", "f2s")


def solve_symmetric_sylvester(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Minimum-norm solution of ``a W + W b = c`` for symmetric positive semi-definite ``a`` and ``b``.

    Args:
        a: ``[p, p]`` symmetric PSD matrix.
        b: ``[q, q]`` symmetric PSD matrix.
        c: ``[p, q]`` right-hand side.

    Returns:
        ``[p, q]`` solution ``W``; components where ``a_i + b_j`` vanishes (relative to the largest
        eigenvalue) are set to 0.
    """
    eig_a, vec_a = scipy.linalg.eigh(a)
    eig_b, vec_b = scipy.linalg.eigh(b)
    denom = np.maximum(eig_a, 0.0)[:, None] + np.maximum(eig_b, 0.0)[None, :]
    scale = max(float(np.abs(eig_a).max(initial=0.0)), float(np.abs(eig_b).max(initial=0.0)), 1e-300)
    tol = scale * max(a.shape[0], b.shape[0]) * np.finfo(np.float64).eps
    rotated = vec_a.T @ c @ vec_b
    singular = denom <= tol
    if singular.any():
        logger.debug("Sylvester equation singular in %d of %d components; using the minimum-norm solution",
                     int(singular.sum()), singular.size)
    rotated = np.where(singular, 0.0, rotated / np.where(singular, 1.0, denom))
    return vec_a @ rotated @ vec_b.T


class SAE(ZSLBaseline):
    """Semantic autoencoder with a closed-form (Sylvester) solution.

    Args:
        lam: ``λ``, weight of the encoding term relative to the decoding term, > 0.
        mode: ``"s2f"`` (compare in feature space) or ``"f2s"`` (compare in knowledge space).

    Attributes:
        W_: ``[d, D]`` encoder (its transpose is the decoder).
        classes_, n_features_in_, n_knowledge_in_: see :class:`ZSLBaseline`.
    """

    def __init__(self, *, lam: float = 1.0, mode: str = "s2f") -> None:
        self.lam = lam
        self.mode = mode

    def _fit(self, X: np.ndarray, S_y: np.ndarray, S_train: np.ndarray, y_train: np.ndarray) -> None:
        lam = positive_float("lam", self.lam)
        if self.mode not in _MODES:
            raise ConfigError(f"`mode` must be one of {list(_MODES)}, got {self.mode!r}")
        self.W_ = solve_symmetric_sylvester(S_y.T @ S_y, lam * (X.T @ X), (1.0 + lam) * (S_y.T @ X))
        logger.debug("SAE fitted: W %s, lam=%g", self.W_.shape, lam)

    def _scores(self, X: np.ndarray, S: np.ndarray) -> np.ndarray:
        if self.mode == "f2s":
            return cosine_similarity(X @ self.W_.T, S)
        if self.mode == "s2f":
            return cosine_similarity(X, S @ self.W_)
        raise ConfigError(f"`mode` must be one of {list(_MODES)}, got {self.mode!r}")
