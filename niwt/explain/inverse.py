r"""Neuron importance -> domain knowledge: the inverse of NIWT's map, used to explain in words.

Fitted on the same per-image pairs as :class:`niwt.mapping.ImportanceMapper`, the other way round:
the input is an image's importance vector :math:`\alpha_i` (L2-normalised with ``normalize``), the
target the knowledge vector :math:`k_{c_i}` of its class. With the cosine loss

.. math:: L = \frac{1}{B}\sum_i \left(1 - \cos\big(g(\hat\alpha_i), k_{c_i}\big)\right).

The epoch is chosen by the mean Spearman rank correlation, over ``n_holdout`` held-out seen
classes, between :math:`g` of the class's observed importance (the mean of its L2-normalised
per-image importances) and the class's knowledge vector (:func:`niwt.mapping.mean_spearman`); with
``refit`` the map is then retrained on every class for that many epochs: the routine both maps
share (:func:`niwt.mapping.fit_held_out`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from torch import nn

from niwt.checks import as_labels, as_matrix
from niwt.errors import ConfigError, DataError, NotFittedError
from niwt.mapping import MAPPING_MODELS, build_map, class_mean_importance, fit_held_out, mean_spearman
from niwt.seeding import seeded

__all__ = ["INVERSE_LOSSES", "InverseSettings", "InverseConfig", "InverseMapper"]

log = logging.getLogger(__name__)

INVERSE_LOSSES: tuple[str, ...] = ("cosine", "mse")
"""Losses of the inverse map: ``"cosine"`` (as the forward map) and ``"mse"``."""

_INTS = {"hidden": 1, "epochs": 0, "batch_size": 1, "n_holdout": 0, "random_state": 0}
_FLOATS = {"lr": False, "weight_decay": True}  # name -> zero allowed


@dataclass(frozen=True)
class InverseSettings:
    """The settings of the inverse map importance -> knowledge, declared once: the run config's
    ``[explain]`` section is this record (:class:`niwt.config.ExplainConfig`), and
    :class:`InverseConfig` adds the seed. Checked at construction.

    Attributes:
        model: "linear" or "mlp" (one hidden ReLU layer).
        hidden: hidden width of the MLP.
        lr: Adam learning rate.
        epochs: maximum epochs; the best by held-out rank correlation is kept.
        batch_size: images per step.
        weight_decay: Adam weight decay.
        n_holdout: seen classes held out to choose the epoch (0 disables selection; a run caps it at
            the number of classes - 1).
        refit: retrain on every class for the chosen number of epochs.
        loss: "cosine" or "mse".
        normalize: L2-normalise every input importance vector before the map (then the spatial
            reduction and the scale of the importances do not matter, and one-hot vectors are valid inputs).
    """

    model: str = "linear"
    hidden: int = 256
    lr: float = 1e-3
    epochs: int = 150
    batch_size: int = 64
    weight_decay: float = 0.0
    n_holdout: int = 5
    refit: bool = True
    loss: str = "cosine"
    normalize: bool = True

    def _where(self, name: str) -> str:
        return f"{type(self).__name__}.{name}"

    def __post_init__(self) -> None:
        if self.model not in MAPPING_MODELS:
            raise ConfigError(f"{self._where('model')} must be one of {list(MAPPING_MODELS)}, got {self.model!r}")
        if self.loss not in INVERSE_LOSSES:
            raise ConfigError(f"{self._where('loss')} must be one of {list(INVERSE_LOSSES)}, got {self.loss!r}")
        for name, minimum in _INTS.items():
            value = getattr(self, name, 0)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
                raise ConfigError(f"{self._where(name)} must be an integer >= {minimum}, got {value!r}")
        for name, zero_ok in _FLOATS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value) or value < 0 \
                    or (value == 0 and not zero_ok):
                raise ConfigError(f"{self._where(name)} must be a finite number {'>=' if zero_ok else '>'} 0, "
                                  f"got {value!r}")
        for name in ("refit", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{self._where(name)} must be a bool, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class InverseConfig(InverseSettings):
    """Hyper-parameters of :class:`InverseMapper`: :class:`InverseSettings` and the seed.

    Attributes:
        random_state: seed of the class split, the initialisation and the batch order.
    """

    random_state: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> InverseConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`~niwt.errors.ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown InverseConfig key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)


def _build(config: InverseConfig, d_in: int, d_out: int) -> nn.Module:
    """A freshly initialised map, seeded by ``config.random_state`` without touching the global generator."""
    with seeded(config.random_state):
        return build_map(config.model, d_in, d_out, config.hidden)


def _loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "cosine":
        return (1 - nn.functional.cosine_similarity(pred, target, dim=1, eps=1e-8)).mean()
    return ((pred - target) ** 2).sum(1).mean()


class InverseMapper:
    """Fit ``importance -> knowledge`` (scikit-learn conventions: ``fit`` returns self, then ``predict``).

    Args:
        config: the hyper-parameters (``InverseConfig()`` when ``None``).
        progress: show progress (see :mod:`niwt.progress`).

    Attributes (after fit):
        net_: the trained torch module (eval mode); best_epoch_: the chosen epoch count;
        val_spearman_: its held-out mean Spearman correlation (NaN without hold-out);
        history_: per epoch ``(train loss, held-out Spearman)``; holdout_classes_: the held-out
        rows of ``knowledge``; n_features_in_: K; n_outputs_: d.

    Example:
        >>> inv = InverseMapper(InverseConfig(epochs=50)).fit(alpha, knowledge[seen], labels)  # doctest: +SKIP
        >>> words = inv.predict(alpha_of_an_image)  # doctest: +SKIP
    """

    def __init__(self, config: InverseConfig | None = None, *, progress: bool = False) -> None:
        if config is not None and not isinstance(config, InverseConfig):
            raise ConfigError(f"`config` must be an InverseConfig or None, got {type(config).__name__}")
        self.config = config or InverseConfig()
        self.progress = progress

    def _inputs(self, importances: np.ndarray) -> np.ndarray:
        if not self.config.normalize:
            return importances
        return importances / np.maximum(np.linalg.norm(importances, axis=1, keepdims=True), 1e-12)

    def fit(self, importances: object, knowledge: object, labels: object) -> InverseMapper:
        """Fit the map.

        Args:
            importances: ``[N, K]`` per-image importance vectors (of each image's own class).
            knowledge: ``[C, d]`` class vectors.
            labels: ``[N]`` row of ``knowledge`` for each image.

        Raises:
            DataError: for shapes that disagree, non-finite values, labels outside the rows of
                ``knowledge``, or a hold-out that leaves no class to train on.
        """
        cfg = self.config
        importances = as_matrix("importances", importances).astype(np.float32)
        knowledge = as_matrix("knowledge", knowledge).astype(np.float32)
        labels = as_labels("labels", labels, length=importances.shape[0], n_classes=knowledge.shape[0])
        if labels.size == 0:
            raise DataError("`importances` is empty: fitting needs at least one image")
        classes = np.unique(labels)
        if cfg.n_holdout and cfg.n_holdout >= classes.size:
            raise DataError(f"InverseConfig.n_holdout={cfg.n_holdout} leaves no class to train on: the labels "
                            f"name {classes.size} classes")
        x = torch.from_numpy(self._inputs(importances).astype(np.float32))
        k = torch.from_numpy(knowledge)
        y = torch.from_numpy(labels)

        def batch_loss(net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            return _loss(cfg.loss, net(x[idx]), k[y[idx]])

        def held_out_score(hold: np.ndarray) -> Callable[[nn.Module], float]:
            observed = torch.from_numpy(self._inputs(class_mean_importance(importances, labels, hold))
                                        .astype(np.float32))
            return lambda net: mean_spearman(net(observed).numpy(), knowledge[hold])

        fit = fit_held_out(lambda: _build(cfg, x.shape[1], k.shape[1]), batch_loss, labels, held_out_score,
                           n_holdout=cfg.n_holdout, epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                           batch_size=cfg.batch_size, refit=cfg.refit, random_state=cfg.random_state,
                           progress=self.progress, desc="inverse map")
        fit.fitted(self, "inverse map")
        self.n_features_in_, self.n_outputs_ = importances.shape[1], knowledge.shape[1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("This InverseMapper instance is not fitted yet. Call 'fit' with appropriate "
                                 "arguments (or load one with 'from_state') before using this estimator.")

    def predict(self, importances: object) -> np.ndarray:
        """Predicted knowledge ``[M, d]`` for importance vectors ``[M, K]`` (float32).

        Raises:
            NotFittedError: before :meth:`fit`.
            DataError: for a matrix with another number of columns than the fitted K, or non-finite values.
        """
        self._check_fitted()
        x = as_matrix("importances", importances, cols=self.n_features_in_)
        with torch.no_grad():
            return self.net_(torch.from_numpy(self._inputs(x).astype(np.float32))).numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted tensors, for :func:`safetensors.torch.save_file` (with :meth:`metadata`).

        Keys: ``net.<parameter>`` for the map, ``holdout_classes`` and ``history`` (``[E, 2]``).
        """
        self._check_fitted()
        state = {f"net.{n}": v.detach().contiguous().clone() for n, v in self.net_.state_dict().items()}
        state["holdout_classes"] = torch.as_tensor(np.asarray(self.holdout_classes_, np.int64))
        state["history"] = torch.tensor(self.history_, dtype=torch.float64).reshape(-1, 2)
        return state

    def metadata(self) -> dict[str, str]:
        """String metadata that goes with :meth:`state_dict`: the config and the fitted scalars."""
        self._check_fitted()
        return {"config": json.dumps(self.config.to_dict()), "n_features_in": str(self.n_features_in_),
                "n_outputs": str(self.n_outputs_), "best_epoch": str(self.best_epoch_),
                "val_spearman": repr(self.val_spearman_)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> InverseMapper:
        """A fitted map rebuilt from :meth:`state_dict` and :meth:`metadata`.

        Raises:
            DataError: for missing keys or tensors that do not fit the configured map.
        """
        try:
            config = InverseConfig.from_dict(json.loads(metadata["config"]))
            d_in, d_out = int(metadata["n_features_in"]), int(metadata["n_outputs"])
            best_epoch, val = int(metadata["best_epoch"]), float(metadata["val_spearman"])
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"`metadata` must hold config, n_features_in, n_outputs, best_epoch and "
                            f"val_spearman as written by InverseMapper.metadata(): {exc!r}") from None
        net = _build(config, d_in, d_out)
        weights = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:
            raise DataError(f"`state` does not fit a {config.model} map {d_in} -> {d_out}: {exc}") from None
        inv = cls(config)
        inv.net_ = net.eval()
        inv.n_features_in_, inv.n_outputs_ = d_in, d_out
        inv.best_epoch_, inv.val_spearman_ = best_epoch, val
        inv.holdout_classes_ = state.get("holdout_classes", torch.zeros(0, dtype=torch.int64)).numpy()
        history = state.get("history", torch.zeros(0, 2, dtype=torch.float64))
        inv.history_ = [(float(a), float(b)) for a, b in history.tolist()]
        return inv

    def save(self, path: str | Path) -> Path:
        """Write the fitted map as one safetensors file; returns the path."""
        from safetensors.torch import save_file

        path = Path(path)
        save_file(self.state_dict(), str(path), metadata=self.metadata())
        return path

    @classmethod
    def load(cls, path: str | Path) -> InverseMapper:
        """Read a map written by :meth:`save`."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        return cls.from_state(state, metadata)
