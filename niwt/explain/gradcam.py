r"""Grad-CAM maps built on :func:`niwt.importance.neuron_importance` (Selvaraju et al., ICCV 2017).

For an image with activations :math:`A \in \mathbb{R}^{K \times h \times w}` at a layer and the
Grad-CAM channel weights of class c (the ``"mean"`` neuron importance)
:math:`\alpha^c_k = \frac{1}{hw}\sum_{i,j} \partial o_c / \partial A_{k,i,j}`, the map is

.. math:: L^c = \mathrm{ReLU}\Big(\sum_k \alpha^c_k A_k\Big),

bilinearly upsampled to the image size and scaled to [0, 1] per image by
:math:`(L - \min L) / (\max L - \min L)`. A map that is zero everywhere stays zero; a constant
positive map becomes all ones. No gradient is taken here: the weights and the activations come
from one call of ``neuron_importance``.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from niwt.checks import as_image_batch, as_labels
from niwt.errors import ConfigError, DataError
from niwt.importance import neuron_importance
from niwt.layers import patch_grid, token_grid, token_prefix

__all__ = ["grad_cam", "cam_from_activations", "scale_maps", "layer_importance", "predicted_classes"]

log = logging.getLogger(__name__)


def predicted_classes(model: nn.Module, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Arg-max logit of every image ``[N]`` (eval mode, flags restored, no gradients)."""
    from niwt.scores import predict_logits

    return predict_logits(model, images, batch_size or 512).argmax(1).cpu()


def layer_importance(
    model: nn.Module,
    layer: nn.Module | str,
    images: object,
    targets: object | None = None,
    *,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grad-CAM channel weights and activations of ``targets`` (default: the predicted classes).

    Args:
        model: a classifier returning logits ``[N, C]``.
        layer: the module or its dotted name.
        images: ``[N, C, H, W]`` float tensor or NumPy array.
        targets: ``[N]`` logit rows to explain, or ``None`` for each image's arg-max.
        batch_size: stream the images in batches of this size.

    Returns:
        ``(weights [N, K], activations [N, K, h, w], targets [N])``, all detached; a token layer's
        patch tokens come as ``[N, D, h, w]`` on the patch grid (:func:`niwt.layers.token_grid`).

    Raises:
        ConfigError: unknown layer, or a layer whose output the next operation overwrites in place.
        DataError: malformed images or targets (see :func:`niwt.importance.neuron_importance`).
    """
    x = as_image_batch("images", images, channels=None)
    if x.shape[0] == 0:
        raise DataError("`images` is empty: give at least one image")
    ref = next(model.parameters(), None)
    if ref is not None:
        x = x.to(device=ref.device, dtype=ref.dtype)
    if targets is None:
        y = predicted_classes(model, x, batch_size)
    else:
        y = torch.from_numpy(as_labels("targets", targets, length=x.shape[0]))
    try:
        weights, acts = neuron_importance(model, layer, x, y, reduction="mean", batch_size=batch_size,
                                          return_activations=True)
    except RuntimeError as exc:
        if "in-place" not in str(exc):
            raise
        raise ConfigError(
            f"layer {layer!r}: its output is overwritten in place by the operation that follows it (such as "
            "ReLU(inplace=True) or `out += identity`), so its importance cannot be taken there; choose that "
            f"in-place module itself or a later layer (torch: {exc})"
        ) from None
    if acts.ndim == 3:  # a ViT's tokens: the patch tokens as maps on the patch grid
        acts = token_grid(acts, token_prefix(model), patch_grid(model))
    if acts.ndim != 4:
        raise DataError(f"layer {layer!r} must output [N, K, h, w] activations or [N, T, D] tokens for a map, got "
                        f"{tuple(acts.shape)}")
    return weights, acts, y


def scale_maps(maps: torch.Tensor) -> torch.Tensor:
    """Scale each ``[H, W]`` map of ``maps`` ``[N, H, W]`` to [0, 1]: ``(m - min) / (max - min)``.

    An all-zero (or all-negative) map gives zeros and a constant positive map gives ones; the
    result never holds NaN.
    """
    flat = maps.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1)
    hi = flat.max(1).values.view(-1, 1, 1)
    span = hi - lo
    tiny = torch.finfo(maps.dtype).eps * hi.abs().clamp_min(torch.finfo(maps.dtype).tiny)
    varying = span > tiny
    scaled = (maps - lo) / torch.where(varying, span, torch.ones_like(span))
    constant = (hi > 0).to(maps.dtype).expand_as(maps)
    return torch.where(varying, scaled, constant)


def cam_from_activations(activations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""Grad-CAM maps ``[N, H, W]`` from activations ``[N, K, h, w]`` and channel weights ``[N, K]``.

    :math:`\mathrm{scale}(\mathrm{up}(\mathrm{ReLU}(\sum_k w_k A_k)))`, with bilinear upsampling
    (``align_corners=False``) to ``size`` and :func:`scale_maps`.
    """
    if activations.ndim != 4 or weights.shape != activations.shape[:2]:
        raise DataError(f"`activations` must be [N, K, h, w] and `weights` [N, K]; got {tuple(activations.shape)} "
                        f"and {tuple(weights.shape)}")
    raw = torch.relu((weights[:, :, None, None] * activations).sum(1, keepdim=True))
    up = nn.functional.interpolate(raw, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return scale_maps(up)


def grad_cam(
    model: nn.Module,
    layer: nn.Module | str,
    images: object,
    targets: object | None = None,
    *,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Grad-CAM maps of ``targets`` for ``images`` at ``layer``: ``[N, H, W]`` in [0, 1].

    Works on any classifier returning logits (a torchvision model or a niwt backbone, unseen rows
    included). The model runs in eval mode and its train/eval flags are restored; hooks are removed
    also on errors; no parameter's ``.grad`` is touched.

    Args:
        model: a classifier returning logits ``[N, C]``.
        layer: the module, or its dotted name (``"layer4"``, ``"features.29"``).
        images: ``[N, C, H, W]`` float tensor or NumPy array.
        targets: ``[N]`` logit rows to explain; ``None`` explains each image's predicted class.
        batch_size: stream the images in batches of this size.

    Returns:
        ``[N, H, W]`` maps on the model's device, each scaled to [0, 1] (see :func:`scale_maps`).

    Raises:
        ConfigError: unknown layer, or a layer whose output the next operation overwrites in place.
        DataError: malformed images or targets.

    Example:
        >>> cams = grad_cam(model, "features", x, y)  # doctest: +SKIP
    """
    weights, acts, _ = layer_importance(model, layer, images, targets, batch_size=batch_size)
    size = (int(images.shape[-2]), int(images.shape[-1]))
    log.debug("grad_cam: %d maps at %s from %s activations", acts.shape[0], size, tuple(acts.shape[1:]))
    return cam_from_activations(acts, weights, size)
