r"""Neuron importance: the one place where gradients of logits w.r.t. a layer are taken.

For an image with activations :math:`A \in \mathbb{R}^{K \times h \times w}` at layer L and logit
:math:`o_c` of class c, the importance of channel k is (Grad-CAM's channel weight, Selvaraju et al.,
ICCV 2017; NIWT, ECCV 2018, https://arxiv.org/abs/1808.02861)

.. math:: \alpha^c_k = \sum_{i,j} \frac{\partial o_c}{\partial A_{k,i,j}}

(``reduction="sum"``, as the authors' code) or the same divided by :math:`h w` (``"mean"``, as
Grad-CAM). Transfer, extraction and explanations all go through :func:`importance_from_activations`.

Token layers (a vision transformer's blocks, or a norm inside one) output ``[N, T, D]``: T tokens
of D channels, the first :func:`token_prefix` of them class or register tokens and the rest the
patch tokens of an ``h x w`` grid. Their channels are the D dimensions and the sum (or mean) runs
over the patch tokens only, so the importance of a ViT layer is the Grad-CAM weight that
pytorch-grad-cam computes after its reshape of the patch tokens to ``[N, D, h, w]``
(:func:`token_grid`); a shift of a channel (:func:`shift_channels`) moves the patch tokens alone.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from niwt.checks import as_image_batch, as_labels
from niwt.data.source import iter_batches
from niwt.device import to_device
from niwt.errors import ConfigError, DataError

__all__ = [
    "REDUCTIONS",
    "neuron_importance",
    "importance_from_activations",
    "resolve_layer",
    "capture_layer",
    "eval_mode",
    "token_prefix",
    "token_grid",
    "patch_grid",
    "shift_channels",
    "channel_count",
    "position_count",
]

REDUCTIONS: tuple[str, ...] = ("sum", "mean")
"""Spatial reductions of the importance: ``"sum"`` (NIWT) and ``"mean"`` (Grad-CAM)."""


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


def _check_layout(activations: torch.Tensor, prefix: int) -> None:
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
    _check_layout(activations, prefix)
    if activations.ndim == 3:
        return int(activations.shape[1] - prefix)
    return int(activations[0, 0].numel())


def shift_channels(activations: torch.Tensor, shift: torch.Tensor, prefix: int = 0) -> torch.Tensor:
    """``activations`` with channel k moved by ``shift[:, k]`` at every position (every patch token).

    The gradient of anything computed from the result w.r.t. ``shift`` at 0 is the summed importance.
    """
    _check_layout(activations, prefix)
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


def _input_channels(model: nn.Module) -> int | None:
    """Input channels of the model's first convolution, or ``None`` when it has none."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else first.in_channels


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ConfigError(f"`reduction` must be one of {list(REDUCTIONS)}, got {reduction!r}")


def importance_from_activations(
    activations: torch.Tensor,
    scores: torch.Tensor,
    targets: torch.Tensor,
    reduction: str = "sum",
    *,
    create_graph: bool = False,
    prefix_tokens: int = 0,
) -> torch.Tensor:
    """Importance of ``targets`` given activations and the scores computed from them.

    Args:
        activations: ``[N, K, h, w]``, ``[N, K]`` or ``[N, T, D]`` token tensor that ``scores``
            depend on; must require grad.
        scores: ``[N, C]`` logits computed from ``activations`` with no coupling between images
            (eval mode), so one backward pass of the summed target logits gives per-image gradients.
        targets: ``[N]`` class index (column of ``scores``) per image.
        reduction: ``"sum"`` or ``"mean"`` over spatial positions.
        create_graph: keep the graph so the importances can themselves be differentiated
            (needed to optimise weights through them).
        prefix_tokens: for token activations, the class / register tokens left out of the sum.

    Returns:
        ``[N, K]`` importances (``[N, D]`` for tokens).
    """
    _check_reduction(reduction)
    _check_layout(activations, prefix_tokens)
    if targets.shape != (scores.shape[0],):
        raise DataError(f"`targets` must be [{scores.shape[0]}], got {tuple(targets.shape)}")
    picked = scores.gather(1, targets.long().view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(picked, activations, create_graph=create_graph)
    if grad.ndim == 2:
        return grad
    if grad.ndim == 3:
        patches = grad[:, prefix_tokens:]
        return patches.sum(1) if reduction == "sum" else patches.mean(1)
    dims = tuple(range(2, grad.ndim))
    return grad.sum(dims) if reduction == "sum" else grad.mean(dims)


def neuron_importance(
    model: nn.Module,
    layer: nn.Module | str,
    images: torch.Tensor,
    targets: torch.Tensor,
    reduction: str = "sum",
    *,
    batch_size: int | None = None,
    create_graph: bool = False,
    return_activations: bool = False,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Neuron importance of class ``targets[i]`` for image ``images[i]`` at ``layer``.

    :math:`\alpha^c_k = \sum_{i,j} \partial o_c / \partial A_{k,i,j}` (``"sum"``) or its spatial mean.
    The model runs in eval mode (dropout off, BatchNorm statistics frozen) and its previous
    train/eval flags are restored afterwards; hooks are always removed; no parameter's ``.grad`` is
    touched. Each batch costs one forward pass and one backward pass through the layers *after*
    ``layer``. It runs on the model's device (each batch is moved there) and returns tensors there,
    in the model's dtype; called under ``torch.autocast`` (:func:`niwt.device.autocast`), the
    forward and backward passes run in the lower precision (bf16: cosine > 0.99 with fp32 on the
    shapes networks, see :mod:`niwt.device`).

    Args:
        model: a classifier returning logits ``[N, C]``.
        layer: the module, or its dotted name (``"features"``, ``"layer4.0"``, a ViT's ``"blocks.10"``
            or ``"blocks.11.norm1"``).
        images: ``[N, C, H, W]`` float tensor (or NumPy array), converted to the model's dtype; C must
            match the model's first convolution and H, W its ``image_size`` when it has one.
        targets: ``[N]`` integer class indices into the logits.
        reduction: ``"sum"`` (NIWT) or ``"mean"`` (Grad-CAM) over spatial positions.
        batch_size: stream the images in batches of this size (memory stays flat), or all at once.
        create_graph: keep the graph for higher-order gradients (only without ``batch_size``).
        return_activations: also return the detached activations ``[N, K, h, w]`` (``[N, T, D]``
            at a token layer: see :func:`token_grid`).
        progress: called with the number of images done after each batch.

    Returns:
        ``[N, K]`` importances (and the activations if asked).

    Raises:
        ConfigError: unknown layer name or reduction.
        DataError: images of the wrong layout, dtype, channel count or size, with NaN, or none;
            targets of the wrong length or dtype, or outside the logits.

    Example:
        >>> alpha = neuron_importance(model, "features", x, y)  # doctest: +SKIP
    """
    _check_reduction(reduction)
    module = resolve_layer(model, layer)
    ref = next(model.parameters(), None)
    images = as_image_batch("images", images, channels=_input_channels(model),
                            size=getattr(model, "image_size", None), dtype=None if ref is None else ref.dtype)
    if images.shape[0] == 0:
        raise DataError("`images` is empty: give at least one image")
    targets = torch.from_numpy(as_labels("targets", targets, length=images.shape[0]))
    if create_graph and batch_size is not None:
        raise ConfigError("`create_graph=True` cannot be combined with `batch_size` streaming")
    step = batch_size or images.shape[0]
    out, acts = [], []
    device = ref.device if ref is not None else torch.device("cpu")
    prefix = token_prefix(model)
    with eval_mode(model), torch.enable_grad(), capture_layer(module) as store:
        for batch in iter_batches(images, None, step, pin_memory=device.type == "cuda"):
            store.clear()
            start = int(batch.positions[0])
            scores = model(to_device(batch.images, device))
            if len(store) != 1:
                raise DataError(f"layer {layer!r} ran {len(store)} times in one forward pass; expected once")
            tgt = targets[start : start + step]  # checked on the host: no wait for the device
            n_classes = scores.shape[1]
            if tgt.numel() and (tgt.min() < 0 or tgt.max() >= n_classes):
                raise DataError(f"`targets` must lie in [0, {n_classes}), got [{int(tgt.min())}, {int(tgt.max())}]")
            alpha = importance_from_activations(store[0], scores, tgt.to(scores.device), reduction,
                                                create_graph=create_graph, prefix_tokens=prefix)
            if ref is not None and alpha.dtype != ref.dtype:  # computed under autocast
                alpha = alpha.to(ref.dtype)
            out.append(alpha if create_graph else alpha.detach())
            if return_activations:
                acts.append(store[0].detach())
            if progress is not None:
                progress(min(start + step, images.shape[0]))
    result = torch.cat(out, 0)
    if return_activations:
        return result, torch.cat(acts, 0)
    return result
