"""Typed, frozen result records of the commands: every record has ``to_dict()`` (what
``metrics.json`` holds) and, where a command reads it back, ``from_dict()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from niwt.errors import DataError
from niwt.evaluate import GZSLReport
from niwt.results.paired import PairedDifference, paired_difference, verdict
from niwt.results.published import PUBLISHED_GZSL

__all__ = ["METRICS", "GridPoint", "Selection", "MethodResult", "SeedRun", "Comparison", "SweepRow", "Sweep", "Arm",
           "Claim", "LambdaCurve", "Reproduction", "AblationRow", "Ablation", "RunMetrics"]

METRICS = (("seen_acc", "S"), ("unseen_acc", "U"), ("H", "H"), ("zsl_acc", "ZSL"), ("ausuc", "AUSUC"))
"""The reported metrics: key in :class:`~niwt.evaluate.GZSLReport` and column title."""

_KEYS = tuple(k for k, _ in METRICS)


def _metrics(report: GZSLReport) -> dict[str, float]:
    d = report.to_dict()
    return {k: d[k] for k in _KEYS}


@dataclass(frozen=True)
class GridPoint:
    """One hyper-parameter point tried on the validation setting, and what it scored there."""

    params: dict[str, float]
    report: GZSLReport
    calibrated_gamma: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {**self.params, "seen_acc": r.seen_acc, "unseen_acc": r.unseen_acc, "H": r.H,
                "calibration": r.calibration, "calibrated_gamma": self.calibrated_gamma, "report": r.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridPoint:
        report = GZSLReport(**d["report"])
        skip = {"seen_acc", "unseen_acc", "H", "calibration", "calibrated_gamma", "report"}
        return cls({k: v for k, v in d.items() if k not in skip}, report, float(d.get("calibrated_gamma", 0.0)))


@dataclass(frozen=True)
class Selection:
    """Hyper-parameters of one method: chosen by H on validation classes, or given.

    Attributes:
        params: the chosen values (e.g. ``{"lam": 3e-3, "lr": 3e-3}`` for NIWT).
        calibration: calibrated-stacking constant chosen with them (0 when calibration is off).
        grid: every point tried, in order (empty when nothing was validated).
    """

    params: dict[str, float]
    calibration: float = 0.0
    grid: tuple[GridPoint, ...] = ()
    calibrated_gamma: float | None = None

    @property
    def validated(self) -> bool:
        return bool(self.grid)

    @classmethod
    def best_of(cls, grid: list[GridPoint]) -> Selection:
        """The point of highest validation H (the first one on ties)."""
        best = grid[0]
        for point in grid[1:]:
            if point.report.H > best.report.H:
                best = point
        return cls(dict(best.params), best.report.calibration, tuple(grid), best.calibrated_gamma)

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": dict(self.params), "calibration": self.calibration, "validated": self.validated,
                "calibrated_gamma": self.calibrated_gamma, "grid": [p.to_dict() for p in self.grid]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Selection:
        gamma = d.get("calibrated_gamma")
        return cls(dict(d["chosen"]), float(d["calibration"]), tuple(GridPoint.from_dict(p) for p in d["grid"]),
                   None if gamma is None else float(gamma))


@dataclass(frozen=True)
class MethodResult:
    """One method's GZSL report on the final setting, with how its hyper-parameters were chosen."""

    method: str
    report: GZSLReport
    selection: Selection
    seconds: dict[str, float] = field(default_factory=dict)
    calibrated: GZSLReport | None = None

    def metrics(self, calibrated: bool = False) -> dict[str, float]:
        if calibrated:
            if self.calibrated is None:
                raise DataError(f"{self.method}: no calibrated result (nothing was chosen on validation classes)")
            return _metrics(self.calibrated)
        return _metrics(self.report)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **self.metrics(), "selection": self.selection.to_dict(),
                "seconds": dict(self.seconds), "report": self.report.to_dict(),
                "calibrated": None if self.calibrated is None else self.calibrated.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MethodResult:
        """The record written by :meth:`to_dict` (a run directory's stage results)."""
        cal = d.get("calibrated")
        return cls(d["method"], GZSLReport(**d["report"]), Selection.from_dict(d["selection"]), dict(d["seconds"]),
                   None if cal is None else GZSLReport(**cal))


@dataclass(frozen=True)
class SeedRun:
    """Every method's result for one seed."""

    seed: int
    results: tuple[MethodResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "methods": {r.method: r.to_dict() for r in self.results}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedRun:
        return cls(int(d["seed"]), tuple(MethodResult.from_dict(r) for r in d["methods"].values()))


@dataclass(frozen=True)
class Comparison:
    """Methods side by side over seeds: per-seed values and their mean and (population) std."""

    runs: tuple[SeedRun, ...]
    dataset: str = ""
    protocol: str = ("hyper-parameters chosen by H on the seen val classes acting as unseen; then refit on all "
                     "seen classes; test images used only for the reported numbers")

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(r.method for r in self.runs[0].results)

    @property
    def has_calibrated(self) -> bool:
        return all(r.calibrated is not None for run in self.runs for r in run.results)

    def values(self, method: str, key: str = "H", calibrated: bool = False) -> np.ndarray:
        """``key`` of ``method`` on every seed, in seed order."""
        i = self.methods.index(method)
        return np.array([run.results[i].metrics(calibrated)[key] for run in self.runs])

    def paired(self, key: str = "H", calibrated: bool = False, n_boot: int = 10_000,
               seed: int = 0) -> tuple[PairedDifference, ...]:
        """For every pair of methods, the mean paired difference of ``key`` over seeds with a
        percentile bootstrap 95 % interval (seeds resampled with replacement)."""
        methods = self.methods
        return tuple(paired_difference(a, b, self.values(a, key, calibrated), self.values(b, key, calibrated), key,
                                       calibrated=calibrated, n_boot=n_boot, seed=seed)
                     for a_i, a in enumerate(methods) for b in methods[a_i + 1 :])

    def summary(self, calibrated: bool = False) -> dict[str, dict[str, float]]:
        """``{method: {key: mean, key_std: std}}`` over seeds."""
        out: dict[str, dict[str, float]] = {}
        for i, method in enumerate(self.methods):
            values = {k: np.array([run.results[i].metrics(calibrated)[k] for run in self.runs]) for k in _KEYS}
            out[method] = {}
            for k, v in values.items():
                out[method][k] = float(v.mean())
                out[method][f"{k}_std"] = float(v.std())
        return out

    def niwt_selection(self) -> Selection | None:
        """NIWT's selection on the first seed (None when NIWT was not run)."""
        return next((r.selection for r in self.runs[0].results if r.method == "niwt"), None)

    def to_dict(self) -> dict[str, Any]:
        out = {"methods": self.summary(), "per_seed": [run.to_dict() for run in self.runs],
               "protocol": self.protocol, "dataset": self.dataset,
               "paired_H": [p.to_dict() for p in self.paired()] if len(self.runs) > 1 else []}
        if self.has_calibrated:
            out["methods_calibrated"] = self.summary(calibrated=True)
            if len(self.runs) > 1:
                out["paired_H_calibrated"] = [p.to_dict() for p in self.paired(calibrated=True)]
        known = PUBLISHED_GZSL.get(self.dataset.upper(), {})
        if known:
            out["published_quoted"] = {"source": "Xian et al., TPAMI 2018, GZSL on xlsa17 ResNet-101 features (%)",
                                       **{m: dict(zip(("U", "S", "H"), v)) for m, v in known.items()}}
        return out


    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        """The comparison :meth:`to_dict` wrote (its per-seed records; the rest is computed from them)."""
        return cls(tuple(SeedRun.from_dict(r) for r in d["per_seed"]), dataset=d.get("dataset", ""),
                   protocol=d["protocol"])


@dataclass(frozen=True)
class SweepRow:
    """The test metrics for one Λ, the steps taken and the unseen/seen row-norm ratio."""

    lam: float
    report: GZSLReport
    steps: int
    unseen_norm_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, **_metrics(self.report), "steps": self.steps,
                "unseen_norm_ratio": self.unseen_norm_ratio}


@dataclass(frozen=True)
class Sweep:
    """The Λ sweep (a test-set analysis, not a selection) and one sentence on its shape."""

    rows: tuple[SweepRow, ...]
    finding: str
    note: str = "test-set analysis of Λ; not used to choose it"

    def to_dict(self) -> dict[str, Any]:
        best = max(self.rows, key=lambda r: r.report.unseen_acc)
        return {"sweep": [r.to_dict() for r in self.rows], "best_unseen_lam": best.lam, "finding": self.finding,
                "note": self.note}


@dataclass(frozen=True)
class Arm:
    """One configuration run on every seed (e.g. NIWT, finetuned, attributes), its result per seed."""

    name: str
    results: tuple[MethodResult, ...]

    def values(self, key: str = "H", calibrated: bool = False) -> np.ndarray:
        return np.array([r.metrics(calibrated)[key] for r in self.results])

    def to_dict(self) -> dict[str, Any]:
        h = self.values()
        return {"arm": self.name, "H_mean": float(h.mean()), "H_std": float(h.std()),
                "per_seed": [r.to_dict() for r in self.results]}


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims, as a paired difference over seeds that it says is positive."""

    statement: str
    paper: str
    difference: PairedDifference

    @property
    def verdict(self) -> str:
        return verdict(self.difference)

    def to_dict(self) -> dict[str, Any]:
        d = self.difference.to_dict()
        d.pop("verdict")
        return {"claim": self.statement, "paper": self.paper, "verdict": self.verdict, **d}


@dataclass(frozen=True)
class LambdaCurve:
    """S, U and H on the test images against Λ for every seed (an analysis, as the paper's figure),
    and per seed the Λ of highest unseen accuracy on the *validation* classes."""

    lams: tuple[float, ...]
    seen: np.ndarray  # [seeds, lams]
    unseen: np.ndarray
    harmonic: np.ndarray
    validation_peak: tuple[float, ...]

    def at(self, key: str, lams: list[float] | tuple[float, ...]) -> np.ndarray:
        """``key`` ("seen_acc", "unseen_acc", "H") on each seed at that seed's Λ."""
        table = {"seen_acc": self.seen, "unseen_acc": self.unseen, "H": self.harmonic}[key]
        return np.array([table[i, self.lams.index(lam)] for i, lam in enumerate(lams)])

    def to_dict(self) -> dict[str, Any]:
        return {"lams": list(self.lams), "seen_acc": self.seen.tolist(), "unseen_acc": self.unseen.tolist(),
                "H": self.harmonic.tolist(), "validation_peak_lam": list(self.validation_peak),
                "note": "test-set analysis of Λ; the peak Λ of each seed is chosen on validation classes"}


@dataclass(frozen=True)
class Reproduction:
    """The paper's claims tested on one world over seeds: each claim's paired difference, its
    bootstrap interval and verdict; the arms behind them; and the Λ curve."""

    seeds: tuple[int, ...]
    arms: tuple[Arm, ...]
    claims: tuple[Claim, ...]
    curve: LambdaCurve
    world: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"world": self.world, "seeds": list(self.seeds), "claims": [c.to_dict() for c in self.claims],
                "arms": [a.to_dict() for a in self.arms], "lambda_curve": self.curve.to_dict(),
                "protocol": "hyper-parameters chosen on validation classes; verdicts from a percentile bootstrap "
                            "95 % interval of the paired difference over seeds"}


@dataclass(frozen=True)
class AblationRow:
    """One alternative to a design choice of NIWT: the alternative minus the paper's choice, in H."""

    factor: str
    default: str
    alternative: str
    difference: PairedDifference

    @property
    def verdict(self) -> str:
        v = verdict(self.difference)
        return {"holds": "the alternative is better", "does not hold": "the paper's choice is better"}.get(
            v, "no difference these seeds can show")

    def to_dict(self) -> dict[str, Any]:
        d = self.difference.to_dict()
        d.pop("verdict")
        return {"factor": self.factor, "default": self.default, "alternative": self.alternative,
                "verdict": self.verdict, **d}


@dataclass(frozen=True)
class Ablation:
    """NIWT with one design choice changed at a time, on the same trained backbones and seeds."""

    seeds: tuple[int, ...]
    arms: tuple[Arm, ...]
    rows: tuple[AblationRow, ...]
    world: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"world": self.world, "seeds": list(self.seeds), "ablations": [r.to_dict() for r in self.rows],
                "arms": [a.to_dict() for a in self.arms]}


@dataclass(frozen=True)
class RunMetrics:
    """What a run's ``metrics.json`` holds: the command's result record, the resolved config as a
    dictionary, and where the run computed (device, precision, processes)."""

    result: Comparison | Sweep | Reproduction | Ablation
    config: dict[str, Any]
    runtime: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "config": self.config, "runtime": self.runtime}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunMetrics:
        """The metrics of a run that compared methods (``run``, ``demo``, ``compare``).

        Raises:
            DataError: for the metrics of another command (a sweep, claims or ablations).
        """
        if "per_seed" not in d:
            raise DataError("these metrics hold no per-seed comparison (they were written by `niwt sweep-lambda`, "
                            "`reproduce` or `ablate`); read a run of `niwt run`, `demo` or `compare`")
        return cls(Comparison.from_dict(d), dict(d["config"]), dict(d["runtime"]))
