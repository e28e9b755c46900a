"""What a config leaves to the run, filled in: the dataset's seed, the model's sizes, the input
convention of a timm backbone; and the model options a config gives :func:`niwt.models.create_model`."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from niwt.config.schema import RunConfig
from niwt.errors import ConfigError
from niwt.models import TIMM_PREFIX, model_defaults, model_settings

__all__ = ["resolve_config", "model_options"]

log = logging.getLogger(__name__)


def _model_defaults(arch: str) -> dict[str, Any]:
    """The settings the backbone ``arch`` accepts, with its defaults."""
    return model_defaults(arch)


def model_options(config: RunConfig, in_features: int | None = None) -> dict[str, object]:
    """The settings of ``config`` that its architecture uses (the config refuses the others), as
    keyword arguments of :func:`niwt.models.create_model`; ``in_features`` is the width of a
    features dataset (for the ``mlp`` model)."""
    m = config.model
    kwargs = {"width": m.width, "hidden": m.hidden, "dropout": m.dropout, "image_size": config.data.image_size,
              "in_features": in_features, "weights": m.weights, "layer": config.importance.layer or None}
    accepted = model_settings(m.arch)
    return {k: v for k, v in kwargs.items() if v is not None and k in accepted}


def resolve_config(config: RunConfig) -> RunConfig:
    """Fill what a config leaves to the run: the dataset's seed follows the run's seed when unset,
    and the model's unset sizes become the chosen architecture's defaults (settings it cannot use
    are refused)."""
    if config.data.seed is None:
        config = replace(config, data=replace(config.data, seed=config.seed))
    accepted = _model_defaults(config.model.arch)
    m = config.model
    for name in ("hidden", "dropout", "weights"):
        value = getattr(m, name)
        if name not in accepted:
            if value is not None:
                raise ConfigError(f"`model.{name}` cannot be used by model {m.arch!r} (it accepts "
                                  f"{', '.join(sorted(accepted)) or 'no settings'}); remove it from the config")
        elif value is None:
            m = replace(m, **{name: accepted[name]})
    if m.arch.startswith(TIMM_PREFIX) and getattr(config.data, "normalize", False):
        # a timm backbone normalises its inputs itself, with its weights' convention
        log.info("model %s takes images in [0, 1] and applies its own input convention: data.normalize = false", m.arch)
        config = replace(config, data=replace(config.data, normalize=False))
    return replace(config, model=m)

