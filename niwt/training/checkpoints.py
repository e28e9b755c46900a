"""Training checkpoints: the state to continue a training exactly after a kill (weights,
optimiser, schedule, the batch generator and torch's global generator), written atomically and
read back with ``weights_only=True``."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from niwt.errors import DataError

__all__ = ["save_checkpoint", "read_checkpoint", "apply_checkpoint", "load_checkpoint"]


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, losses: list[float]) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "losses": list(losses)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> dict | None:
    """A training checkpoint's state (tensors only: ``weights_only=True``), or None when there is none."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, TypeError, ValueError, pickle.UnpicklingError) as err:
        raise DataError(f"training checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); "
                        "delete it to train this stage from the start") from err


def apply_checkpoint(state: dict, path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
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


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator) -> list[float]:
    """Restore a training checkpoint (tensors only: ``weights_only=True``); the losses of its epochs."""
    state = read_checkpoint(path)
    return [] if state is None else apply_checkpoint(state, path, model, optimizer, scheduler, gen)

