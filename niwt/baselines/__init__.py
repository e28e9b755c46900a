"""Zero-shot baselines on fixed image features: ALE, DEM, ESZSL and SAE.

All share one interface (see :class:`ZSLBaseline`): ``fit(X [N, D], y [N], S [C, d])`` with ``y``
row indices into ``S``, ``decision_function(X [M, D], S [K, d]) -> [M, K]`` and
``predict(X, S) -> [M]``. GZSL scores come from passing the vectors of all classes as ``S``.
"""

from __future__ import annotations

from typing import Any

from niwt.baselines._base import ZSLBaseline
from niwt.baselines.ale import ALE
from niwt.baselines.dem import DEM
from niwt.baselines.eszsl import ESZSL
from niwt.baselines.sae import SAE
from niwt.errors import ConfigError

__all__ = ["ALE", "DEM", "ESZSL", "SAE", "ZSLBaseline", "BASELINES", "BASELINE_NAMES", "get_baseline"]

BASELINES: dict[str, type[ZSLBaseline]] = {"ale": ALE, "dem": DEM, "eszsl": ESZSL, "sae": SAE}
"""Baseline classes by lower-case name."""

BASELINE_NAMES: tuple[str, ...] = tuple(BASELINES)
"""The registered baseline names, in registration order (the valid names of :func:`get_baseline`)."""


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
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; valid names: {sorted(BASELINES)}")
    cls = BASELINES[key]
    valid = cls._param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown} for baseline {key!r}; valid parameters: {valid}"
        )
    return cls(**params)
