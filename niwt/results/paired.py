"""Paired differences over seeds: the mean, a percentile bootstrap 95 % interval, and a verdict
(the one bootstrap of the package)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from niwt.errors import DataError

__all__ = ["PairedDifference", "paired_difference", "verdict"]


@dataclass(frozen=True)
class PairedDifference:
    """``method_a`` minus ``method_b`` in ``key``, paired by seed: the mean, its bootstrap 95 %
    interval over seeds, and on how many seeds ``a`` was ahead."""

    method_a: str
    method_b: str
    key: str
    mean: float
    low: float
    high: float
    wins: int
    seeds: int
    calibrated: bool = False

    @property
    def verdict(self) -> str:
        if self.seeds < 2:
            return "inconclusive (one seed)"
        if self.low > 0:
            return f"{self.method_a} ahead"
        if self.high < 0:
            return f"{self.method_b} ahead"
        return "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.method_a, "b": self.method_b, "key": self.key, "mean_difference": self.mean,
                "ci95": [self.low, self.high], "a_ahead_on_seeds": self.wins, "seeds": self.seeds,
                "calibrated": self.calibrated, "verdict": self.verdict}


def paired_difference(a: str, b: str, values_a: np.ndarray, values_b: np.ndarray, key: str = "H", *,
                      calibrated: bool = False, n_boot: int = 10_000, seed: int = 0) -> PairedDifference:
    """``values_a - values_b`` paired by seed: the mean and its percentile bootstrap 95 % interval
    (seeds resampled with replacement, ``n_boot`` times, from a generator seeded by ``seed``)."""
    d = np.asarray(values_a, dtype=np.float64) - np.asarray(values_b, dtype=np.float64)
    if d.ndim != 1 or not d.size:
        raise DataError(f"paired values must be two equal-length 1-d arrays, got {np.shape(values_a)} and "
                        f"{np.shape(values_b)}")
    picks = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    lo, hi = np.percentile(d[picks].mean(1), [2.5, 97.5])
    return PairedDifference(a, b, key, float(d.mean()), float(lo), float(hi), int((d > 0).sum()), int(d.size),
                            calibrated)



def verdict(difference: PairedDifference) -> str:
    """``holds`` when the 95 % interval of ``a - b`` lies above 0, ``does not hold`` when it lies
    below, ``inconclusive`` otherwise (and always with fewer than two seeds)."""
    if difference.seeds < 2:
        return "inconclusive"
    if difference.low > 0:
        return "holds"
    if difference.high < 0:
        return "does not hold"
    return "inconclusive"

