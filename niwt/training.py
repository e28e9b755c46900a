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

import contextlib
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from niwt import distributed
from niwt.checks import as_image_batch, as_labels
from niwt.data.source import Batch, iter_batches
from niwt.device import autocast, grad_scaler, to_device
from niwt.errors import ConfigError, DataError
from niwt.faults import failpoint
from niwt.models.backbones import Backbone
from niwt.progress import StageProgress
from niwt.seeding import seed_everything

__all__ = ["TRAIN_MODES", "STOP_REASONS", "seed_everything", "EarlyStopping", "StepEnd", "EpochEnd",
           "OptimizeResult", "optimize", "batches", "train_classifier", "predict_logits"]

log = logging.getLogger(__name__)

TRAIN_MODES = ("finetuned", "fixed")
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


def _augment(x: torch.Tensor, generator: torch.Generator, part: tuple[int, int] | None = None) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 1/8 of the side (wrap-around).

    ``part = (global size, offset)``: ``x`` is this process's slice of a global batch; the draws are
    made for the whole global batch (the same on every process) and the slice's flips taken, so the
    images are augmented as in one process. The draws come from ``generator`` (on the CPU) whatever
    ``x``'s device.
    """
    n, _, h, _ = x.shape
    total, offset = part if part is not None else (n, 0)
    flip = (torch.rand(total, generator=generator) < 0.5)[offset : offset + n].to(x.device)
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


def _classifier_logits(model: Backbone, x: torch.Tensor) -> torch.Tensor:
    """Logits for fixed mode: the frozen trunk runs without a graph (no activations kept for a
    backward pass through it, which for VGG16 at 224 px is most of the memory), the classifier with one."""
    with torch.no_grad():
        features = model.forward_head(model.forward_features(x))
    return model.classifier(features)


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
    precision: str = "fp32",
) -> list[float]:
    """Train ``model`` with cross-entropy on ``images``/``labels`` (labels index the classifier rows).

    ``mode="fixed"`` trains only the classifier (the trunk is frozen and kept in eval mode);
    ``"finetuned"`` trains every layer. AdamW with a one-cycle schedule. The model is left in eval
    mode. Returns the mean loss of every epoch.

    Training runs on the model's device (batches are moved there; from pinned memory on CUDA);
    ``precision`` ``"bf16"`` / ``"fp16"`` runs the forward passes under autocast
    (:mod:`niwt.device`; fp16 with loss scaling, CUDA only).

    Under torchrun (:mod:`niwt.distributed`) the model is wrapped in ``DistributedDataParallel``:
    ``batch_size`` is the global batch (it must be a multiple of the number of processes), every
    process draws the same epoch order and takes one contiguous part of every global batch, and
    each process's loss is weighted by its share of the batch, so the averaged gradient is the
    global batch's mean gradient: the same as one process with the same batch size, up to float
    rounding, for models without BatchNorm or dropout (BatchNorm's batch statistics are then
    per-process, and each process draws its own dropout masks). A last batch of an epoch with fewer
    images than processes is left out on every process. Rank 0 alone writes ``checkpoint``; the
    state it continues from is sent from rank 0 to the others.

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
    processes = distributed.world_size()
    if batch_size % processes:
        raise ConfigError(f"`batch_size` ({batch_size}) is the global batch and must be a multiple of the "
                          f"{processes} processes; e.g. --set train.batch_size={batch_size // processes * processes or processes}")
    n_images = images.shape[0]
    steps = epochs * (n_images // batch_size + (n_images % batch_size >= processes))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.2)
    criterion = nn.CrossEntropyLoss()
    device = ref.device
    net, parts = model, iter(())

    def batch_loss(batch: Batch) -> torch.Tensor:
        total, offset = next(parts)
        x = to_device(batch.images, device)
        if augment:
            x = _augment(x, gen, (total, offset))
        with autocast(device, precision):
            logits = _classifier_logits(model, x) if mode == "fixed" and processes == 1 else net(x)
            loss = criterion(logits, to_device(labels[batch.positions], device))
        n = len(batch.positions)
        return loss if n * processes == total else loss * (n * processes / total)

    def epoch_batches() -> Iterator[Batch]:  # images read in the epoch's shuffled order
        nonlocal parts
        local, shares = _process_part(torch.randperm(n_images, generator=gen), batch_size, processes)
        parts = iter(shares)
        return iter_batches(images, local, batch_size // processes, pin_memory=device.type == "cuda")

    done: list[float] = []
    on_epoch = None
    state = _read_checkpoint(Path(checkpoint)) if checkpoint is not None else None
    state = distributed.broadcast_object(state)  # every process continues from rank 0's state
    if state is not None:
        done = _apply_checkpoint(state, checkpoint or "rank 0's checkpoint", model, optimizer, scheduler, gen)
    resumable = checkpoint is not None or state is not None
    if done:
        log.info("%s: continuing after epoch %d of %d from %s", desc, len(done), epochs, checkpoint)
    if resumable:

        def on_epoch(end: EpochEnd) -> None:
            done.append(end.loss)
            if checkpoint is not None:
                _save_checkpoint(Path(checkpoint), model, optimizer, scheduler, gen, done)
            failpoint(f"epoch:{desc}:{end.epoch + 1}")

    _set_train_mode(model, mode)
    try:
        with _trained_only(model, params) if processes > 1 else contextlib.nullcontext():
            if processes > 1:
                net = nn.parallel.DistributedDataParallel(
                    model, device_ids=[device.index] if device.type == "cuda" else None)
            result = optimize(params, batch_loss, epoch_batches, optimizer, size=lambda b: len(b.positions),
                              epochs=epochs, scheduler=scheduler, progress=progress, desc=desc,
                              start_epoch=min(len(done), epochs) if resumable else 0, on_epoch=on_epoch,
                              scaler=grad_scaler(device, precision), accumulate=processes > 1)
    finally:
        model.eval()
    history = list(done) if resumable else list(result.epoch_losses)
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


def _read_checkpoint(path: Path) -> dict | None:
    """A training checkpoint's state (tensors only: ``weights_only=True``), or None when there is none."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, TypeError, ValueError, pickle.UnpicklingError) as err:
        raise DataError(f"training checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); "
                        "delete it to train this stage from the start") from err


def _apply_checkpoint(state: dict, path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                      scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator) -> list[float]:
    """Restore a checkpoint's state; the losses of its epochs."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        return [float(v) for v in state["losses"]]
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"training checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); "
                        "delete it to train this stage from the start") from err


def _load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator) -> list[float]:
    """Restore a training checkpoint (tensors only: ``weights_only=True``); the losses of its epochs."""
    state = _read_checkpoint(path)
    return [] if state is None else _apply_checkpoint(state, path, model, optimizer, scheduler, gen)


def _process_part(order: torch.Tensor, batch_size: int, processes: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """This process's contiguous part of every global batch of ``order``, and each part's (global
    batch size, offset in it). One process: ``order`` itself. A last global batch with fewer images
    than processes is left out (some process would have none)."""
    if processes == 1:
        return order, [(len(order[i : i + batch_size]), 0) for i in range(0, len(order), batch_size)]
    local, shares = [], []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        if len(chunk) < processes:
            break
        lo, hi = distributed.shard_bounds(len(chunk))
        local.append(chunk[lo:hi])
        shares.append((len(chunk), lo))
    return torch.cat(local) if local else order[:0], shares


@contextlib.contextmanager
def _trained_only(model: nn.Module, params: Sequence[torch.Tensor]) -> Iterator[None]:
    """Only ``params`` require grad inside the block (``DistributedDataParallel`` waits for a gradient
    of every parameter that requires one); every flag is restored afterwards."""
    trained = {id(p) for p in params}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            if id(p) not in trained:
                p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` in eval mode, in batches (train/eval flags restored), on the model's device."""
    from niwt.importance import eval_mode

    ref = next(model.parameters(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    with eval_mode(model):
        return torch.cat([model(to_device(x, device))
                          for _, x in iter_batches(images, None, batch_size, pin_memory=device.type == "cuda")], 0)
