"""Training the backbone on labelled classes, and the optimisation loop every stage shares.

* :func:`seed_everything` — the one seeding function (called by the CLI and tests, never at import).
* :class:`EarlyStopping` — the authors' rule: stop after ``patience`` steps without a relative
  improvement of ``tol`` over the best loss so far.
* :func:`optimize` — the loop: loss, ``torch.autograd.grad``, optimiser (and scheduler) step, epoch
  means, early stopping, callbacks, progress. Classifier training, the importance map, the
  transfer and the trained baselines all run through it.
* :func:`train_classifier` — cross-entropy training of a backbone on seen (or source) classes, in
  ``finetuned`` mode (every layer) or ``fixed`` mode (classifier only).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from niwt.checks import as_image_batch, as_labels
from niwt.errors import ConfigError, DataError
from niwt.faults import failpoint
from niwt.models.backbones import Backbone
from niwt.progress import StageProgress

__all__ = ["TRAIN_MODES", "STOP_REASONS", "seed_everything", "EarlyStopping", "StepEnd", "EpochEnd",
           "OptimizeResult", "optimize", "batches", "train_classifier", "predict_logits"]

log = logging.getLogger(__name__)

TRAIN_MODES = ("finetuned", "fixed")
STOP_REASONS = ("early_stopping", "on_step", "on_epoch")

BatchT = TypeVar("BatchT")


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


class EarlyStopping:
    """Stop when the loss has not improved by ``tol`` (relative) for ``patience`` steps.

    The first loss sets the reference; a later loss ``l`` counts as an improvement when
    ``1 - l / best > tol`` and then becomes the new reference. The rule keeps state: use a fresh
    instance for every run.

    Args:
        patience: losses in a row without an improvement that stop the run.
        tol: relative improvement that counts (0.01: one per cent).
    """

    def __init__(self, patience: int = 40, tol: float = 0.01) -> None:
        self.patience = patience
        self.tol = tol
        self.best: float | None = None
        self.count = 0

    def step(self, loss: float) -> bool:
        """Record ``loss``; return True when training should stop."""
        if self.best is None:
            self.best = loss
            return False
        if self.best > 0 and 1.0 - loss / self.best > self.tol or self.best <= 0 and loss < self.best:
            self.best, self.count = loss, 0
        else:
            self.count += 1
        return self.count >= self.patience


@dataclass(frozen=True)
class StepEnd:
    """What :func:`optimize` hands ``on_step`` after every optimiser step.

    Attributes:
        step: index of the step just taken, from 0 over the whole run.
        epoch: index of the epoch it belongs to, from 0.
        loss: the loss of its batch, before the update.
        seconds: wall time of the step: fetching its batch, the loss, the gradient and the update
            (callbacks and the previous epoch's bookkeeping excluded).
        params: the optimised tensors after the update (the live tensors, not copies).
        grads: the gradients the update used, one per tensor of ``params``.
    """

    step: int
    epoch: int
    loss: float
    seconds: float
    params: tuple[torch.Tensor, ...]
    grads: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class EpochEnd:
    """What :func:`optimize` hands ``on_epoch`` after every complete epoch.

    Attributes:
        epoch: index of the epoch, from 0.
        loss: mean loss of its batches, each weighted by its size.
        steps: steps taken so far over the whole run.
    """

    epoch: int
    loss: float
    steps: int


@dataclass(frozen=True)
class OptimizeResult:
    """The record of one :func:`optimize` run.

    Attributes:
        epoch_losses: mean loss of every complete epoch (an epoch cut short by ``on_step`` is left out).
        step_losses: the loss of every step.
        stopped_by: what ended the run before its last epoch (one of :data:`STOP_REASONS`), or None.
        seconds: wall time of the whole run.
    """

    epoch_losses: tuple[float, ...]
    step_losses: tuple[float, ...]
    stopped_by: str | None
    seconds: float

    @property
    def steps(self) -> int:
        """Optimiser steps taken."""
        return len(self.step_losses)

    @property
    def epochs(self) -> int:
        """Epochs completed."""
        return len(self.epoch_losses)


def _apply_gradients(params: Sequence[torch.Tensor], loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> tuple[torch.Tensor, ...]:
    """One update: gradients by ``torch.autograd.grad``, then the optimiser (and scheduler) step."""
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return grads


def _take_step(params: tuple[torch.Tensor, ...], loss_fn: Callable[[BatchT], torch.Tensor], batch: BatchT,
               optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler | None, desc: str,
               step: int, epoch: int) -> tuple[float, tuple[torch.Tensor, ...]]:
    """The loss of ``batch`` (checked to be finite) and the update it drives; returns the loss and gradients."""
    loss = loss_fn(batch)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise DataError(f"{desc}: the loss became {value} at step {step} (epoch {epoch}); "
                        "lower the learning rate or check the inputs for extreme values")
    return value, _apply_gradients(params, loss, optimizer, scheduler)


def _stop_note(stopped_by: str | None) -> str:
    return {None: "", "early_stopping": "stopped early"}.get(stopped_by, f"stopped by {stopped_by}")


def optimize(
    params: Sequence[torch.Tensor],
    loss_fn: Callable[[BatchT], torch.Tensor],
    batches: Callable[[], Iterable[BatchT]],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    size: Callable[[BatchT], int] = len,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    early_stopping: EarlyStopping | None = None,
    on_step: Callable[[StepEnd], bool | None] | None = None,
    on_epoch: Callable[[EpochEnd], bool | None] | None = None,
    progress: bool = False,
    desc: str = "optimize",
    unit: str = "epoch",
    start_epoch: int = 0,
) -> OptimizeResult:
    """Minimise ``loss_fn`` over ``params``: the one optimisation loop of niwt.

    Every epoch calls ``batches()`` once and takes one step per batch it yields: ``loss_fn(batch)``,
    its gradient w.r.t. ``params`` by ``torch.autograd.grad`` (``.grad`` is set for the update and
    cleared after it), ``optimizer.step()``, then ``scheduler.step()``. A step-wise stage (such as
    the transfer) gives one batch per epoch. After each epoch its size-weighted mean loss is
    recorded, shown, handed to ``on_epoch`` and to ``early_stopping``. The loop runs with gradients
    enabled; putting modules in train or eval mode is the caller's business.

    Args:
        params: the tensors to optimise (leaves with ``requires_grad``), the optimiser's tensors.
        loss_fn: scalar loss of a batch.
        batches: called at the start of every epoch; yields that epoch's batches.
        optimizer: updates ``params`` from their ``.grad``.
        epochs: epochs to run at most, >= 0.
        size: weight of a batch in its epoch's mean loss (default ``len``: its number of examples).
        scheduler: stepped after every optimiser step.
        early_stopping: fed every epoch's loss; stops the run when it says so.
        on_step: called with a :class:`StepEnd` after every step; returning True stops the run.
        on_epoch: called with an :class:`EpochEnd` after every epoch; returning True stops the run.
        progress: show progress (see :mod:`niwt.progress`), one unit per epoch.
        desc: name of the stage, used in progress and in errors.
        unit: what an epoch is called in progress (``"epoch"``, ``"step"``).
        start_epoch: epochs already done (a resumed run): the loop runs epochs ``start_epoch`` to
            ``epochs - 1``, numbered as in the uninterrupted run.

    Returns:
        The losses of the run and what stopped it.

    Raises:
        ConfigError: for ``epochs`` < 0 or no ``params``.
        DataError: when a loss is NaN or infinite (naming ``desc``, the step and the epoch), or an
            epoch yields no batch.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, Integral) or epochs < 0:
        raise ConfigError(f"`epochs` must be an integer >= 0, got {epochs!r}")
    epochs = int(epochs)
    params = tuple(params)
    if not params:
        raise ConfigError(f"{desc}: `params` is empty; there is nothing to optimise")
    epoch_losses: list[float] = []
    step_losses: list[float] = []
    stopped_by: str | None = None
    start = time.perf_counter()
    if isinstance(start_epoch, bool) or not isinstance(start_epoch, Integral) or not 0 <= start_epoch <= epochs:
        raise ConfigError(f"`start_epoch` must be an integer in [0, {epochs}], got {start_epoch!r}")
    with StageProgress(desc, epochs, unit=unit, enabled=progress, initial=int(start_epoch)) as bar, \
            torch.enable_grad():
        for epoch in range(int(start_epoch), epochs):
            mark = time.perf_counter()
            total, count = 0.0, 0
            for batch in batches():
                value, grads = _take_step(params, loss_fn, batch, optimizer, scheduler, desc, len(step_losses), epoch)
                end = StepEnd(len(step_losses), epoch, value, time.perf_counter() - mark, params, grads)
                n = size(batch)
                total, count = total + value * n, count + n
                step_losses.append(value)
                if on_step is not None and on_step(end):
                    stopped_by = "on_step"
                    break
                mark = time.perf_counter()
            if stopped_by is not None:
                break
            if count == 0:
                raise DataError(f"{desc}: epoch {epoch} yielded no examples; `batches()` must yield at least one "
                                "batch of size >= 1")
            epoch_losses.append(total / count)
            bar.update(loss=epoch_losses[-1])
            if on_epoch is not None and on_epoch(EpochEnd(epoch, epoch_losses[-1], len(step_losses))):
                stopped_by = "on_epoch"
            elif early_stopping is not None and early_stopping.step(epoch_losses[-1]):
                stopped_by = "early_stopping"
            if stopped_by is not None:
                break
        bar.note = _stop_note(stopped_by)
    return OptimizeResult(tuple(epoch_losses), tuple(step_losses), stopped_by, time.perf_counter() - start)


def batches(n: int, batch_size: int, generator: torch.Generator, *, shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 1/8 of the side (wrap-around)."""
    n, _, h, _ = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    max_shift = max(1, h // 8)
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=generator))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def _set_train_mode(model: Backbone, mode: str) -> None:
    """Train mode for every layer (``finetuned``) or for the classifier only (``fixed``)."""
    if mode == "fixed":
        model.eval()
        model.classifier.train()
    else:
        model.train()


def train_classifier(
    model: Backbone,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 12,
    lr: float = 3e-3,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    mode: str = "finetuned",
    augment: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "train",
    checkpoint: str | Path | None = None,
) -> list[float]:
    """Train ``model`` with cross-entropy on ``images``/``labels`` (labels index the classifier rows).

    ``mode="fixed"`` trains only the classifier (the trunk is frozen and kept in eval mode);
    ``"finetuned"`` trains every layer. AdamW with a one-cycle schedule. The model is left in eval
    mode. Returns the mean loss of every epoch.

    With ``checkpoint`` (a file path), the state needed to continue exactly (weights, optimiser,
    schedule, the batch generator and torch's global generator, which dropout draws from) is
    written there atomically after every epoch, and a call that finds the file continues after its
    last epoch: a run killed at any point and called again ends with the same weights, on CPU, as
    one that was never interrupted.
    """
    if mode not in TRAIN_MODES:
        raise ConfigError(f"`mode` must be one of {list(TRAIN_MODES)}, got {mode!r}")
    ref = next(model.parameters())
    images = as_image_batch("images", images, channels=getattr(model, "in_channels", 3),
                            size=getattr(model, "image_size", None), dtype=ref.dtype)
    if images.shape[0] == 0:
        raise DataError("`images` is empty: training needs at least one image")
    n_out = model.classifier.n_seen
    labels = torch.from_numpy(as_labels("labels", labels, length=images.shape[0], n_classes=n_out))
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    params = list(model.classifier.parameters()) if mode == "fixed" else list(model.parameters())
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * ((images.shape[0] + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.2)
    criterion = nn.CrossEntropyLoss()

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        x = images[idx]
        if augment:
            x = _augment(x, gen)
        return criterion(model(x), labels[idx])

    done: list[float] = []
    on_epoch = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        done = _load_checkpoint(checkpoint, model, optimizer, scheduler, gen)
        if done:
            log.info("%s: continuing after epoch %d of %d from %s", desc, len(done), epochs, checkpoint)

        def on_epoch(end: EpochEnd) -> None:
            done.append(end.loss)
            _save_checkpoint(checkpoint, model, optimizer, scheduler, gen, done)
            failpoint(f"epoch:{desc}:{end.epoch + 1}")

    _set_train_mode(model, mode)
    try:
        result = optimize(params, batch_loss, lambda: batches(images.shape[0], batch_size, gen), optimizer,
                          epochs=epochs, scheduler=scheduler, progress=progress, desc=desc,
                          start_epoch=min(len(done), epochs) if checkpoint is not None else 0, on_epoch=on_epoch)
    finally:
        model.eval()
    history = list(done) if checkpoint is not None else list(result.epoch_losses)
    log.info("%s: final training loss %.4f after %d epochs", desc, history[-1] if history else float("nan"), epochs)
    return history


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, losses: list[float]) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "losses": list(losses)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator) -> list[float]:
    """Restore a training checkpoint (tensors only: ``weights_only=True``); the losses of its epochs."""
    if not path.exists():
        return []
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        return [float(v) for v in state["losses"]]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as err:
        raise DataError(f"training checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); "
                        "delete it to train this stage from the start") from err


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` in eval mode, in batches (train/eval flags restored)."""
    from niwt.importance import eval_mode

    with eval_mode(model):
        return torch.cat([model(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)], 0)
