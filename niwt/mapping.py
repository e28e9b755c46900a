r"""Domain knowledge -> neuron importance: the map NIWT learns on seen classes.

A linear map (or a one-hidden-layer MLP) :math:`f(k_c)` is trained so that it points in the
direction of every seen image's importance vector :math:`\alpha_i` of its class :math:`c_i`:

.. math:: L = \frac{1}{B}\sum_i \left(1 - \cos\big(f(k_{c_i}), \alpha_i\big)\right)

The epoch is chosen by the mean Spearman rank correlation, over ``n_holdout`` held-out seen
classes, between the predicted importance of a class and its observed importance (the mean of the
class's L2-normalised per-image importances). With ``refit`` the map is then retrained on every
seen class for that many epochs.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from niwt.checks import as_labels, as_matrix
from niwt.errors import ConfigError, DataError, NotFittedError
from niwt.seeding import seeded
from niwt.training import EpochEnd, batches, optimize

__all__ = ["MAPPING_MODELS", "ImportanceMapper", "HeldOutFit", "fit_held_out", "build_map", "class_mean_importance", "mean_spearman"]

log = logging.getLogger(__name__)

MAPPING_MODELS = ("linear", "mlp")


def class_mean_importance(importances: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised importance vectors of each class in ``classes``.

    An all-zero importance vector counts as a zero vector (it has no direction). A class whose
    vectors are all zero gets a zero row, with a ``UserWarning``: its rank correlation with any
    prediction is then 0.

    Args:
        importances: ``[N, K]`` per-image importance vectors.
        labels: ``[N]`` class of each image.
        classes: the classes to average, in the order of the result.

    Returns:
        ``[len(classes), K]`` float64 class means, never NaN.

    Raises:
        DataError: for a class of ``classes`` without any image.
    """
    importances = as_matrix("importances", importances)
    labels = as_labels("labels", labels, length=importances.shape[0])
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    norms = np.linalg.norm(importances, axis=1, keepdims=True)
    unit = np.divide(importances, norms, out=np.zeros_like(importances), where=norms > 0)
    empty = [int(c) for c in classes if not np.any(labels == c)]
    if empty:
        raise DataError(f"class(es) {empty[:10]} of `classes` have no image in `labels`; a class mean needs one")
    dead = [int(c) for c in classes if not np.any(norms[labels == c] > 0)]
    if dead:
        warnings.warn(f"class(es) {dead[:10]}: every importance vector is zero, so the class mean is zero "
                      f"(its rank correlation with any prediction is 0)", UserWarning, stacklevel=2)
    return np.stack([unit[labels == c].mean(0) for c in classes]) if classes.size else np.zeros((0, unit.shape[1]))


def _drop_zero_importances(importances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave out all-zero importance vectors (no direction to fit), with a warning naming how many.

    Raises:
        DataError: when every vector is zero (the importance layer gives no signal).
    """
    zero = ~np.any(importances != 0, axis=1)
    if not zero.any():
        return importances, labels
    if zero.all():
        raise DataError(f"all {zero.size} importance vectors in `importances` are zero: the importance layer gives "
                        f"no signal (dead units, or a layer the logits do not depend on); a map cannot be fitted")
    lost = sorted(set(labels[zero].tolist()) - set(labels[~zero].tolist()))
    warnings.warn(
        f"{int(zero.sum())} of {zero.size} importance vectors are all zero and are left out of the fit (they have "
        f"no direction)" + (f"; class(es) {lost[:10]} have no other image and are left out of the map's training"
                            if lost else ""),
        UserWarning, stacklevel=3,
    )
    return importances[~zero], labels[~zero]


def mean_spearman(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Mean over rows of the Spearman rank correlation between ``predicted[i]`` and ``observed[i]``."""
    rp = rankdata(predicted, axis=1)
    ro = rankdata(observed, axis=1)
    rp = rp - rp.mean(1, keepdims=True)
    ro = ro - ro.mean(1, keepdims=True)
    denom = np.sqrt((rp**2).sum(1) * (ro**2).sum(1))
    corr = np.where(denom > 0, (rp * ro).sum(1) / np.maximum(denom, 1e-12), 0.0)
    return float(corr.mean())


def build_map(kind: str, d_in: int, d_out: int, hidden: int) -> nn.Module:
    """A freshly initialised map ``d_in -> d_out`` of ``kind`` (drawn from torch's global generator)."""
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))
    raise ConfigError(f"`model` must be one of {list(MAPPING_MODELS)}, got {kind!r}")


@dataclass(frozen=True, eq=False)
class HeldOutFit:
    """What :func:`fit_held_out` made: the map, the chosen epoch count, its held-out mean Spearman
    correlation (NaN without hold-out), ``(train loss, held-out Spearman)`` per epoch, and the
    held-out classes."""

    net: nn.Module
    best_epoch: int
    val_spearman: float
    history: list[tuple[float, float]]
    holdout_classes: np.ndarray

    def fitted(self, estimator: object, name: str) -> None:
        """Set a map estimator's fitted attributes (``net_``, ``best_epoch_``, ``val_spearman_``,
        ``history_``, ``holdout_classes_``) from this fit, and log its choice as ``name``."""
        estimator.net_ = self.net.eval()
        estimator.best_epoch_, estimator.val_spearman_ = self.best_epoch, self.val_spearman
        estimator.history_, estimator.holdout_classes_ = self.history, self.holdout_classes
        log.info("%s: chose epoch %d, held-out Spearman %.3f", name, self.best_epoch, self.val_spearman)


def fit_held_out(build: Callable[[], nn.Module], batch_loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                 labels: np.ndarray, held_out_score: Callable[[np.ndarray], Callable[[nn.Module], float]], *,
                 n_holdout: int, epochs: int, lr: float, weight_decay: float, batch_size: int, refit: bool,
                 random_state: int, progress: bool = False, desc: str = "map") -> HeldOutFit:
    """The one fitting routine of both maps (knowledge -> importance and its inverse).

    ``n_holdout`` seen classes (drawn with ``random_state``) are held out; a map trained on the
    others is scored after every epoch by ``held_out_score(hold)(net)`` (a mean Spearman rank
    correlation), and the best epoch is kept; with ``refit`` a fresh map is then trained on every
    class for that many epochs. Every map starts from ``build()`` run on torch's global generator
    seeded by ``random_state`` (its state is restored afterwards); batches are drawn from one
    generator seeded by ``random_state`` that the hold-out draw starts.

    Args:
        build: a freshly initialised map.
        batch_loss: the loss of ``net`` on the examples at the given positions.
        labels: ``[N]`` class of every example.
        held_out_score: for the held-out classes, a function scoring a map on them.

    Raises:
        DataError: when ``n_holdout`` leaves no class to train on.
    """
    classes = np.unique(labels)
    if n_holdout and n_holdout >= classes.size:
        raise DataError(f"`n_holdout`={n_holdout} leaves no class to train on ({classes.size} classes)")
    gen = torch.Generator().manual_seed(random_state)
    history: list[tuple[float, float]] = []

    def train(rows: np.ndarray, n_epochs: int, stage: str,
              on_epoch: Callable[[nn.Module, EpochEnd], None] | None) -> nn.Module:
        with seeded(random_state):
            net = build()
        params = list(net.parameters())
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        positions = torch.from_numpy(rows)
        if n_epochs:
            optimize(params, lambda idx: batch_loss(net, positions[idx]),
                     lambda: batches(rows.size, batch_size, gen), opt, epochs=n_epochs,
                     on_epoch=None if on_epoch is None else lambda end: on_epoch(net, end),
                     progress=progress, desc=stage)
        return net

    every = np.arange(labels.size)
    if not n_holdout:
        net = train(every, epochs, desc, lambda _net, end: history.append((end.loss, float("nan"))))
        return HeldOutFit(net.eval(), epochs, float("nan"), history, np.zeros(0, np.int64))
    perm = torch.randperm(classes.size, generator=gen).numpy()
    hold = np.sort(classes[perm[:n_holdout]])
    score_of = held_out_score(hold)
    best: dict[str, object] = {"score": -np.inf, "epoch": 0, "state": None}

    def on_epoch(net: nn.Module, end: EpochEnd) -> None:
        with torch.no_grad():
            score = score_of(net)
        history.append((end.loss, score))
        if score > best["score"]:
            best.update(score=score, epoch=end.epoch + 1, state={n: v.clone() for n, v in net.state_dict().items()})

    net = train(np.flatnonzero(~np.isin(labels, hold)), epochs, f"{desc} (hold-out)", on_epoch)
    best_epoch = int(best["epoch"])
    if refit:
        net = train(every, best_epoch, f"{desc} (refit)", None)
    elif best["state"] is not None:
        net.load_state_dict(best["state"])
    return HeldOutFit(net.eval(), best_epoch, float(best["score"]), history, hold)


class ImportanceMapper:
    """Fit ``knowledge -> importance`` (scikit-learn conventions: ``fit`` returns self).

    Args:
        model: ``"linear"`` or ``"mlp"``.
        hidden: hidden width of the MLP.
        lr: Adam learning rate.
        epochs: maximum number of epochs.
        batch_size: images per step.
        weight_decay: Adam weight decay.
        n_holdout: seen classes held out to choose the epoch (0 disables selection).
        refit: retrain on all classes for the chosen number of epochs.
        random_state: seed of the class split, the initialisation and the batch order.
        progress: show progress (see :mod:`niwt.progress`).

    Attributes (after fit):
        net_: the trained torch module; best_epoch_: chosen epoch count; val_spearman_: its held-out
        mean Spearman correlation; history_: per epoch ``(train loss, held-out Spearman)``;
        holdout_classes_: the held-out rows of ``knowledge``.
    """

    def __init__(self, model: str = "linear", hidden: int = 256, lr: float = 1e-3, epochs: int = 150,
                 batch_size: int = 64, weight_decay: float = 0.0, n_holdout: int = 5, refit: bool = True,
                 random_state: int = 0, progress: bool = False) -> None:
        self.model = model
        self.hidden = hidden
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.n_holdout = n_holdout
        self.refit = refit
        self.random_state = random_state
        self.progress = progress

    def fit(self, knowledge: np.ndarray, importances: np.ndarray, labels: np.ndarray) -> ImportanceMapper:
        """Fit the map.

        All-zero importance vectors have no direction to fit: they are left out, with a
        ``UserWarning``.

        Args:
            knowledge: ``[C, d]`` class vectors.
            importances: ``[N, K]`` per-image importance vectors.
            labels: ``[N]`` row of ``knowledge`` for each image.

        Returns:
            self.

        Raises:
            DataError: for malformed inputs, NaN, every importance vector zero, or ``n_holdout``
                leaving no class to train on.
        """
        knowledge = as_matrix("knowledge", knowledge).astype(np.float32)
        importances = as_matrix("importances", importances).astype(np.float32)
        labels = as_labels("labels", labels, length=importances.shape[0], n_classes=knowledge.shape[0])
        if knowledge.ndim != 2 or importances.ndim != 2:
            raise DataError(f"`knowledge` and `importances` must be 2-d, got {knowledge.shape} and {importances.shape}")
        if importances.shape[0] != labels.shape[0]:
            raise DataError(f"found {importances.shape[0]} importance vectors but {labels.shape[0]} labels")
        if labels.size == 0 or labels.min() < 0 or labels.max() >= knowledge.shape[0]:
            raise DataError(f"`labels` must index the {knowledge.shape[0]} rows of `knowledge`")
        for name, arr in (("knowledge", knowledge), ("importances", importances)):
            if not np.isfinite(arr).all():
                raise DataError(f"`{name}` holds NaN or infinite values")
        importances, labels = _drop_zero_importances(importances, labels)
        k = torch.from_numpy(knowledge)
        t = torch.from_numpy(importances)
        y = torch.from_numpy(labels)

        def batch_loss(net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            pred = net(k[y[idx]])
            return (1 - nn.functional.cosine_similarity(pred, t[idx], dim=1, eps=1e-8)).mean()

        def held_out_score(hold: np.ndarray) -> Callable[[nn.Module], float]:
            observed = class_mean_importance(importances, labels, hold)
            return lambda net: mean_spearman(net(k[torch.from_numpy(hold)]).numpy(), observed)

        fit = fit_held_out(lambda: build_map(self.model, k.shape[1], t.shape[1], self.hidden), batch_loss, labels,
                           held_out_score, n_holdout=self.n_holdout, epochs=self.epochs, lr=self.lr,
                           weight_decay=self.weight_decay, batch_size=self.batch_size, refit=self.refit,
                           random_state=self.random_state, progress=self.progress, desc="mapping")
        fit.fitted(self, "mapping")
        self.n_features_in_ = knowledge.shape[1]
        return self

    def predict(self, knowledge: np.ndarray) -> np.ndarray:
        """Predicted importance ``[M, K]`` for class vectors ``[M, d]``."""
        if not hasattr(self, "net_"):
            raise NotFittedError("This ImportanceMapper instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator.")
        knowledge = as_matrix("knowledge", knowledge, cols=self.n_features_in_).astype(np.float32)
        if knowledge.ndim != 2 or knowledge.shape[1] != self.n_features_in_:
            raise DataError(f"`knowledge` must be [M, {self.n_features_in_}], got {knowledge.shape}")
        with torch.no_grad():
            return self.net_(torch.from_numpy(knowledge)).numpy()

    _SETTINGS = ("model", "hidden", "lr", "epochs", "batch_size", "weight_decay", "n_holdout", "refit", "random_state")

    def save(self, path: str | Path) -> Path:
        """Write the fitted map as one safetensors file: the net's tensors, and as metadata its
        settings, input width and choice (epoch, held-out Spearman); returns the path."""
        from safetensors.torch import save_file

        if not hasattr(self, "net_"):
            raise NotFittedError("This ImportanceMapper instance is not fitted yet: nothing to save")
        path = Path(path)
        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        metadata = {"settings": json.dumps({k: getattr(self, k) for k in self._SETTINGS}),
                    "n_features_in": str(self.n_features_in_), "best_epoch": str(self.best_epoch_),
                    "val_spearman": repr(float(self.val_spearman_))}
        save_file(state, str(path), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | Path, *, model: str = "linear", hidden: int = 256) -> ImportanceMapper:
        """Read a map :meth:`save` wrote, ready to :meth:`predict`.

        ``model`` and ``hidden`` are only read for a file written before maps kept their settings
        (a run of an earlier niwt), whose config says them.

        Raises:
            DataError: a file whose tensors do not make a map of its settings (named).
        """
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        settings = json.loads(metadata["settings"]) if "settings" in metadata else {"model": model, "hidden": hidden}
        mapper = cls(**settings)
        first = "weight" if mapper.model == "linear" else "0.weight"
        last = "weight" if mapper.model == "linear" else "2.weight"
        if first not in state or last not in state:
            raise DataError(f"{path} does not hold a {mapper.model!r} map (tensors {sorted(state)})")
        net = build_map(mapper.model, int(state[first].shape[1]), int(state[last].shape[0]), mapper.hidden)
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise DataError(f"{path} does not hold a {mapper.model!r} map: {err}") from None
        mapper.net_ = net.eval()
        mapper.n_features_in_ = int(metadata.get("n_features_in", state[first].shape[1]))
        if "best_epoch" in metadata:
            mapper.best_epoch_, mapper.val_spearman_ = int(metadata["best_epoch"]), float(metadata["val_spearman"])
        return mapper
