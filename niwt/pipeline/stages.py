"""Finished stages of a run: computed once, kept in the run directory, read back on ``--resume``.

A stage is a named step with a key (:func:`niwt.rundir.stage_key` of everything it is made
from). :func:`record_stage` keeps a typed record (``to_dict`` / ``from_dict``) as JSON, with any
other files its computation writes; :func:`model_stage` keeps a trained backbone as safetensors.
Both return the same type whether the stage was computed here or read back.

Under torchrun every process computes a stage (its collectives need them all), but rank 0 alone
looks for a finished stage, keeps scratch state and saves; a stage rank 0 finds is loaded there
and sent to the others.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

from niwt import distributed
from niwt.models import Backbone, save_weights
from niwt.rundir import StageStore, layout, write_json

__all__ = ["Record", "record_stage", "model_stage", "read_json"]

R = TypeVar("R", bound="Record")
V = TypeVar("V")


class Record(Protocol):
    """A typed, frozen result that round-trips through a JSON dictionary."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any: ...


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object of a file a stage wrote."""
    return json.loads(path.read_text(encoding="utf-8"))


def _run(store: StageStore | None, name: str, key: str, compute: Callable[[Path | None], V],
         save: Callable[[V, Path], None], load: Callable[[Path], V]) -> V:
    if store is None:
        return compute(None)
    if distributed.is_distributed():
        return _shared(store, name, key, compute, save, load)
    found = store.get(name, key)
    if found is not None:
        return load(found)
    value = compute(store.scratch(name, key))
    with store.put(name, key) as directory:
        save(value, directory)
    return value


def _shared(store: StageStore, name: str, key: str, compute: Callable[[Path | None], V],
            save: Callable[[V, Path], None], load: Callable[[Path], V]) -> V:
    main = distributed.is_main()
    found = store.get(name, key) if main else None
    if distributed.broadcast_object(found is not None):
        value = load(found) if main else None
        device = next(value.parameters()).device if isinstance(value, torch.nn.Module) else None
        # a pickled CUDA tensor would come back on rank 0's GPU: models travel as CPU copies
        sent = copy.deepcopy(value).cpu() if device is not None and device.type != "cpu" else value
        sent, on_gpu = distributed.broadcast_object((sent, device is not None and device.type != "cpu"))
        if main:
            return value
        return sent.to(torch.device("cuda", torch.cuda.current_device())) if on_gpu else sent
    value = compute(store.scratch(name, key) if main else None)
    if main:
        with store.put(name, key) as directory:
            save(value, directory)
    return value


def record_stage(store: StageStore | None, name: str, key: str,
                 compute: Callable[[], tuple[R, Callable[[Path], None] | None]], record: type[R]) -> R:
    """``record`` of a finished stage ``name`` with ``key``, or ``compute()``'s.

    ``compute`` returns the record and, when the stage has more to keep (weights, maps), a
    function that writes those files into the stage's directory.
    """
    def save(value: tuple[R, Callable[[Path], None] | None], directory: Path) -> None:
        result, write = value
        if write is not None:
            write(directory)
        write_json(directory / layout.STAGE_RESULT, result.to_dict())

    def load(directory: Path) -> tuple[R, None]:
        return record.from_dict(read_json(directory / layout.STAGE_RESULT)), None

    return _run(store, name, key, lambda _scratch: compute(), save, load)[0]


def model_stage(store: StageStore | None, name: str, key: str, compute: Callable[[Path | None], Backbone],
                load: Callable[[Path], Backbone]) -> Backbone:
    """A trained backbone: a finished stage's ``load(file)``, or ``compute(scratch)`` (``scratch``,
    None without a store, is where training keeps its checkpoint) saved as ``model.safetensors``."""
    return _run(store, name, key, compute, lambda model, d: save_weights(model, d / layout.STAGE_MODEL),
                lambda d: load(d / layout.STAGE_MODEL))
