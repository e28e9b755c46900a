"""A runnable check of the backbone contract, for every registered model and for new adapters.

Transfer relies on three identities of a backbone (see :mod:`niwt.models.backbones`):

(a) ``model(x) == classifier(forward_head(forward_features(x)))``, so activations can be cached;
(b) ``forward_head_shifted(head_cache(a), shift) == forward_head(a + shift)`` (each channel moved at every
    position, or every patch token of a token layer: :func:`niwt.layers.shift_channels`), in
    particular ``forward_head(a)`` at ``shift = 0``, so the fast head computes the same features;
(c) the gradient of the summed target logits w.r.t. ``shift`` at 0 equals the summed neuron
    importance at ``model.importance_layer`` (:func:`niwt.importance.neuron_importance`), so
    transfer's importances are the ones the mapping was trained on.

:func:`check_backbone` evaluates all three on a batch of images and names the first clause that fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from niwt.checks import as_image_batch, as_labels
from niwt.errors import ConfigError, DataError
from niwt.importance import importance_from_activations, neuron_importance
from niwt.layers import channel_count, eval_mode, shift_channels, token_prefix

__all__ = ["BackboneContractError", "CONTRACT_CLAUSES", "check_backbone"]

logger = logging.getLogger(__name__)

CONTRACT_CLAUSES: tuple[str, ...] = ("members", "a", "b", "c")
"""Clause names reported by :class:`BackboneContractError`: the required members, then (a), (b), (c)."""

_MEMBERS = ("forward_features", "forward_head", "head_cache", "forward_head_shifted", "classifier",
            "importance_layer")

_STATEMENTS = {
    "members": "the model has " + ", ".join(_MEMBERS),
    "a": "model(x) == classifier(forward_head(forward_features(x)))",
    "b": "forward_head_shifted(head_cache(a), shift) == forward_head(a + shift), also at shift = 0",
    "c": "d(target logits)/d(shift) at 0 == neuron_importance(model, model.importance_layer, x, targets, 'sum')",
}


class BackboneContractError(ConfigError):
    """A model breaks the backbone contract.

    Attributes:
        clause: which clause failed, one of :data:`CONTRACT_CLAUSES`.
    """

    def __init__(self, model: nn.Module, clause: str, detail: str) -> None:
        self.clause = clause
        super().__init__(
            f"{type(model).__name__} breaks the backbone contract, clause ({clause}) "
            f"{_STATEMENTS[clause]}: {detail}"
        )


def _compare(model: nn.Module, clause: str, what: str, actual: torch.Tensor, expected: torch.Tensor,
             rtol: float, atol: float) -> None:
    if actual.shape != expected.shape:
        raise BackboneContractError(model, clause, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    close = torch.isclose(actual, expected, rtol=rtol, atol=atol)
    if not bool(close.all()):
        diff = float((actual - expected).abs().max())
        scale = float(expected.abs().max())
        raise BackboneContractError(
            model, clause,
            f"{what}: {int((~close).sum())} of {close.numel()} values differ, max abs difference {diff:.3g} "
            f"(max |expected| {scale:.3g}; rtol={rtol:g}, atol={atol:g})",
        )


def _run(model: nn.Module, clause: str, step: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Run one computation of ``clause``; an exception there is a failure of that clause."""
    try:
        return step()
    except BackboneContractError:
        raise
    except Exception as exc:  # a broken adapter may fail in any way; report where
        raise BackboneContractError(model, clause, f"{type(exc).__name__}: {exc}") from exc


def check_backbone(
    model: nn.Module,
    images: torch.Tensor,
    *,
    targets: torch.Tensor | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Check that ``model`` fulfils the backbone contract on ``images``; raise on the first broken clause.

    Runs in eval mode without touching any parameter's ``.grad``; every sub-module's train/eval flag
    is restored afterwards. Values are compared elementwise with ``|actual - expected| <= atol +
    rtol * |expected|``; float64 models and images allow tight tolerances.

    Args:
        model: a :class:`~niwt.models.Backbone` or any module with the same members.
        images: ``[N, 3, H, W]`` float images (N >= 1), converted to the model's dtype and device.
        targets: ``[N]`` class per image for clause (c); by default ``i mod n_classes``.
        rtol: relative tolerance.
        atol: absolute tolerance.
        seed: seed of the random shift of clause (b).

    Raises:
        BackboneContractError: naming the failed clause ("members", "a", "b" or "c") and by how much.
        DataError: for malformed ``images`` or ``targets``.
    """
    missing = [name for name in _MEMBERS if not hasattr(model, name)]
    if missing:
        raise BackboneContractError(model, "members", f"missing {', '.join(missing)}")
    ref = next(model.parameters(), None)
    x = as_image_batch("images", images, channels=getattr(model, "in_channels", 3), size=getattr(model, "image_size", None),
                       dtype=None if ref is None else ref.dtype, device=None if ref is None else ref.device)
    if x.shape[0] == 0:
        raise DataError("`images` is empty: the contract check needs at least one image")
    with eval_mode(model):
        with torch.no_grad():
            logits = _run(model, "a", lambda: model(x))
            acts = _run(model, "a", lambda: model.forward_features(x))
            composed = _run(model, "a", lambda: model.classifier(model.forward_head(acts)))
            _compare(model, "a", "logits", composed, logits, rtol, atol)

            features = _run(model, "b", lambda: model.forward_head(acts))
            cache = _run(model, "b", lambda: model.head_cache(acts))
            prefix = token_prefix(model)
            zeros = torch.zeros((acts.shape[0], channel_count(acts)), dtype=acts.dtype, device=acts.device)
            at_zero = _run(model, "b", lambda: model.forward_head_shifted(cache, zeros))
            _compare(model, "b", "features at shift 0", at_zero, features, rtol, atol)
            gen = torch.Generator().manual_seed(seed)
            scale = float(acts.abs().mean())  # shifts of the activations' own size
            shift = (torch.randn(zeros.shape, generator=gen, dtype=acts.dtype) * scale).to(acts.device)
            moved = _run(model, "b", lambda: model.forward_head(shift_channels(acts, shift, prefix)))
            shifted = _run(model, "b", lambda: model.forward_head_shifted(cache, shift))
            _compare(model, "b", "features at a random shift", shifted, moved, rtol, atol)

        n_classes = logits.shape[1]
        if targets is None:
            tgt = torch.arange(x.shape[0], device=logits.device) % n_classes
        else:
            tgt = torch.from_numpy(as_labels("targets", targets, length=x.shape[0], n_classes=n_classes))
            tgt = tgt.to(logits.device)

        def shift_gradient() -> torch.Tensor:
            with torch.enable_grad():
                leaf = zeros.clone().requires_grad_(True)
                scores = model.classifier(model.forward_head_shifted(cache, leaf))
                return importance_from_activations(leaf, scores, tgt, "sum")

        grad = _run(model, "c", shift_gradient)
        expected = _run(model, "c", lambda: neuron_importance(model, model.importance_layer, x, tgt, "sum"))
        _compare(model, "c", "importances", grad, expected, rtol, atol)
    logger.debug("%s fulfils the backbone contract on %d image(s)", type(model).__name__, x.shape[0])
