"""Typed, frozen result records of the commands, and the one function that formats them as tables.

Every record has ``to_dict()`` (what ``metrics.json`` holds); the command line prints records with
:func:`format_table`, :func:`format_sweep` and :func:`format_reproduction` and never inspects dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from niwt.errors import DataError
from niwt.evaluate import GZSLReport

__all__ = ["METRICS", "GridPoint", "Selection", "MethodResult", "SeedRun", "Comparison", "SweepRow", "Sweep",
           "ReproductionRow", "Reproduction", "format_table", "format_sweep", "format_reproduction", "PUBLISHED_GZSL", "PairedDifference", "format_paired"]

METRICS = (("seen_acc", "S"), ("unseen_acc", "U"), ("H", "H"), ("zsl_acc", "ZSL"), ("ausuc", "AUSUC"))
"""The reported metrics: key in :class:`~niwt.evaluate.GZSLReport` and column title."""

_KEYS = tuple(k for k, _ in METRICS)


def _metrics(report: GZSLReport) -> dict[str, float]:
    d = report.as_dict()
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
                "calibration": r.calibration, "calibrated_gamma": self.calibrated_gamma, "report": r.as_dict()}

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
                "seconds": dict(self.seconds), "report": self.report.as_dict(),
                "calibrated": None if self.calibrated is None else self.calibrated.as_dict()}

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
        rng = np.random.default_rng(seed)
        n = len(self.runs)
        picks = rng.integers(0, n, size=(n_boot, n))
        out = []
        methods = self.methods
        for a_i, a in enumerate(methods):
            for b in methods[a_i + 1 :]:
                d = self.values(a, key, calibrated) - self.values(b, key, calibrated)
                boot = d[picks].mean(1)
                lo, hi = np.percentile(boot, [2.5, 97.5])
                out.append(PairedDifference(a, b, key, float(d.mean()), float(lo), float(hi),
                                            int((d > 0).sum()), n, calibrated))
        return tuple(out)

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
               "protocol": self.protocol,
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
class ReproductionRow:
    """One cell of the paper's grid: backbone x training mode x knowledge x method."""

    arch: str
    mode: str
    knowledge: str
    result: MethodResult
    paper_h_awa2: float | None = None
    paper_h_cub: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "mode": self.mode, "knowledge": self.knowledge, "method": self.result.method,
                **self.result.metrics(), "paper_H_AWA2": self.paper_h_awa2, "paper_H_CUB": self.paper_h_cub}


@dataclass(frozen=True)
class Reproduction:
    """The paper's table on the shapes world, with the paper's NIWT H beside where known."""

    rows: tuple[ReproductionRow, ...]
    paper_reference: str = "NIWT H (%) from the paper as quoted by the seed review; shapes-world numbers are fractions"

    def to_dict(self) -> dict[str, Any]:
        return {"table": [r.to_dict() for r in self.rows], "paper_reference": self.paper_reference}


PUBLISHED_GZSL: dict[str, dict[str, tuple[float, float, float]]] = {
    # (U, S, H) in %, GZSL on the xlsa17 ResNet-101 features, proposed split: Xian et al., TPAMI 2018.
    "AWA2": {"ale": (14.0, 81.8, 23.9), "dem": (30.5, 86.4, 45.1), "eszsl": (5.9, 77.8, 11.0),
             "sae": (1.1, 82.2, 2.2)},
    "CUB": {"ale": (23.7, 62.8, 34.4), "dem": (19.6, 57.9, 29.2), "eszsl": (12.6, 63.8, 21.0),
            "sae": (7.8, 54.0, 13.6)},
}
"""Published baseline numbers on the xlsa17 features, printed beside a feature-mode run, labelled as quoted."""


def format_published(dataset: str, methods: tuple[str, ...]) -> str:
    """The quoted published numbers of ``methods`` on ``dataset`` (empty when none are known)."""
    known = PUBLISHED_GZSL.get(dataset.upper(), {})
    rows = [(m, known[m]) for m in methods if m in known]
    if not rows:
        return ""
    lines = [f"quoted, not measured here: GZSL on {dataset.upper()}'s xlsa17 ResNet-101 features, Xian et al. "
             "TPAMI 2018 (%):"]
    lines += [f"{m + ' (quoted)':<16}{'S':>4} {s:5.1f}{'U':>5} {u:5.1f}{'H':>5} {h:5.1f}" for m, (u, s, h) in rows]
    return "\n".join(lines)


def _rows(comparison: Comparison, calibrated: bool) -> list[str]:
    header = f"{'method':<10}" + "".join(f"{name:>16}" for _, name in METRICS)
    lines = [header, "-" * len(header)]
    show_std = len(comparison.runs) > 1
    for method, m in comparison.summary(calibrated).items():
        cells = [f"{m[k]:>9.3f} ±{m[k + '_std']:.3f}" if show_std else f"{m[k]:>16.3f}" for k in _KEYS]
        lines.append(f"{method:<10}" + "".join(cells))
    return lines


def format_paired(pairs: tuple[PairedDifference, ...], focus: tuple[str, ...] = ("niwt", "niwt-bal")) -> str:
    """The paired differences in H that involve a NIWT variant (all pairs when none is there)."""
    chosen = [p for p in pairs if p.method_a in focus or p.method_b in focus] or list(pairs)
    lines = [f"{'paired H difference':<22}{'mean':>8}{'95% CI (bootstrap over seeds)':>32}{'ahead':>8}  verdict"]
    for p in chosen:
        lines.append(f"{p.method_a + ' - ' + p.method_b:<22}{p.mean:>+8.3f}{f'[{p.low:+.3f}, {p.high:+.3f}]':>32}"
                     f"{f'{p.wins}/{p.seeds}':>8}  {p.verdict}")
    return "\n".join(lines)


def format_table(comparison: Comparison) -> str:
    """Methods x (S, U, H, ZSL, AUSUC); ``mean ±std`` when there is more than one seed; then, when
    every method has one, the same with calibrated stacking, and the paired differences in H."""
    lines = _rows(comparison, calibrated=False)
    sel = comparison.niwt_selection()
    if sel is not None and sel.validated:
        lines.append(f"NIWT: Λ = {sel.params['lam']:g}, lr = {sel.params['lr']:g} chosen on validation classes "
                     f"(grid of {len(sel.grid)}); every method's hyper-parameters were chosen there.")
    if len(comparison.runs) > 1:
        lines += ["", format_paired(comparison.paired())]
    if comparison.has_calibrated:
        lines += ["", "with calibrated stacking for every method (its constant chosen on validation classes):"]
        lines += _rows(comparison, calibrated=True)
        if len(comparison.runs) > 1:
            lines += ["", format_paired(comparison.paired(calibrated=True))]
    published = format_published(comparison.dataset, comparison.methods)
    if published:
        lines.append(published)
    return "\n".join(lines)


def format_sweep(sweep: Sweep) -> str:
    """Λ sweep as a table, then its finding."""
    lines = [f"{'Λ':>8}{'S':>8}{'U':>8}{'H':>8}{'ZSL':>8}{'|Wu|/|Ws|':>11}"]
    for r in sweep.rows:
        m = _metrics(r.report)
        lines.append(f"{r.lam:>8g}{m['seen_acc']:>8.3f}{m['unseen_acc']:>8.3f}{m['H']:>8.3f}{m['zsl_acc']:>8.3f}"
                     f"{r.unseen_norm_ratio:>11.2f}")
    lines.append(sweep.finding)
    return "\n".join(lines)


def format_reproduction(rep: Reproduction) -> str:
    """The paper's table layout with the paper's NIWT H beside."""
    head = (f"{'backbone':<9}{'mode':<10}{'knowledge':<11}{'method':<7}{'S':>7}{'U':>7}{'H':>7}"
            f"{'paper H AWA2':>14}{'paper H CUB':>13}")
    lines = [head, "-" * len(head)]
    for r in rep.rows:
        paper = [f"{v:>.1f}%" if v is not None else "-" for v in (r.paper_h_awa2, r.paper_h_cub)]
        m = r.result.metrics()
        lines.append(f"{r.arch:<9}{r.mode:<10}{r.knowledge:<11}{r.result.method:<7}{m['seen_acc']:>7.3f}"
                     f"{m['unseen_acc']:>7.3f}{m['H']:>7.3f}{paper[0]:>14}{paper[1]:>13}")
    return "\n".join(lines)
