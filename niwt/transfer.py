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
  (for heads that start with pooling + linear, even their first linear layer is applied once; for
  torchvision ResNets, the units after it are run once and their ReLU masks kept, so a step
  needs only transposed convolutions, :mod:`niwt.models.fast_resnet`);
  each step runs only the part of the network after that, and all unseen classes share one
  pass (their rows enter the logits linearly, so one backward of the summed assigned logits gives
  every pair's importance, taken as the gradient w.r.t. a per-channel shift of the activations).
* ``mode="reference"``: the naive path, the full network from pixels, one unseen class at a time.

Public hooks for tools that time or inspect the transfer (e.g. ``benchmarks/transfer.py``):
:meth:`UnseenWeightOptimizer.pool_cache` (the fast path's one-off work),
:meth:`UnseenWeightOptimizer.prepare` and :meth:`UnseenWeightOptimizer.batch_loss` (the loss of any
batch of pairs, in either mode), and the ``cache`` and ``on_step`` arguments of
:meth:`UnseenWeightOptimizer.fit`.

A :class:`PoolCache` is that one-off work with the layout it came from (channels, positions),
saved with the run: :meth:`UnseenWeightOptimizer.fit_cached` learns new rows from it alone,
without the pool's images (how a finished run is taught a class, :mod:`niwt.runs`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from niwt.checks import as_image_batch, as_matrix
from niwt.device import to_device
from niwt.errors import ConfigError, DataError, NotFittedError, RunDirectoryError
from niwt.importance import importance_from_activations, neuron_importance
from niwt.layers import channel_count, eval_mode, position_count, token_prefix
from niwt.models.backbones import Backbone
from niwt.seeding import stage_seed
from niwt.training import EarlyStopping, StepEnd, optimize

__all__ = ["balance_unseen", "UnseenWeightOptimizer", "TransferProblem", "PoolCache", "class_seeds", "init_unseen_weights",
           "transfer_loss", "PairSampler"]

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
        return mu + sigma * noise.to(seen_weight.device)  # drawn on the CPU: the same rows on every device
    if init == "mean":
        return mu.expand(n_unseen, -1).clone()
    if init == "zeros":
        return torch.zeros(n_unseen, seen_weight.shape[1], dtype=seen_weight.dtype, device=seen_weight.device)
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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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


@dataclass(frozen=True)
class TransferProblem:
    """The fixed inputs of every transfer step, from :meth:`UnseenWeightOptimizer.prepare`.

    Attributes:
        model: the backbone (never modified; run it in eval mode).
        pool: ``[P, 3, H, W]`` pool images, in the classifier's dtype.
        targets: ``[U, K]`` predicted importances, in the classifier's dtype.
        mean_seen: ``[D]`` the mean seen classifier row.
        channels: K, the channels of the importance layer.
        positions: h * w, its spatial positions (the divisor of ``reduction="mean"``).
        cache: ``[P, ...]`` what the fast path needs per pool image (:meth:`UnseenWeightOptimizer.pool_cache`),
            or None (reference mode).
        pool: None for a problem made from a :class:`PoolCache` alone (fast path only).
    """

    model: Backbone
    pool: torch.Tensor | None
    targets: torch.Tensor
    mean_seen: torch.Tensor
    channels: int
    positions: int
    cache: torch.Tensor | None


@dataclass(frozen=True)
class PoolCache:
    """The fast path's one-off work on a pool (:meth:`UnseenWeightOptimizer.pool_cache`), with
    the importance layer's layout it needs: enough to learn new rows without the pool's images.

    Attributes:
        cache: ``[P, ...]`` one entry per pool image (``model.head_cache`` of its activations).
        channels: K, the importance layer's channels (the width of a target).
        positions: its spatial positions or patch tokens (the divisor of ``reduction="mean"``).
    """

    cache: torch.Tensor
    channels: int
    positions: int

    @classmethod
    def of(cls, model: Backbone, pool: torch.Tensor, batch_size: int = 64) -> PoolCache:
        """The cache of ``pool`` (``[P, 3, H, W]`` images) in ``model``, in the classifier's dtype."""
        if not isinstance(model, Backbone):
            raise ConfigError(f"`model` must be a niwt Backbone, got {type(model).__name__}")
        ref = model.classifier.weight
        pool = as_image_batch("pool", pool, channels=getattr(model, "in_channels", 3),
                              size=getattr(model, "image_size", None), dtype=ref.dtype)
        if pool.ndim != 4 or pool.shape[0] == 0:
            raise DataError(f"`pool` must be a non-empty image tensor [P, 3, H, W], got {tuple(pool.shape)}")
        channels, positions = _layout(model, pool)
        return cls(UnseenWeightOptimizer.pool_cache(model, pool, batch_size), channels, positions)

    @property
    def nbytes(self) -> int:
        return self.cache.numel() * self.cache.element_size()

    def save(self, path: Path) -> None:
        """Write it as safetensors (the layout in the file's metadata)."""
        save_file({"cache": self.cache.detach().cpu().contiguous()}, str(path),
                  metadata={"channels": str(self.channels), "positions": str(self.positions)})

    @classmethod
    def load(cls, path: Path) -> PoolCache:
        """Read what :meth:`save` wrote.

        Raises:
            RunDirectoryError: naming the file when it is not a pool cache.
        """
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            cache = load_file(str(path))["cache"]
            return cls(cache, int(meta["channels"]), int(meta["positions"]))
        except (OSError, SafetensorError, KeyError, ValueError) as err:
            raise RunDirectoryError(f"{path} is not a niwt pool cache ({type(err).__name__}: {err})") from None


def _layout(model: Backbone, pool: torch.Tensor) -> tuple[int, int]:
    """``(channels, positions)`` of the importance layer, from one pool image."""
    with torch.no_grad(), eval_mode(model):
        probe = model.forward_features(to_device(pool[:1], model.classifier.weight.device))
    return channel_count(probe), position_count(probe, token_prefix(model))


def class_seeds(seed: int, stage: str, names: list[str]) -> list[int]:
    """The stream of each class's row when rows are fitted one by one (``class_seeds`` of
    :meth:`UnseenWeightOptimizer.fit`, ``transfer.per_class``): keyed by the setting and the class's
    name, so a class gets the same row whichever classes are transferred beside it, and when it is
    taught to the finished run (:mod:`niwt.runs.teach`)."""
    return [stage_seed(seed, "transfer", stage, "class", name) for name in names]


def balance_unseen(model: Backbone) -> Backbone:
    r"""Put the model's unseen rows on the seen rows' footing: each unseen row rescaled to the mean
    seen-row norm, and every unseen bias set to the mean seen bias.

    The transfer loss is a cosine, so it sets the *direction* of an unseen row but not its scale
    (the importance is linear in the row), and unseen rows start with bias 0 beside the seen rows'
    learned biases; left alone, Λ and the optimiser's path decide the seen/unseen balance of the
    scores. This fixes it from the seen rows alone (no unseen image is used):
    :math:`w_u \leftarrow w_u \, \overline{\lVert w_s \rVert} / \lVert w_u \rVert`,
    :math:`b_u \leftarrow \bar b_s`. Returns the model.
    """
    head = model.classifier
    if head.n_unseen == 0:
        raise NotFittedError("the model has no unseen rows to balance; apply a fitted transfer first")
    seen_norm = head.weight.detach().norm(dim=1).mean()
    rows = head.unseen_weight.detach()
    scale = seen_norm / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    head.set_unseen(rows * scale, torch.full((rows.shape[0],), float(head.bias.detach().mean()), dtype=rows.dtype))
    return model


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
        progress: show progress (see :mod:`niwt.progress`).

    Attributes (after fit):
        weights_: ``[U, D]`` learned rows; init_weights_: their start; history_: loss per step;
        n_steps_: steps taken; stopped_early_: whether the patience rule stopped it. The rows are
        CPU tensors; the fit runs on the model's device.
    """

    def __init__(self, lam: float = 1e-3, lr: float = 3e-3, batch_size: int = 64, max_steps: int = 800,
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

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"`mode` must be one of {list(MODES)}, got {self.mode!r}")
        if self.init not in INITS:
            raise ConfigError(f"`init` must be one of {list(INITS)}, got {self.init!r}")
        if self.lam < 0 or self.lr <= 0 or self.batch_size <= 0 or self.max_steps <= 0:
            raise ConfigError(
                f"need lam >= 0, lr > 0, batch_size > 0, max_steps > 0; got lam={self.lam}, lr={self.lr}, "
                f"batch_size={self.batch_size}, max_steps={self.max_steps}"
            )

    def _check_data(self, pool: torch.Tensor, targets: torch.Tensor) -> None:
        if pool.ndim != 4 or pool.shape[0] == 0:
            raise DataError(f"`pool` must be a non-empty image tensor [P, 3, H, W], got {tuple(pool.shape)}")
        self._check_targets(targets)

    def _check_targets(self, targets: torch.Tensor) -> None:
        if targets.ndim != 2 or targets.shape[0] == 0:
            raise DataError(f"`targets` must be [U, K] predicted importances, got {tuple(targets.shape)}")
        if not torch.isfinite(targets).all():
            raise DataError("`targets` holds NaN or infinite values")
        zero = torch.nonzero(~(targets != 0).any(dim=1)).reshape(-1).tolist()
        if zero:
            outcome = "the Λ pull towards the mean seen row" if self.lam > 0 else "nothing (Λ = 0: they keep their start)"
            warnings.warn(
                f"`targets` rows {zero[:10]} (unseen classes) are all zero: a zero importance has no direction, so "
                f"their cosine loss is flat and their rows are set by {outcome}",
                UserWarning, stacklevel=3,
            )

    @staticmethod
    @torch.no_grad()
    def pool_cache(model: Backbone, pool: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """What the fast path needs per pool image: ``model.head_cache`` of the importance activations.

        This is the fast path's one-off work; :meth:`fit` computes it unless it is given one.

        Args:
            model: the backbone (run in eval mode, flags restored).
            pool: ``[P, 3, H, W]`` pool images.
            batch_size: images per forward pass.

        Returns:
            ``[P, ...]`` one entry per pool image.
        """
        parts = []
        with eval_mode(model):
            for i in range(0, pool.shape[0], batch_size):
                x = to_device(pool[i : i + batch_size], model.classifier.weight.device)
                parts.append(model.head_cache(model.forward_features(x)))
        return torch.cat(parts)

    def prepare(self, model: Backbone, pool: torch.Tensor, targets: torch.Tensor | np.ndarray, *,
                cache: torch.Tensor | None = None) -> TransferProblem:
        """Check the settings and inputs and gather what every step reads.

        Args:
            model: the backbone whose unseen rows are learned.
            pool: ``[P, 3, H, W]`` pool images.
            targets: ``[U, K]`` predicted importances of the unseen classes.
            cache: :meth:`pool_cache` of this model and pool, computed earlier (fast mode computes
                it when not given; reference mode uses it only in :meth:`batch_loss` with ``mode="fast"``).

        Returns:
            The problem :meth:`batch_loss` works on.

        Raises:
            ConfigError: for an unknown mode or init, out-of-range settings, or a model that is not a
                niwt Backbone.
            DataError: for malformed pool or targets, targets whose width is not the importance
                layer's channel count, or a cache with another number of entries than the pool.

        Warns:
            UserWarning: for an all-zero target row (that class's rows get no direction from it).
        """
        self._check_params()
        if not isinstance(model, Backbone):
            raise ConfigError(f"`model` must be a niwt Backbone, got {type(model).__name__}")
        ref = model.classifier.weight
        tau = torch.from_numpy(as_matrix("targets", targets)).to(ref.device, ref.dtype)
        pool = as_image_batch("pool", pool, channels=getattr(model, "in_channels", 3),
                              size=getattr(model, "image_size", None), dtype=ref.dtype)
        self._check_data(pool, tau)
        channels, positions = _layout(model, pool)
        if channels != tau.shape[1]:
            raise DataError(f"`targets` have {tau.shape[1]} dimensions but the importance layer has {channels} channels")
        if cache is None and self.mode == "fast":
            cache = self.pool_cache(model, pool)
        if cache is not None and cache.shape[0] != pool.shape[0]:
            raise DataError(f"`cache` must hold one entry per pool image: expected {pool.shape[0]}, got {cache.shape[0]}")
        return TransferProblem(model, pool, tau, ref.detach().mean(0), channels, positions, cache)

    def prepare_cached(self, model: Backbone, pool_cache: PoolCache, targets: torch.Tensor | np.ndarray,
                       ) -> TransferProblem:
        """:meth:`prepare` from a :class:`PoolCache` alone: the fast path, without the pool's images.

        Raises:
            ConfigError: as :meth:`prepare`.
            DataError: for malformed targets, or targets whose width is not the cache's channel count.
        """
        self._check_params()
        if not isinstance(model, Backbone):
            raise ConfigError(f"`model` must be a niwt Backbone, got {type(model).__name__}")
        if not isinstance(pool_cache, PoolCache):
            raise ConfigError(f"`pool_cache` must be a PoolCache, got {type(pool_cache).__name__}")
        ref = model.classifier.weight
        tau = torch.from_numpy(as_matrix("targets", targets)).to(ref.device, ref.dtype)
        self._check_targets(tau)
        if pool_cache.channels != tau.shape[1]:
            raise DataError(f"`targets` have {tau.shape[1]} dimensions but the pool cache's importance layer has "
                            f"{pool_cache.channels} channels")
        cache = pool_cache.cache.to(ref.device, ref.dtype)
        if cache.shape[0] == 0:
            raise DataError("`pool_cache` holds no pool image")
        return TransferProblem(model, None, tau, ref.detach().mean(0), pool_cache.channels, pool_cache.positions,
                               cache)

    def batch_loss(self, problem: TransferProblem, weight: torch.Tensor, idx: torch.Tensor, cls: torch.Tensor, *,
                   mode: str | None = None) -> torch.Tensor:
        """The transfer loss of the pairs ``(pool[idx[b]], class cls[b])`` for unseen rows ``weight``.

        Call it with gradients enabled and the model in eval mode (as :meth:`fit` does).

        Args:
            problem: from :meth:`prepare`.
            weight: ``[U, D]`` unseen rows (usually with ``requires_grad``).
            idx: ``[B]`` pool indices.
            cls: ``[B]`` unseen class of each pair, in ``[0, U)``.
            mode: ``"fast"`` or ``"reference"``; default this optimiser's mode.

        Returns:
            The scalar loss (differentiable w.r.t. ``weight``).

        Raises:
            ConfigError: for an unknown mode, or ``"fast"`` on a problem without a cache.
            DataError: for ``idx`` and ``cls`` of different shapes or classes outside ``[0, U)``.
        """
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ConfigError(f"`mode` must be one of {list(MODES)}, got {mode!r}")
        n_classes = problem.targets.shape[0]
        if idx.ndim != 1 or idx.shape != cls.shape:
            raise DataError(f"`idx` and `cls` must be 1-d and of one length, got {tuple(idx.shape)} and {tuple(cls.shape)}")
        if cls.numel() and (int(cls.min()) < 0 or int(cls.max()) >= n_classes):
            raise DataError(f"`cls` must lie in [0, {n_classes}), got [{int(cls.min())}, {int(cls.max())}]")
        if mode == "reference":
            if problem.pool is None:
                raise ConfigError("`mode=\"reference\"` needs the pool's images; this problem was made from a pool cache")
            return self._loss_reference(problem, weight, idx, cls)
        if problem.cache is None:
            raise ConfigError("`mode=\"fast\"` needs a problem with a cache: prepare it in fast mode or pass `cache`")
        return self._loss_fast(problem, weight, idx, cls)

    def _loss_fast(self, problem: TransferProblem, weight: torch.Tensor, idx: torch.Tensor,
                   cls: torch.Tensor) -> torch.Tensor:
        # A per-channel shift of the activations at 0: its gradient is the spatially summed importance.
        cache = problem.cache
        idx, cls = idx.to(cache.device), cls.to(cache.device)  # the pairs are drawn on the CPU
        shift = cache.new_zeros(idx.numel(), problem.channels, requires_grad=True)
        logits = problem.model.forward_head_shifted(cache[idx], shift) @ weight.T  # [B, U]: all classes in one pass
        alpha = importance_from_activations(shift, logits, cls, "sum", create_graph=True)
        if self.reduction == "mean":
            alpha = alpha / problem.positions
        return transfer_loss(alpha, problem.targets[cls], weight, problem.mean_seen, self.lam, idx.numel())

    def _loss_reference(self, problem: TransferProblem, weight: torch.Tensor, idx: torch.Tensor,
                        cls: torch.Tensor) -> torch.Tensor:
        model, tau = problem.model, problem.targets
        head = _UnseenHead(model, weight)
        layer = model.get_submodule(model.importance_layer)
        cos_sum = weight.new_zeros(())
        for u in torch.unique(cls).tolist():  # one class at a time, full network from pixels
            sel = idx[cls == u]
            alpha = neuron_importance(head, layer, problem.pool[sel], torch.full((sel.numel(),), u),
                                      self.reduction, create_graph=True)
            cos = nn.functional.cosine_similarity(alpha, tau[u].expand_as(alpha), dim=1, eps=1e-12)
            cos_sum = cos_sum + (1 - cos).sum()
        return cos_sum / idx.numel() + 0.5 * self.lam * ((weight - problem.mean_seen) ** 2).sum()

    def fit(self, model: Backbone, pool: torch.Tensor, targets: torch.Tensor | np.ndarray, *,
            cache: torch.Tensor | None = None, class_seeds: list[int] | None = None,
            on_step: Callable[[StepEnd], bool | None] | None = None) -> UnseenWeightOptimizer:
        """Optimise unseen rows for ``targets`` (``[U, K]`` predicted importances) on ``pool`` images.

        The model is not modified; call :meth:`apply` to install the learned rows.

        Args:
            model: the backbone.
            pool: ``[P, 3, H, W]`` pool images.
            targets: ``[U, K]`` predicted importances of the unseen classes.
            cache: :meth:`pool_cache` of this model and pool, to reuse instead of computing it.
            class_seeds: one seed per class: each row is then fitted alone, on its own stream, with
                its own pairs and its own early stop, so a class's row does not depend on which
                classes are fitted beside it (``random_state`` is not used); None: all rows together.
            on_step: called after every step with its :class:`~niwt.training.StepEnd` (the rows
                after the update are ``params[0]``, their gradient ``grads[0]``); True stops the fit.

        Returns:
            self.
        """
        return self._fit_all(self.prepare(model, pool, targets, cache=cache), self.mode, on_step, class_seeds)

    def fit_cached(self, model: Backbone, pool_cache: PoolCache, targets: torch.Tensor | np.ndarray, *,
                   class_seeds: list[int] | None = None,
                   on_step: Callable[[StepEnd], bool | None] | None = None) -> UnseenWeightOptimizer:
        """:meth:`fit` from a :class:`PoolCache` alone (the fast path whatever ``mode`` says: both
        paths give the same loss and gradient); the same rows as :meth:`fit` on the pool it was made of."""
        return self._fit_all(self.prepare_cached(model, pool_cache, targets), "fast", on_step, class_seeds)

    def _fit_all(self, problem: TransferProblem, mode: str, on_step: Callable[[StepEnd], bool | None] | None,
                 class_seeds: list[int] | None) -> UnseenWeightOptimizer:
        if class_seeds is None:
            return self._fit(problem, mode, on_step)
        n = problem.targets.shape[0]
        if len(class_seeds) != n:
            raise DataError(f"`class_seeds` must hold one seed per class: expected {n}, got {len(class_seeds)}")
        rows, inits, histories, steps, early = [], [], [], [], []
        for u, seed in enumerate(class_seeds):  # each class alone: its own stream, pairs and stop
            one = copy.copy(self)
            one.random_state = int(seed)
            one._fit(dataclasses.replace(problem, targets=problem.targets[u : u + 1]), mode, on_step)
            rows.append(one.weights_)
            inits.append(one.init_weights_)
            histories.append(one.history_)
            steps.append(one.n_steps_)
            early.append(one.stopped_early_)
        self.weights_, self.init_weights_ = torch.cat(rows), torch.cat(inits)
        self.channels_, self.positions_ = problem.channels, problem.positions
        longest = max(len(h) for h in histories)  # the mean loss over the classes, each held at its last value
        self.history_ = [float(np.mean([h[min(i, len(h) - 1)] for h in histories])) for i in range(longest)]
        self.n_steps_, self.stopped_early_ = max(steps), all(early)
        self.class_steps_ = steps
        return self

    def _fit(self, problem: TransferProblem, mode: str,
             on_step: Callable[[StepEnd], bool | None] | None) -> UnseenWeightOptimizer:
        model = problem.model
        self.channels_, self.positions_ = problem.channels, problem.positions
        gen = torch.Generator().manual_seed(self.random_state)
        seen = model.classifier.weight.detach()
        weight = init_unseen_weights(seen, problem.targets.shape[0], self.init, gen).requires_grad_(True)
        self.init_weights_ = weight.detach().cpu().clone()
        n_pool = problem.cache.shape[0] if problem.pool is None else problem.pool.shape[0]
        sampler = iter(PairSampler(n_pool, problem.targets.shape[0], self.batch_size, gen))
        with eval_mode(model):
            result = optimize(
                [weight], lambda pair: self.batch_loss(problem, weight, *pair, mode=mode), lambda: (next(sampler),),
                torch.optim.Adam([weight], lr=self.lr), epochs=self.max_steps, size=lambda _: 1,
                early_stopping=EarlyStopping(self.patience, self.tol), on_step=on_step, progress=self.progress,
                desc=f"transfer ({mode})", unit="step",
            )
        self.weights_ = weight.detach().cpu().clone()  # fitted rows on the host, whatever the model's device
        self.history_ = list(result.step_losses)
        self.n_steps_ = result.steps
        self.stopped_early_ = result.stopped_by == "early_stopping"
        log.info("transfer: %d steps, final loss %.4f, |W_u|/|W_s| = %.3f", self.n_steps_, self.history_[-1],
                 float(self.weights_.norm(dim=1).mean() / seen.norm(dim=1).mean()))
        return self

    def apply(self, model: Backbone) -> Backbone:
        """Install the learned rows as the model's unseen rows (bias 0) and return the model."""
        if not hasattr(self, "weights_"):
            raise NotFittedError("This UnseenWeightOptimizer instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator.")
        model.classifier.set_unseen(self.weights_)
        return model
