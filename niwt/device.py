"""Where a run computes, and in which precision.

* :data:`DEVICES` / :func:`resolve_device`: ``"auto"`` (a CUDA GPU when torch sees one, else the
  CPU), ``"cpu"`` or ``"cuda"``; under torchrun each process takes the GPU of its ``LOCAL_RANK``
  (choose GPUs with ``CUDA_VISIBLE_DEVICES``).
* :data:`PRECISIONS` / :func:`autocast` / :func:`grad_scaler`: ``"fp32"`` (the default: results
  are those of a CPU run up to float rounding), ``"bf16"`` and ``"fp16"`` autocast for the
  training forward passes and importance extraction. fp16 runs on CUDA only, with loss scaling
  (``torch.amp.GradScaler``); bf16 needs no scaling and runs on the CPU too.
* :func:`to_device`: a batch moved to the device, without waiting when it sits in pinned memory.

Mixed precision and importance: with bf16 autocast the forward pass and the gradient w.r.t. the
importance layer are computed in bfloat16 (8 bits of mantissa). On the shapes networks (width
8, 48 images, 3 seeds, measured on the CPU) the per-image importance vectors keep a mean cosine
similarity of at least 0.998 with the fp32 ones (lowest single image: 0.98 on ``vgg``, 0.999 on
``resnet``); ``tests/test_device.py`` holds them to a mean above 0.99 and every image above 0.97.
The transfer itself always runs in the model's dtype. Precision is part of the stage keys of a resumed run (a bf16 model is not reused
for an fp32 run); the device is not (a run may continue on another device).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from niwt.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: the command line's help reads DEVICES without it
    import torch

__all__ = ["DEVICES", "PRECISIONS", "run_device", "resolve_device", "check_precision", "autocast", "grad_scaler", "to_device",
           "runtime_record"]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
"""Values of ``runtime.device``."""

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
"""Values of ``runtime.precision``."""

_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}  # torch dtypes, by name


def run_device(device: str, precision: str) -> torch.device:
    """The device a run computes on (``runtime.device`` on this machine, in this process), with
    ``runtime.precision`` checked against it.

    Raises:
        ConfigError: for ``"cuda"`` without a CUDA device, or a precision the device cannot run.
    """
    resolved = resolve_device(device)
    check_precision(precision, resolved)
    return resolved


def resolve_device(name: str = "auto") -> torch.device:
    """The device ``name`` stands for on this machine (and, under torchrun, in this process).

    Raises:
        ConfigError: for an unknown name, or ``"cuda"`` when torch sees no CUDA device.
    """
    import torch

    if name not in DEVICES:
        raise ConfigError(f"`runtime.device` must be one of {list(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("`runtime.device` is \"cuda\" but torch sees no CUDA device "
                          f"(torch {torch.__version__}, torch.cuda.is_available() is False); use --device cpu or "
                          "--device auto, or install a CUDA build of torch")
    from niwt.distributed import env_world_size, local_rank

    count = torch.cuda.device_count()
    index = local_rank() if env_world_size() > 1 else torch.cuda.current_device()
    if index >= count:
        raise ConfigError(f"this process has LOCAL_RANK={index} but sees {count} CUDA device(s); start at most "
                          f"{count} processes per machine (torchrun --nproc-per-node {count})")
    return torch.device("cuda", index)


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run.

    Raises:
        ConfigError: for an unknown precision, fp16 off CUDA, or bf16 on a GPU without bfloat16.
    """
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"`runtime.precision` must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"`runtime.precision` = \"fp16\" needs a CUDA device, but the run computes on {device}; "
                          "use --set runtime.precision=bf16 (works on CPUs) or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"`runtime.precision` = \"bf16\" but GPU {torch.cuda.get_device_name(device)} has no "
                          "bfloat16 support; use --set runtime.precision=fp16 or fp32")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """``torch.autocast`` on ``device`` with ``precision``'s dtype; nothing for fp32."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    check_precision(precision, device)
    return torch.autocast(device_type=device.type, dtype=getattr(torch, _DTYPES[precision]))


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 training (small fp16 gradients would otherwise round to 0); None otherwise."""
    import torch

    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``batch`` on ``device``; a copy from pinned memory does not make the host wait."""
    if batch.device == device:
        return batch
    return batch.to(device, non_blocking=batch.device.type == "cpu" and batch.is_pinned())


def runtime_record(device: torch.device, precision: str) -> dict[str, object]:
    """What a run records about where it ran: device (and GPU name), precision, processes."""
    import torch

    from niwt.distributed import world_size

    record: dict[str, object] = {"device": str(device), "precision": precision, "world_size": world_size()}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record
