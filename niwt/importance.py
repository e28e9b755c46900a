r"""Neuron importance: the one place where gradients of logits w.r.t. a layer are taken.

For an image with activations :math:`A \in \mathbb{R}^{K \times h \times w}` at layer L and logit
:math:`o_c` of class c, the importance of channel k is (Grad-CAM's channel weight, Selvaraju et al.,
ICCV 2017; NIWT, ECCV 2018, https://arxiv.org/abs/1808.02861)

.. math:: \alpha^c_k = \sum_{i,j} \frac{\partial o_c}{\partial A_{k,i,j}}

(``reduction="sum"``, as the authors' code) or the same divided by :math:`h w` (``"mean"``, as
Grad-CAM). Transfer, extraction and explanations all go through :func:`importance_from_activations`.

Token layers (a vision transformer's blocks, or a norm inside one) output ``[N, T, D]``: T tokens
of D channels, the first :func:`~niwt.layers.token_prefix` of them class or register tokens and the rest the
patch tokens of an ``h x w`` grid. Their channels are the D dimensions and the sum (or mean) runs
over the patch tokens only, so the importance of a ViT layer is the Grad-CAM weight that
pytorch-grad-cam computes after its reshape of the patch tokens to ``[N, D, h, w]``
(:func:`~niwt.layers.token_grid`); a shift of a channel (:func:`~niwt.layers.shift_channels`) moves the patch tokens alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from niwt.checks import as_image_batch, as_labels
from niwt.data.source import iter_batches
from niwt.device import to_device
from niwt.errors import ConfigError, DataError
from niwt.layers import capture_layer, check_layout, eval_mode, resolve_layer, token_prefix

__all__ = ["REDUCTIONS", "neuron_importance", "importance_from_activations"]

REDUCTIONS: tuple[str, ...] = ("sum", "mean")
"""Spatial reductions of the importance: ``"sum"`` (NIWT) and ``"mean"`` (Grad-CAM)."""


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
    check_layout(activations, prefix_tokens)
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
            at a token layer: see :func:`~niwt.layers.token_grid`).
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
