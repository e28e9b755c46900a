"""Training the backbone on labelled classes, and the pieces every optimising stage shares.

* :func:`seed_everything` — the one seeding function (called by the CLI and tests, never at import).
* :class:`EarlyStopping` — the authors' rule: stop after ``patience`` steps without a relative
  improvement of ``tol`` over the best loss so far.
* :func:`train_classifier` — cross-entropy training of a backbone on seen (or source) classes, in
  ``finetuned`` mode (every layer) or ``fixed`` mode (classifier only).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from niwt.errors import ConfigError, DataError
from niwt.models.backbones import Backbone

__all__ = ["seed_everything", "EarlyStopping", "batches", "train_classifier", "predict_logits"]

log = logging.getLogger(__name__)


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
    ``1 - l / best > tol`` and then becomes the new reference.
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


def train_classifier(
    model: Backbone,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    weight_decay: float = 5e-4,
    mode: str = "finetuned",
    augment: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "train",
) -> list[float]:
    """Train ``model`` with cross-entropy on ``images``/``labels`` (labels index the classifier rows).

    ``mode="fixed"`` trains only the classifier (the trunk is frozen and kept in eval mode);
    ``"finetuned"`` trains every layer. The model is left in eval mode. Returns the mean loss of
    every epoch.
    """
    if mode not in ("finetuned", "fixed"):
        raise ConfigError(f"`mode` must be 'finetuned' or 'fixed', got {mode!r}")
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise DataError(f"need as many labels as images (>0): {images.shape[0]} images, {labels.shape[0]} labels")
    n_out = model.classifier.n_seen
    if labels.min() < 0 or labels.max() >= n_out:
        raise DataError(f"`labels` must lie in [0, {n_out}), got [{int(labels.min())}, {int(labels.max())}]")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    params = list(model.classifier.parameters()) if mode == "fixed" else list(model.parameters())
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * ((images.shape[0] + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        model.train()
        if mode == "fixed":
            model.eval()
            model.classifier.train()
        total, count = 0.0, 0
        for idx in batches(images.shape[0], batch_size, gen):
            x = images[idx]
            if augment:
                x = _augment(x, gen)
            logits = model(x)
            loss = loss_fn(logits, labels[idx])
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        history.append(total / count)
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    log.info("%s: final training loss %.4f after %d epochs", desc, history[-1] if history else float("nan"), epochs)
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` in eval mode, in batches (train/eval flags restored)."""
    from niwt.importance import eval_mode

    with eval_mode(model):
        return torch.cat([model(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)], 0)
