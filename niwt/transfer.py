r"""Importance -> unseen classifier rows: NIWT's weight transfer.

New rows :math:`W_u` are appended to the classifier and optimised so that the importance the
network itself assigns to unseen class u (on generic pool images) points where the mapping
predicted, :math:`\tau_u`:

.. math:: L(W_u) = \frac{1}{B}\sum_b \Big(1 - \cos\big(\tilde\alpha_b(W_u), \tau_{u_b}\big)\Big)
   + \frac{\Lambda}{2}\,\lVert W_u - \bar w_S \rVert^2

where :math:`\tilde\alpha_b` is the importance (:mod:`niwt.importance`) of the unseen logit
:math:`u_b` assigned to pool image b, and :math:`\bar w_S` the mean seen row. Only the unseen rows
change; the backbone and the seen rows are frozen, and the network runs in eval mode.

Two exact paths compute the same loss and gradient:

* ``mode="fast"`` (default): the pool's activations at the importance layer are computed once
  (for heads that start with pooling + linear, even their first linear layer is applied once);
  each step runs only the part of the network after that, and all unseen classes share one
  pass (their rows enter the logits linearly, so one backward of the summed assigned logits gives
  every pair's importance, taken as the gradient w.r.t. a per-channel shift of the activations).
* ``mode="reference"``: the naive path, the full network from pixels, one unseen class at a time.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from niwt.errors import ConfigError, DataError, NotFittedError
from niwt.importance import eval_mode, importance_from_activations, neuron_importance
from niwt.models.backbones import Backbone
from niwt.training import EarlyStopping

__all__ = ["UnseenWeightOptimizer", "init_unseen_weights", "transfer_loss", "PairSampler"]

log = logging.getLogger(__name__)

INITS = ("seen_centered", "mean", "zeros")
MODES = ("fast", "reference")


def init_unseen_weights(seen_weight: torch.Tensor, n_unseen: int, init: str = "seen_centered",
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Initial unseen rows ``[U, D]``.

    ``seen_centered``: each dimension d drawn from N(mean_d, std_d²) of the seen rows (population
    std); ``mean``: every row the mean seen row; ``zeros``.
    """
    mu = seen_weight.mean(0)
    if init == "seen_centered":
        sigma = seen_weight.std(0, unbiased=False)
        noise = torch.randn(n_unseen, seen_weight.shape[1], generator=generator, dtype=seen_weight.dtype)
        return mu + sigma * noise
    if init == "mean":
        return mu.expand(n_unseen, -1).clone()
    if init == "zeros":
        return torch.zeros(n_unseen, seen_weight.shape[1], dtype=seen_weight.dtype)
    raise ConfigError(f"`init` must be one of {list(INITS)}, got {init!r}")


def transfer_loss(alpha: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, mean_seen: torch.Tensor,
                  lam: float, n_pairs: int) -> torch.Tensor:
    """``sum_b (1 - cos(alpha_b, target_b)) / n_pairs + lam/2 ||weight - mean_seen||²``."""
    cos = nn.functional.cosine_similarity(alpha, target, dim=1, eps=1e-12)
    return (1 - cos).sum() / n_pairs + 0.5 * lam * ((weight - mean_seen) ** 2).sum()


class PairSampler:
    """Batches of (pool image, unseen class) pairs.

    Every epoch walks the pool in a new random order and assigns the classes in turn from a random
    offset, so each class gets an equal share of the pool and each image sees every class over time.
    """

    def __init__(self, n_pool: int, n_classes: int, batch_size: int, generator: torch.Generator) -> None:
        self.n_pool, self.n_classes, self.batch_size, self.gen = n_pool, n_classes, batch_size, generator

    def __iter__(self):
        while True:
            order = torch.randperm(self.n_pool, generator=self.gen)
            offset = int(torch.randint(self.n_classes, (1,), generator=self.gen))
            classes = (torch.arange(self.n_pool) + offset) % self.n_classes
            for start in range(0, self.n_pool, self.batch_size):
                yield order[start : start + self.batch_size], classes[start : start + self.batch_size]


class _UnseenHead(nn.Module):
    """The backbone with its logits restricted to the unseen rows ``weight`` (reference path)."""

    def __init__(self, backbone: Backbone, weight: torch.Tensor) -> None:
        super().__init__()
        self.backbone = backbone
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(self.backbone.forward_features(x)) @ self.weight.T


class UnseenWeightOptimizer:
    """Learn unseen classifier rows from predicted importances (scikit-learn conventions).

    Args:
        lam: Λ, strength of the L2 pull towards the mean seen row.
        lr: Adam learning rate.
        batch_size: (pool image, class) pairs per step.
        max_steps: hard cap on optimisation steps.
        patience, tol: stop after ``patience`` steps without a relative loss improvement of ``tol``.
        init: ``"seen_centered"``, ``"mean"`` or ``"zeros"``.
        mode: ``"fast"`` or ``"reference"`` (see the module docstring).
        reduction: spatial reduction of the importance (must match the targets').
        random_state: seed of the initialisation and the pair order.
        progress: show a progress bar.

    Attributes (after fit):
        weights_: ``[U, D]`` learned rows; init_weights_: their start; history_: loss per step;
        n_steps_: steps taken; stopped_early_: whether the patience rule stopped it.
    """

    def __init__(self, lam: float = 1e-3, lr: float = 1e-2, batch_size: int = 64, max_steps: int = 400,
                 patience: int = 40, tol: float = 0.01, init: str = "seen_centered", mode: str = "fast",
                 reduction: str = "sum", random_state: int = 0, progress: bool = False) -> None:
        self.lam = lam
        self.lr = lr
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.patience = patience
        self.tol = tol
        self.init = init
        self.mode = mode
        self.reduction = reduction
        self.random_state = random_state
        self.progress = progress

    def _check(self, model: Backbone, pool: torch.Tensor, targets: torch.Tensor) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"`mode` must be one of {list(MODES)}, got {self.mode!r}")
        if self.init not in INITS:
            raise ConfigError(f"`init` must be one of {list(INITS)}, got {self.init!r}")
        if self.lam < 0 or self.lr <= 0 or self.batch_size <= 0 or self.max_steps <= 0:
            raise ConfigError(
                f"need lam >= 0, lr > 0, batch_size > 0, max_steps > 0; got lam={self.lam}, lr={self.lr}, "
                f"batch_size={self.batch_size}, max_steps={self.max_steps}"
            )
        if not isinstance(model, Backbone):
            raise ConfigError(f"`model` must be a niwt Backbone, got {type(model).__name__}")
        if pool.ndim != 4 or pool.shape[0] == 0:
            raise DataError(f"`pool` must be a non-empty image tensor [P, 3, H, W], got {tuple(pool.shape)}")
        if targets.ndim != 2 or targets.shape[0] == 0:
            raise DataError(f"`targets` must be [U, K] predicted importances, got {tuple(targets.shape)}")
        if not torch.isfinite(targets).all():
            raise DataError("`targets` holds NaN or infinite values")

    @torch.no_grad()
    def _cache(self, model: Backbone, pool: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Per pool image, what the head needs (``model.head_cache`` of the importance activations)."""
        parts = []
        with eval_mode(model):
            for i in range(0, pool.shape[0], batch):
                parts.append(model.head_cache(model.forward_features(pool[i : i + batch])))
        return torch.cat(parts)

    def _step_fast(self, model: Backbone, cache: torch.Tensor, idx: torch.Tensor, cls: torch.Tensor,
                   weight: torch.Tensor, tau: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        # A per-channel shift of the activations at 0: its gradient is the spatially summed importance.
        shift = cache.new_zeros(idx.numel(), self.channels_, requires_grad=True)
        logits = model.forward_head_shifted(cache[idx], shift) @ weight.T  # [B, U]: all classes in one pass
        alpha = importance_from_activations(shift, logits, cls, "sum", create_graph=True)
        if self.reduction == "mean":
            alpha = alpha / self.positions_
        return transfer_loss(alpha, tau[cls], weight, mu, self.lam, idx.numel())

    def _step_reference(self, model: Backbone, pool: torch.Tensor, idx: torch.Tensor, cls: torch.Tensor,
                        weight: torch.Tensor, tau: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        head = _UnseenHead(model, weight)
        layer = model.get_submodule(model.importance_layer)
        cos_sum = weight.new_zeros(())
        for u in torch.unique(cls).tolist():  # one class at a time, full network from pixels
            sel = idx[cls == u]
            alpha = neuron_importance(head, layer, pool[sel], torch.full((sel.numel(),), u),
                                      self.reduction, create_graph=True)
            cos = nn.functional.cosine_similarity(alpha, tau[u].expand_as(alpha), dim=1, eps=1e-12)
            cos_sum = cos_sum + (1 - cos).sum()
        return cos_sum / idx.numel() + 0.5 * self.lam * ((weight - mu) ** 2).sum()

    def fit(self, model: Backbone, pool: torch.Tensor, targets: torch.Tensor | np.ndarray) -> UnseenWeightOptimizer:
        """Optimise unseen rows for ``targets`` (``[U, K]`` predicted importances) on ``pool`` images.

        The model is not modified; call :meth:`apply` to install the learned rows.
        """
        ref = model.classifier.weight
        tau = torch.as_tensor(targets).to(ref.dtype)
        self._check(model, pool, tau)
        pool = pool.to(ref.dtype)
        gen = torch.Generator().manual_seed(self.random_state)
        seen = model.classifier.weight.detach()
        mu = seen.mean(0)
        weight = init_unseen_weights(seen, tau.shape[0], self.init, gen).requires_grad_(True)
        self.init_weights_ = weight.detach().clone()
        optimizer = torch.optim.Adam([weight], lr=self.lr)
        stopper = EarlyStopping(self.patience, self.tol)
        with torch.no_grad(), eval_mode(model):
            probe = model.forward_features(pool[:1])  # [1, K, h, w]
        self.channels_, self.positions_ = probe.shape[1], probe[0, 0].numel()
        if self.channels_ != tau.shape[1]:
            raise DataError(
                f"`targets` have {tau.shape[1]} dimensions but the importance layer has {self.channels_} channels"
            )
        cache = self._cache(model, pool) if self.mode == "fast" else None
        history: list[float] = []
        sampler = iter(PairSampler(pool.shape[0], tau.shape[0], self.batch_size, gen))
        self.stopped_early_ = False
        bar = tqdm(range(self.max_steps), desc=f"transfer ({self.mode})", disable=not self.progress, leave=False)
        with eval_mode(model), torch.enable_grad():
            for _ in bar:
                idx, cls = next(sampler)
                if cache is not None:
                    loss = self._step_fast(model, cache, idx, cls, weight, tau, mu)
                else:
                    loss = self._step_reference(model, pool, idx, cls, weight, tau, mu)
                (grad,) = torch.autograd.grad(loss, weight)
                weight.grad = grad
                optimizer.step()
                value = float(loss.detach())
                if not np.isfinite(value):
                    raise DataError(f"transfer loss became {value} at step {len(history)}; lower `lr`")
                history.append(value)
                bar.set_postfix(loss=f"{value:.4f}")
                if stopper.step(value):
                    self.stopped_early_ = True
                    break
        self.weights_ = weight.detach().clone()
        self.history_ = history
        self.n_steps_ = len(history)
        log.info("transfer: %d steps, final loss %.4f, |W_u|/|W_s| = %.3f", self.n_steps_, history[-1],
                 float(self.weights_.norm(dim=1).mean() / seen.norm(dim=1).mean()))
        return self

    def apply(self, model: Backbone) -> Backbone:
        """Install the learned rows as the model's unseen rows (bias 0) and return the model."""
        if not hasattr(self, "weights_"):
            raise NotFittedError("This UnseenWeightOptimizer instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator.")
        model.classifier.set_unseen(self.weights_)
        return model
