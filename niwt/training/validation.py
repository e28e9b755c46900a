"""Where a run's validation problems get their networks: each trained anew without its val
classes (``"networks"``), or the final network itself with its val classes' rows held out
(``"held_out_rows"``).

Hyper-parameters (NIWT's Λ and learning rate, the baselines' grids) and the calibration constant
are chosen on validation problems: some seen classes act as unseen and are learned back from
their descriptions. With ``"networks"`` each problem trains its own network on the other seen
classes. With ``"held_out_rows"`` nothing is trained: the problem's network is the final one with
the val classes' classifier rows taken out, so the choice is made inside the network that is
reported (and inside a classifier niwt did not train, which cannot be retrained: ``niwt adopt``).
Its test images are seen-class images the final network may have been trained on, so its seen
scores there are those of training images.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from niwt.errors import DataError
from niwt.models import Backbone
from niwt.models.head import ExtendableLinear
from niwt.training.classifier import TRAIN_MODES

__all__ = ["VALIDATIONS", "NETWORKS", "HELD_OUT_ROWS", "held_out_rows", "ADOPTED", "RUN_MODES"]

NETWORKS = "networks"
HELD_OUT_ROWS = "held_out_rows"
VALIDATIONS: tuple[str, ...] = (NETWORKS, HELD_OUT_ROWS)
"""How a validation problem gets its network (``eval.validation``): see the module docstring."""

ADOPTED = "adopted"
RUN_MODES: tuple[str, ...] = (*TRAIN_MODES, ADOPTED)
"""A run's ``train.mode``: niwt trains the seen classifier (:data:`~niwt.training.TRAIN_MODES`),
or ``"adopted"``: a classifier trained elsewhere is taken as it is (``niwt adopt``), nothing is
trained, and it can only be validated inside itself (``"held_out_rows"``)."""


def held_out_rows(model: Backbone, rows: np.ndarray) -> Backbone:
    """A copy of ``model`` whose classifier keeps only its seen rows ``rows``, in that order, and
    no unseen rows: the network of a validation problem whose val classes are the other rows.

    Args:
        model: a trained backbone (left unchanged).
        rows: indices of the seen rows to keep (at least one, each at most once).

    Raises:
        DataError: an empty ``rows``, a row repeated or not a seen row of ``model``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    head = model.classifier
    if rows.ndim != 1 or rows.size == 0:
        raise DataError(f"`rows` must list at least one classifier row to keep, got shape {rows.shape}")
    if len(set(rows.tolist())) != rows.size:
        raise DataError(f"`rows` must name each classifier row at most once, got {rows.tolist()}")
    if rows.min() < 0 or rows.max() >= head.n_seen:
        raise DataError(f"`rows` must be seen rows of the classifier (0 to {head.n_seen - 1}), got {rows.tolist()}")
    out = copy.deepcopy(model)
    kept = ExtendableLinear(head.in_features, int(rows.size)).to(head.weight.device, head.weight.dtype)
    index = torch.from_numpy(rows).to(head.weight.device)
    with torch.no_grad():
        kept.weight.copy_(head.weight.detach().index_select(0, index))
        kept.bias.copy_(head.bias.detach().index_select(0, index))
    out.classifier = kept
    return out.eval()
