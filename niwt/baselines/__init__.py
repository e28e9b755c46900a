"""Zero-shot baselines on fixed image features: ALE, DEM, ESZSL and SAE.

All share one interface (see :class:`ZSLBaseline`): ``fit(X [N, D], y [N], S [C, d])`` with ``y``
row indices into ``S``, ``decision_function(X [M, D], S [K, d]) -> [M, K]`` and
``predict(X, S) -> [M]``. GZSL scores come from passing the vectors of all classes as ``S``.

The registry names each baseline and the module that implements it; a class is imported when it
is first asked for, so reading the names (the command line's help does) loads no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from niwt.errors import ConfigError

if TYPE_CHECKING:
    from niwt.baselines._base import ZSLBaseline
    from niwt.baselines.ale import ALE
    from niwt.baselines.dem import DEM
    from niwt.baselines.eszsl import ESZSL
    from niwt.baselines.sae import SAE

__all__ = ["ALE", "DEM", "ESZSL", "SAE", "ZSLBaseline", "BASELINES", "BASELINE_NAMES", "get_baseline"]

_CLASSES: dict[str, tuple[str, str]] = {
    "ale": ("niwt.baselines.ale", "ALE"),
    "dem": ("niwt.baselines.dem", "DEM"),
    "eszsl": ("niwt.baselines.eszsl", "ESZSL"),
    "sae": ("niwt.baselines.sae", "SAE"),
}

BASELINE_NAMES: tuple[str, ...] = tuple(_CLASSES)
"""The registered baseline names, in registration order (the valid names of :func:`get_baseline`)."""


class _Registry(Mapping[str, "type[ZSLBaseline]"]):
    """Baseline classes by lower-case name, each imported when first looked up."""

    def __getitem__(self, name: str) -> type[ZSLBaseline]:
        module, cls = _CLASSES[name]
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


BASELINES: Mapping[str, type[ZSLBaseline]] = _Registry()
"""Baseline classes by lower-case name."""


def __getattr__(name: str) -> Any:
    for key, (_module, cls) in _CLASSES.items():
        if cls == name:
            return BASELINES[key]
    if name == "ZSLBaseline":
        return importlib.import_module("niwt.baselines._base").ZSLBaseline
    raise AttributeError(f"module 'niwt.baselines' has no attribute {name!r}")


def get_baseline(name: str, **params: Any) -> ZSLBaseline:
    """Build a baseline by name.

    Args:
        name: one of ``BASELINES`` (case-insensitive).
        **params: constructor parameters of that baseline.

    Returns:
        An unfitted estimator.

    Raises:
        ConfigError: for an unknown name (listing the valid ones) or an unknown parameter (naming it
            and listing the valid ones).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _CLASSES:
        raise ConfigError(f"unknown baseline {name!r}; valid names: {sorted(_CLASSES)}")
    cls = BASELINES[key]
    valid = cls._param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown} for baseline {key!r}; valid parameters: {valid}"
        )
    return cls(**params)
