"""The classifier whose rows can be appended: seen rows from training, unseen rows from transfer."""

from __future__ import annotations

import torch
from torch import nn

from niwt.errors import DataError

__all__ = ["ExtendableLinear"]


class ExtendableLinear(nn.Module):
    """A linear classifier ``[seen rows; unseen rows]`` over penultimate features.

    The seen rows (``weight``, ``bias``) are ordinary trainable parameters. Unseen rows live in
    ``unseen_weight``/``unseen_bias`` and are set by :meth:`set_unseen`; their logits follow the
    seen ones, so output column ``S + u`` is unseen class ``u``.

    Args:
        in_features: width D of the penultimate features.
        n_seen: number of seen classes S.
    """

    def __init__(self, in_features: int, n_seen: int) -> None:
        super().__init__()
        self.in_features = in_features
        layer = nn.Linear(in_features, n_seen)
        self.weight = nn.Parameter(layer.weight.detach().clone())  # [S, D]
        self.bias = nn.Parameter(layer.bias.detach().clone())  # [S]
        self.unseen_weight = nn.Parameter(torch.zeros(0, in_features), requires_grad=False)
        self.unseen_bias = nn.Parameter(torch.zeros(0), requires_grad=False)

    @property
    def n_seen(self) -> int:
        return self.weight.shape[0]

    @property
    def n_unseen(self) -> int:
        return self.unseen_weight.shape[0]

    def set_unseen(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Install unseen rows ``weight`` ``[U, D]`` (and optional ``bias`` ``[U]``, default 0)."""
        if weight.ndim != 2 or weight.shape[1] != self.in_features:
            raise DataError(
                f"`weight` must be [U, {self.in_features}], got {tuple(weight.shape)}"
            )
        if bias is None:
            bias = torch.zeros(weight.shape[0], dtype=weight.dtype)
        if bias.shape != (weight.shape[0],):
            raise DataError(f"`bias` must be [{weight.shape[0]}], got {tuple(bias.shape)}")
        ref = self.weight
        self.unseen_weight = nn.Parameter(weight.detach().to(ref.device, ref.dtype).clone(), requires_grad=False)
        self.unseen_bias = nn.Parameter(bias.detach().to(ref.device, ref.dtype).clone(), requires_grad=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([self.weight, self.unseen_weight], 0)  # [S+U, D]
        bias = torch.cat([self.bias, self.unseen_bias], 0)
        return nn.functional.linear(features, weight, bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # Unseen rows change shape when transfer runs; resize before loading a saved model.
        for name in ("unseen_weight", "unseen_bias"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, nn.Parameter(torch.empty_like(state_dict[key]), requires_grad=False))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_seen={self.n_seen}, n_unseen={self.n_unseen}"
