"""What a trained model says about a dataset's images: GZSL scores over every class, and the
penultimate features the baselines are fitted on. Sharded over processes under torchrun."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from niwt import distributed
from niwt.data.settings import Setting
from niwt.data.source import ImageSource, iter_batches
from niwt.device import to_device
from niwt.errors import DataError
from niwt.layers import eval_mode
from niwt.models import Backbone, FeatureMLP

__all__ = ["predict_logits", "gzsl_scores", "spread_rows", "score_images", "model_features", "penultimate_features"]


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` in eval mode, in batches (train/eval flags restored), on the model's device."""
    from niwt.importance import eval_mode

    ref = next(model.parameters(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    with eval_mode(model):
        return torch.cat([model(to_device(x, device))
                          for _, x in iter_batches(images, None, batch_size, pin_memory=device.type == "cuda")], 0)


def gzsl_scores(model: Backbone, images: torch.Tensor | ImageSource, seen: np.ndarray, unseen: np.ndarray,
                n_classes: int) -> np.ndarray:
    """Logits of ``model`` (seen rows then unseen rows) spread into global class columns ``[N, C]``."""
    logits = distributed.on_shards(lambda part: predict_logits(model, part), images).cpu().double().numpy()
    return spread_rows(logits, seen, unseen, n_classes)


def spread_rows(logits: np.ndarray, seen: np.ndarray, unseen: np.ndarray, n_classes: int) -> np.ndarray:
    """Classifier-row logits ``[N, S + U]`` (seen rows, then unseen rows) as global class columns
    ``[N, C]``; columns of classes in neither set are ``-inf``."""
    scores = np.full((logits.shape[0], n_classes), -np.inf)
    scores[:, seen] = logits[:, : len(seen)]
    scores[:, unseen] = logits[:, len(seen) :]
    return scores


def score_images(model: Backbone, images: torch.Tensor | ImageSource, setting: Setting,
                 n_classes: int | None = None) -> np.ndarray:
    """GZSL scores ``[N, n_classes]`` of ``images``: column c is global class c.

    The model's rows are ``setting.fit_classes`` then ``setting.new_classes`` (as trained and
    transferred); columns of classes outside the setting are ``-inf``. ``n_classes`` defaults to
    the largest class id of the setting + 1.
    """
    n_classes = n_classes if n_classes is not None else int(setting.classes.max()) + 1
    n_rows = model.classifier.n_seen + model.classifier.n_unseen
    if n_rows != setting.classes.size:
        raise DataError(f"`model` has {n_rows} classifier rows ({model.classifier.n_seen} seen, "
                        f"{model.classifier.n_unseen} unseen) but the {setting.name} setting has "
                        f"{len(setting.fit_classes)} + {len(setting.new_classes)} classes; transfer the new "
                        "classes first")
    return gzsl_scores(model, images, setting.fit_classes, setting.new_classes, n_classes)


@torch.no_grad()
def model_features(model: Backbone, images: torch.Tensor | ImageSource, batch_size: int = 512, *,
                   device: torch.device | str | None = None) -> np.ndarray:
    """The classifier's input features ``model.forward_head(model.forward_features(x))`` ``[N, D]``
    of every image (float64), in eval mode without gradients, a batch at a time: the one feature
    extractor. ``device`` runs the model there (its own device when None); its mode and device are
    restored afterwards.

    Raises:
        DataError: if ``batch_size`` is not a positive int.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"`batch_size` must be a positive int, got {batch_size!r}")
    home = model.classifier.weight.device
    target = torch.device(device) if device is not None else home

    def features(part: torch.Tensor | ImageSource) -> torch.Tensor:
        return torch.cat([torch.flatten(model.forward_head(model.forward_features(to_device(x, target))), 1)
                          for _, x in iter_batches(part, None, int(batch_size), pin_memory=target.type == "cuda")])

    model.to(target)
    try:
        with eval_mode(model):
            return distributed.on_shards(features, images).cpu().double().numpy()
    finally:
        model.to(home)


def penultimate_features(model: Backbone, images: torch.Tensor | ImageSource, batch_size: int = 512) -> np.ndarray:
    """What the baselines are fitted on: the classifier's input features ``[N, D]``
    (:func:`model_features`), or, in feature mode, the dataset's own features (the baselines'
    published setting)."""
    if isinstance(model, FeatureMLP):
        return torch.cat([torch.flatten(x, 1) for _, x in iter_batches(images, None, batch_size)]).double().numpy()
    return model_features(model, images, batch_size)
