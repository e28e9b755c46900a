"""Layer plumbing: a layer of a model found by name, a model put in eval mode and given back as it
was, a layer's output captured as a gradient leaf, and the layout of token layers (a vision
transformer's ``[N, T, D]`` activations: prefix tokens, the patch grid, channel shifts).

What :mod:`niwt.importance` (the one place gradients of logits w.r.t. a layer are taken), the
transfer's fast path, the backbones and the explanations share about layers.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator

import torch
from torch import nn

from niwt.errors import ConfigError, DataError

__all__ = [
    "resolve_layer",
    "capture_layer",
    "eval_mode",
    "token_prefix",
    "token_grid",
    "patch_grid",
    "shift_channels",
    "channel_count",
    "position_count",
    "check_layout",
]


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    """Return the sub-module ``layer`` of ``model``, given as a module or its dotted name."""
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ConfigError("`layer` is a module that is not part of `model`")
        return layer
    names = [name for name, _ in model.named_modules() if name]
    if layer not in names:
        close = difflib.get_close_matches(layer, names, n=8, cutoff=0.6)
        shown = close or names[:8]
        raise ConfigError(f"unknown layer {layer!r}; {'close' if close else 'some valid'} names: {', '.join(shown)}"
                          f" ({len(names)} in all: [name for name, _ in model.named_modules()] lists them)")
    return model.get_submodule(layer)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every sub-module in eval mode and restore each one's ``training`` flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def capture_layer(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the output of ``module`` as a fresh leaf that requires grad.

    The hook swaps the layer's output for ``output.detach().requires_grad_()``, so later layers
    compute from that leaf: gradients w.r.t. the layer need only the part of the network after it,
    and nothing flows into earlier layers or touches any parameter's ``.grad``. The hook is removed
    on exit, also when an exception is raised inside the block.
    """
    store: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise DataError(f"the importance layer must output a tensor, got {type(output).__name__}")
        leaf = output.detach().requires_grad_(True)
        store.append(leaf)
        # A copy goes on, so a following in-place op (ReLU(inplace=True), `out += identity`) modifies
        # the copy, not the leaf the gradient is taken with respect to.
        return leaf.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def token_prefix(model: nn.Module) -> int:
    """How many class / register tokens precede the patch tokens at the model's token layers.

    The ``num_prefix_tokens`` of ``model`` or of its first sub-module that has one (timm's vision
    transformers, and the niwt backbones built on them, say it); 0 when none does.
    """
    for module in model.modules():
        value = getattr(module, "num_prefix_tokens", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def check_layout(activations: torch.Tensor, prefix: int) -> None:
    if activations.ndim not in (2, 3, 4):
        raise DataError(f"layer activations must be [N, K], [N, T, D] tokens or [N, K, h, w], got "
                        f"{tuple(activations.shape)}")
    if activations.ndim == 3 and not 0 <= prefix < activations.shape[1]:
        raise DataError(f"token activations {tuple(activations.shape)} have {activations.shape[1]} tokens, fewer "
                        f"than {prefix} prefix tokens and one patch token")


def channel_count(activations: torch.Tensor) -> int:
    """The channels K of ``[N, K]`` / ``[N, K, h, w]`` activations, or D of ``[N, T, D]`` tokens."""
    return int(activations.shape[-1] if activations.ndim == 3 else activations.shape[1])


def position_count(activations: torch.Tensor, prefix: int = 0) -> int:
    """The positions a channel is summed over: ``h * w``, or the ``T - prefix`` patch tokens."""
    check_layout(activations, prefix)
    if activations.ndim == 3:
        return int(activations.shape[1] - prefix)
    return int(activations[0, 0].numel())


def shift_channels(activations: torch.Tensor, shift: torch.Tensor, prefix: int = 0) -> torch.Tensor:
    """``activations`` with channel k moved by ``shift[:, k]`` at every position (every patch token).

    The gradient of anything computed from the result w.r.t. ``shift`` at 0 is the summed importance.
    """
    check_layout(activations, prefix)
    if activations.ndim == 2:
        return activations + shift
    if activations.ndim == 4:
        return activations + shift[:, :, None, None]
    return torch.cat([activations[:, :prefix], activations[:, prefix:] + shift[:, None, :]], 1)


def patch_grid(model: nn.Module) -> tuple[int, int] | None:
    """``(h, w)`` of the model's patch grid (the ``grid_size`` of timm's patch embedding), or None."""
    for module in model.modules():
        grid = getattr(module, "grid_size", None)
        if isinstance(grid, tuple) and len(grid) == 2 and all(isinstance(g, int) for g in grid):
            return grid
    return None


def token_grid(activations: torch.Tensor, prefix: int = 0, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Patch tokens ``[N, T, D]`` laid out as ``[N, D, h, w]`` maps (4-D activations are returned as given).

    Args:
        activations: token activations.
        prefix: class / register tokens to drop first.
        grid: ``(h, w)`` of the patch grid (:func:`patch_grid`); square when not given or when it does
            not hold the tokens.

    Raises:
        DataError: the patch tokens do not fill the grid (a non-square count without ``grid``).
    """
    if activations.ndim == 4:
        return activations
    n_patch = position_count(activations, prefix)
    if grid is None or grid[0] * grid[1] != n_patch:
        side = round(n_patch ** 0.5)
        grid = (side, side)
    if grid[0] * grid[1] != n_patch:
        raise DataError(f"{n_patch} patch tokens (after {prefix} prefix tokens) do not fill a {grid[0]} x {grid[1]} "
                        "grid; give the model's patch grid")
    patches = activations[:, prefix:]
    return patches.reshape(patches.shape[0], grid[0], grid[1], patches.shape[2]).permute(0, 3, 1, 2)
