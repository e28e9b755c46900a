"""The optimisation loop every stage that optimises shares.

* :class:`EarlyStopping`: the authors' rule: stop after ``patience`` steps without a relative
  improvement of ``tol`` over the best loss so far.
* :func:`optimize`: the loop: loss, ``torch.autograd.grad``, optimiser (and scheduler) step, epoch
  means, early stopping, callbacks, progress. Classifier training, the importance map, the
  transfer and the trained baselines all run through it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import TypeVar

import torch

from niwt.errors import ConfigError, DataError
from niwt.progress import StageProgress

__all__ = ["STOP_REASONS", "EarlyStopping", "StepEnd", "EpochEnd", "OptimizeResult", "optimize", "batches"]

log = logging.getLogger(__name__)

STOP_REASONS = ("early_stopping", "on_step", "on_epoch")

BatchT = TypeVar("BatchT")


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
                     scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                     scaler: torch.amp.GradScaler | None = None, accumulate: bool = False) -> tuple[torch.Tensor, ...]:
    """One update: gradients by ``torch.autograd.grad``, then the optimiser (and scheduler) step.

    With ``scaler`` (fp16), the loss is scaled before differentiating and the step is the
    scaler's (unscaled gradients; skipped when they overflowed). With ``accumulate``, the gradients
    are accumulated into ``.grad`` by ``torch.autograd.backward(loss, inputs=params)`` instead:
    ``DistributedDataParallel`` averages gradients over processes from hooks that only run when
    gradients accumulate (it does not work with ``torch.autograd.grad``). Either way every
    ``.grad`` is ``None`` before and after the update.
    """
    target = scaler.scale(loss) if scaler is not None else loss
    if accumulate:
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(target, inputs=list(params))
        grads = tuple(p.grad if p.grad is not None else torch.zeros_like(p) for p in params)
    else:
        grads = torch.autograd.grad(target, params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return grads


def _reads_loss_each_step(loss: torch.Tensor) -> bool:
    """Whether the loop reads a step's loss back at once: on the CPU it costs nothing; on an
    accelerator it would make the host wait for the device every step, so losses are read once per
    epoch (a non-finite loss is then reported at its epoch's end, after the epoch's later steps)."""
    return loss.device.type == "cpu"


def _non_finite(value: float, desc: str, step: int, epoch: int) -> DataError:
    return DataError(f"{desc}: the loss became {value} at step {step} (epoch {epoch}); "
                     "lower the learning rate or check the inputs for extreme values")


def _take_step(params: tuple[torch.Tensor, ...], loss_fn: Callable[[BatchT], torch.Tensor], batch: BatchT,
               optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler | None, desc: str,
               step: int, epoch: int, *, read: bool = True, scaler: torch.amp.GradScaler | None = None,
               accumulate: bool = False) -> tuple[float | torch.Tensor, tuple[torch.Tensor, ...]]:
    """The loss of ``batch`` and the update it drives; returns the loss and gradients.

    The loss is read back and checked to be finite before the update when ``read`` is set or reading
    it is free (:func:`_reads_loss_each_step`); otherwise it is returned as a detached tensor for the
    caller to read later.
    """
    loss = loss_fn(batch)
    value: float | torch.Tensor = loss.detach()
    if read or _reads_loss_each_step(loss):
        value = float(value)
        if not math.isfinite(value):
            raise _non_finite(value, desc, step, epoch)
    return value, _apply_gradients(params, loss, optimizer, scheduler, scaler, accumulate)


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
    scaler: torch.amp.GradScaler | None = None,
    accumulate: bool = False,
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
        scaler: a ``torch.amp.GradScaler`` for fp16 training (:func:`niwt.device.grad_scaler`).
        accumulate: gradients through ``.grad`` (what ``DistributedDataParallel`` needs), see
            :func:`_apply_gradients`.

    Losses are read back to the host after every step on the CPU, and when ``on_step`` is given;
    on an accelerator without ``on_step`` they are read once per epoch, so the device never waits
    for the host inside an epoch (the values, and the epoch means, are the same).

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
            pending: list[tuple[torch.Tensor, int]] = []  # losses not read back yet, with their batch sizes
            for batch in batches():
                step = len(step_losses) + len(pending)
                value, grads = _take_step(params, loss_fn, batch, optimizer, scheduler, desc, step, epoch,
                                          read=on_step is not None, scaler=scaler, accumulate=accumulate)
                n = size(batch)
                if isinstance(value, torch.Tensor):
                    pending.append((value, n))
                    mark = time.perf_counter()
                    continue
                end = StepEnd(len(step_losses), epoch, value, time.perf_counter() - mark, params, grads)
                total, count = total + value * n, count + n
                step_losses.append(value)
                if on_step is not None and on_step(end):
                    stopped_by = "on_step"
                    break
                mark = time.perf_counter()
            if stopped_by is not None:
                break
            if pending:  # one read-back per epoch, then the same arithmetic as step by step
                values = torch.stack([v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
                                      for v, _ in pending]).tolist()
                for value, (_, n) in zip(values, pending, strict=True):
                    if not math.isfinite(value):
                        raise _non_finite(value, desc, len(step_losses), epoch)
                    total, count = total + value * n, count + n
                    step_losses.append(value)
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
