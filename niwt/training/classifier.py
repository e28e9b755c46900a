"""Training a backbone on labelled classes: cross-entropy in ``finetuned`` mode (every layer) or
``fixed`` mode (classifier only), with augmentation, checkpoints after every epoch, and the part
of every global batch a process takes under torchrun."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from niwt import distributed
from niwt.checks import as_image_batch, as_labels
from niwt.data.source import Batch, iter_batches
from niwt.device import autocast, grad_scaler, to_device
from niwt.errors import ConfigError, DataError
from niwt.faults import failpoint
from niwt.models.backbones import Backbone
from niwt.training.checkpoints import apply_checkpoint, read_checkpoint, save_checkpoint
from niwt.training.loop import EpochEnd, optimize

__all__ = ["TRAIN_MODES", "train_classifier"]

log = logging.getLogger(__name__)

TRAIN_MODES = ("finetuned", "fixed")


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
    state = read_checkpoint(Path(checkpoint)) if checkpoint is not None else None
    state = distributed.broadcast_object(state)  # every process continues from rank 0's state
    if state is not None:
        done = apply_checkpoint(state, checkpoint or "rank 0's checkpoint", model, optimizer, scheduler, gen)
    resumable = checkpoint is not None or state is not None
    if done:
        log.info("%s: continuing after epoch %d of %d from %s", desc, len(done), epochs, checkpoint)
    if resumable:

        def on_epoch(end: EpochEnd) -> None:
            done.append(end.loss)
            if checkpoint is not None:
                save_checkpoint(Path(checkpoint), model, optimizer, scheduler, gen, done)
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

