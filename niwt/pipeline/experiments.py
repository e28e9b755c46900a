"""The comparison commands: ``compare``, ``sweep-lambda`` and ``reproduce``.

Every method is fitted on the same trained backbone, the same splits and with hyper-parameters
chosen on the seen *val* classes acting as unseen; test images are only used for the final report
(and, clearly labelled, by the Λ sweep, which is an analysis, not a selection).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from niwt.config import METHOD_NAMES, RunConfig, to_dict
from niwt.data.shapes import ShapesConfig
from niwt.errors import ConfigError, DataError
from niwt.evaluate import GZSLReport
from niwt.pipeline.commands import run_seeds
from niwt.pipeline.inputs import open_run
from niwt.pipeline.method_niwt import final_transfers, transfer_grid, transfer_setting
from niwt.pipeline.methods import run_methods
from niwt.pipeline.outputs import write_run
from niwt.pipeline.recipe import seed_context
from niwt.pipeline.stages import record_stage
from niwt.report.plots import plot_lambda_curve, plot_lambda_sweep
from niwt.results import (
    PAPER_H,
    Ablation,
    AblationRow,
    Arm,
    Claim,
    Comparison,
    LambdaCurve,
    Reproduction,
    Sweep,
    SweepRow,
    paired_difference,
)
from niwt.rundir import in_run_dir, layout

__all__ = ["compare", "sweep_lambda", "reproduce", "ablate", "ABLATIONS", "REPRODUCE_SEEDS", "check_methods",
           "DEFAULT_SWEEP"]

log = logging.getLogger(__name__)



def check_methods(methods: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Reject unknown method names before any training starts."""
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown or not methods:
        raise ConfigError(f"unknown method(s) {unknown or '(none given)'}; valid methods: {', '.join(METHOD_NAMES)}")
    return tuple(methods)


def _check_validation(config: RunConfig) -> None:
    if getattr(config.data, "n_val", 1) < 1:  # the shapes world; loaded datasets are checked once loaded
        raise DataError("the validation split is empty (data.n_val = 0): hyper-parameters are chosen on "
                        "validation classes, set data.n_val >= 1")
    if config.transfer.select and not config.transfer.lam_grid:
        raise ConfigError("`transfer.lam_grid` is empty; give at least one Λ or set transfer.select = false")


def compare(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
            seeds: int | None = None, methods: tuple[str, ...] | None = None, command: str = "compare",
            resume: bool = False) -> Comparison:
    """Every method on one dataset, over several seeds, into one run directory and table.

    The dataset is made once (from the first seed); each seed trains its own models.
    """
    methods = check_methods(methods if methods is not None else config.compare.methods)
    n_seeds = seeds if seeds is not None else config.compare.seeds
    if n_seeds < 1:
        raise ConfigError(f"`seeds` must be >= 1, got {n_seeds}")
    _check_validation(config)
    config = replace(config, compare=replace(config.compare, methods=methods, seeds=n_seeds))
    return run_seeds(config, out, methods=methods, seeds=n_seeds, command=command, force=force, progress=progress,
                     resume=resume)


DEFAULT_SWEEP = (0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def sweep_lambda(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
                 lams: tuple[float, ...] = DEFAULT_SWEEP) -> Sweep:
    """The paper's regularisation study: S, U and H on the test images against Λ, table and PNG.

    This is an analysis of the trained model (as in the paper's figure), not a selection: the
    default pipeline chooses Λ on validation classes.
    """
    if not lams or any(not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 for v in lams):
        raise ConfigError(f"Λ values must be finite numbers >= 0, got {list(lams)}")
    lams = tuple(sorted(float(v) for v in lams))

    def body(staging: Path) -> Sweep:
        inputs = open_run(config)
        run_config = inputs.config
        ctx = seed_context(inputs, validation=False, progress=progress)
        setting = ctx.final
        model = ctx.niwt_model(setting)
        optimizers = transfer_setting(ctx, setting, model, [(lam, run_config.transfer.lr) for lam in lams]).optimizers
        rows = []
        for lam, opt in zip(lams, optimizers):
            opt.apply(model)
            rep = ctx.report(setting, ctx.scores(model, setting), calibration=0.0)
            norm = float(opt.weights_.norm(dim=1).mean() / model.classifier.weight.detach().norm(dim=1).mean())
            rows.append(SweepRow(lam, rep, opt.n_steps_, norm))
        (staging / layout.PLOTS).mkdir()
        plot_lambda_sweep([r.to_dict() for r in rows], staging / layout.LAMBDA_SWEEP,
                          title=f"NIWT on shapes ({run_config.model.arch}, {run_config.train.mode}): accuracy vs Λ")
        sweep = Sweep(tuple(rows), _sweep_finding([r.to_dict() for r in rows]))
        write_run(staging, run_config, sweep)
        return sweep

    return in_run_dir(out, force, body, command="sweep-lambda")


def _sweep_finding(rows: list[dict[str, float]], margin: float = 0.01) -> str:
    """One sentence on the shape of the unseen-accuracy curve (changes under ``margin`` count as flat)."""
    u = [r["unseen_acc"] for r in rows]
    i = int(np.argmax(u))
    if u[i] - u[0] > margin and u[i] - u[-1] > margin:
        return (f"unseen accuracy rises from {u[0]:.3f} at Λ=0 to {u[i]:.3f} at Λ={rows[i]['lam']:g}, "
                f"then falls to {u[-1]:.3f} at Λ={rows[-1]['lam']:g} (the paper's shape)")
    flat = max(j for j in range(len(u)) if abs(u[j] - u[0]) <= margin)
    return (f"unseen accuracy stays within {margin:g} of its Λ=0 value ({u[0]:.3f}) up to Λ={rows[flat]['lam']:g} "
            f"and then falls to {u[-1]:.3f} at Λ={rows[-1]['lam']:g}; no rise before the fall, unlike the paper; "
            f"seen accuracy goes from {rows[0]['seen_acc']:.3f} to {rows[-1]['seen_acc']:.3f}")


_PAPER_FINDINGS = {
    "ale": "NIWT H 48.1 % (VGG16, finetuned, AWA2) against ALE's 23.9 % (Xian et al.'s GZSL table)",
    "dem": "NIWT H 48.1 % (VGG16, finetuned, AWA2) against DEM's 45.1 % (Xian et al.'s GZSL table)",
    "finetuned": "H {} vs {} % (VGG16, AWA2), {} vs {} % (VGG16, CUB)".format(
        *(PAPER_H[("vgg", mode, "attributes")][d] for d in ("AWA2", "CUB") for mode in ("finetuned", "fixed"))),
    "attributes": "H {} vs {} % (VGG16, CUB, attributes vs captions)".format(
        *(PAPER_H[("vgg", "finetuned", source)]["CUB"] for source in ("attributes", "text"))),
    "u_rises": "U 33.9 % at Λ = 0, highest (41.3 %) at Λ = 1e-5 (AWA2)",
    "u_falls": "U falls for Λ > 1e-4: the pull to the seen rows stops the unseen rows from learning (AWA2)",
    "s_rises": "about 3 points of S traded against U between Λ = 1e-5 and 1e-4 (AWA2)",
}


REPRODUCE_SEEDS = 4
"""Seeds of ``niwt reproduce`` by default: each trains two backbones and runs NIWT three times, so
four seeds of the comparison world take about half an hour on a 2-core CPU (``--seeds`` for more)."""


@dataclass(frozen=True)
class CurveReports:
    """The test reports of NIWT's final transfer at each Λ of its validation grid (the Λ curve's stage)."""

    lams: tuple[float, ...]
    lr: float
    test: tuple[GZSLReport, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"lams": list(self.lams), "lr": self.lr, "test": [r.to_dict() for r in self.test]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurveReports:
        return cls(tuple(d["lams"]), float(d["lr"]), tuple(GZSLReport(**r) for r in d["test"]))


def _lambda_curve(ctx, selection, final_transfer) -> tuple[tuple[float, ...], list[float], list]:
    """The Λ values of NIWT's validation grid, the unseen accuracy each gave on the validation
    classes (read from ``selection``, NIWT's choice on them), and the test report of a final
    transfer with each (at the chosen learning rate; ``final_transfer`` from
    :func:`~niwt.pipeline.method_niwt.final_transfers`, shared with NIWT's own final transfer)."""
    if not selection.grid:
        raise ConfigError("the Λ curve needs NIWT's validation grid: set transfer.select = true and give "
                          "transfer.lam_grid at least two values")
    lams = tuple(sorted({float(p.params["lam"]) for p in selection.grid}))
    val_u = [max(p.report.unseen_acc for p in selection.grid if p.params["lam"] == lam) for lam in lams]
    lr = float(selection.params["lr"])

    def compute() -> tuple[CurveReports, None]:
        setting = ctx.final
        model = ctx.niwt_model(setting)
        reports = []
        for lam in lams:
            (opt,) = final_transfer(lam, lr).output.optimizers
            opt.apply(model)
            reports.append(ctx.report(setting, ctx.scores(model, setting), calibration=0.0))
        return CurveReports(lams, lr, tuple(reports)), None

    key = ctx.key("lambda_curve", lams=list(lams), lr=lr, importance=to_dict(ctx.config.importance),
                  mapping=to_dict(ctx.config.mapping), transfer=to_dict(ctx.config.transfer))
    return lams, val_u, list(record_stage(ctx.store, "lambda_curve", key, compute, CurveReports).test)


def _world_name(config: RunConfig) -> str:
    data = config.data
    if isinstance(data, ShapesConfig):
        return (f"the shapes world ({data.n_seen} seen, {data.n_unseen} unseen classes; {data.n_trainval_images} "
                f"training and {data.n_test_seen_images} / {data.n_test_unseen_images} seen / unseen test images "
                "per class)")
    return f"the {config.data.kind} dataset"


def reproduce(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
              seeds: int | None = None, resume: bool = False) -> Reproduction:
    """The paper's claims tested over seeds, each as a paired difference with a bootstrap interval
    and a verdict (:class:`~niwt.results.Claim`): NIWT against ALE and DEM, finetuned against
    fixed, attributes against text, and the Λ trade-off (a validation-chosen small Λ against 0,
    the largest Λ against it). Hyper-parameters are chosen on validation classes throughout."""
    _check_validation(config)
    n_seeds = seeds if seeds is not None else REPRODUCE_SEEDS
    if n_seeds < 1:
        raise ConfigError(f"`seeds` must be >= 1, got {n_seeds}")
    config = replace(config, compare=replace(config.compare, seeds=n_seeds))
    if not config.transfer.select or len(set(config.transfer.lam_grid)) < 2:
        raise ConfigError("`niwt reproduce` tests the Λ trade-off on NIWT's validation grid: set transfer.select = "
                          f"true and give transfer.lam_grid at least two values, got {list(config.transfer.lam_grid)}")

    def body(staging: Path) -> Reproduction:
        inputs = open_run(config)
        run_config = inputs.config
        names = ("niwt / finetuned / attributes", "ale / finetuned / attributes", "dem / finetuned / attributes",
                 "niwt / fixed / attributes", "niwt / finetuned / text")
        arms: dict[str, list] = {name: [] for name in names}
        val_peaks, reports, lams = [], [], ()
        for i in range(n_seeds):
            cfg = replace(run_config, seed=run_config.seed + i)
            attrs = replace(cfg, knowledge=replace(cfg.knowledge, source="attributes"))
            ft = replace(attrs, train=replace(attrs.train, mode="finetuned"))
            ctx = seed_context(inputs, config=ft, staging=staging, arm="finetuned", methods=("niwt", "ale", "dem"),
                               progress=progress)
            shared = final_transfers(ctx, transfer_grid(ft), explain=False)  # NIWT's final and the Λ curve
            results = run_methods(ctx, ("niwt", "ale", "dem"), final_transfer=shared, explain=False)
            for name, result in zip(names[:3], results):
                arms[name].append(result)
            lams, val_u, test = _lambda_curve(ctx, results[0].selection, shared)
            val_peaks.append(lams[int(np.argmax(val_u))])
            reports.append(test)
            fixed = replace(attrs, train=replace(attrs.train, mode="fixed"))
            fctx = seed_context(inputs, config=fixed, staging=staging, arm="fixed", progress=progress,
                                base=ctx.models.base)
            arms[names[3]].append(run_methods(fctx, ("niwt",), explain=False)[0])
            text = replace(ft, knowledge=replace(ft.knowledge, source="text"))
            tctx = seed_context(inputs, config=text, staging=staging, arm="text", progress=progress,
                                models=ctx.models)
            arms[names[4]].append(run_methods(tctx, ("niwt",), explain=False)[0])
        arm = {name: Arm(name, tuple(results)) for name, results in arms.items()}
        curve = LambdaCurve(lams, *(np.array([[getattr(r, k) for r in seed] for seed in reports])
                                    for k in ("seen_acc", "unseen_acc", "H")), tuple(val_peaks))
        big = [lams[-1]] * n_seeds
        low = lams[0]  # 0 in the default grid
        zero = [low] * n_seeds

        def claim(statement, paper, a, b, va, vb, key="H"):
            return Claim(statement, paper, paired_difference(a, b, va, vb, key))

        niwt = arm[names[0]]
        claims = (
            claim("NIWT beats ALE (H)", _PAPER_FINDINGS["ale"], "niwt", "ale", niwt.values(), arm[names[1]].values()),
            claim("NIWT beats DEM (H)", _PAPER_FINDINGS["dem"], "niwt", "dem", niwt.values(), arm[names[2]].values()),
            claim("finetuned beats fixed (NIWT H)", _PAPER_FINDINGS["finetuned"], "finetuned", "fixed",
                  niwt.values(), arm[names[3]].values()),
            claim("attributes beat text (NIWT H)", _PAPER_FINDINGS["attributes"], "attributes", "text",
                  niwt.values(), arm[names[4]].values()),
            claim(f"a small Λ raises U over Λ = {low:g}", _PAPER_FINDINGS["u_rises"], "Λ peak", f"Λ {low:g}",
                  curve.at("unseen_acc", val_peaks), curve.at("unseen_acc", zero), "unseen_acc"),
            claim(f"Λ = {lams[-1]:g} lowers U below the peak", _PAPER_FINDINGS["u_falls"], "Λ peak",
                  f"Λ {lams[-1]:g}", curve.at("unseen_acc", val_peaks), curve.at("unseen_acc", big), "unseen_acc"),
            claim(f"Λ = {lams[-1]:g} raises S over Λ = {low:g}", _PAPER_FINDINGS["s_rises"], f"Λ {lams[-1]:g}",
                  f"Λ {low:g}",
                  curve.at("seen_acc", big), curve.at("seen_acc", zero), "seen_acc"),
        )
        reproduction = Reproduction(tuple(run_config.seed + i for i in range(n_seeds)), tuple(arm.values()), claims,
                                    curve, _world_name(run_config))
        (staging / layout.PLOTS).mkdir()
        plot_lambda_curve(curve, staging / layout.LAMBDA_CURVE,
                          title=f"NIWT: S and U against Λ over {n_seeds} seeds (test images)")
        write_run(staging, run_config, reproduction)
        return reproduction

    return in_run_dir(out, force, body, command="reproduce", resume=resume)


ABLATIONS: tuple[tuple[str, str, str, dict[str, dict[str, object]]], ...] = (
    ("transfer pool", "source images", "seen-class images", {"transfer": {"pool": "seen"}}),
    ("transfer pool", "source images", "a small pool (64 source images)", {"transfer": {"pool_size": 64}}),
    ("importance layer", "last conv block", "the block before it", {"importance": {"layer": "features.10"}}),
    ("importance reduction", "sum", "mean", {"importance": {"reduction": "mean"}}),
    ("knowledge map", "linear", "MLP", {"mapping": {"model": "mlp"}}),
    ("unseen-row start", "seen-centred", "zeros", {"transfer": {"init": "zeros"}}),
)
"""(factor, the paper's choice, the alternative, config changes) of each ablation of ``niwt ablate``."""


def _changed(config: RunConfig, changes: dict[str, dict[str, object]]) -> RunConfig:
    for section, fields in changes.items():
        config = replace(config, **{section: replace(getattr(config, section), **fields)})
    return config


def ablate(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
           seeds: int | None = None, resume: bool = False) -> Ablation:
    """NIWT with one design choice changed at a time (:data:`ABLATIONS`), each against the paper's
    choice as a paired difference in H over seeds, on the same trained backbones."""
    _check_validation(config)
    if config.model.arch != "vgg":
        raise ConfigError(f"`niwt ablate` runs on model.arch = \"vgg\" (its importance-layer ablation moves "
                          f"VGG's split), got {config.model.arch!r}")
    n_seeds = seeds if seeds is not None else config.compare.seeds
    if n_seeds < 1:
        raise ConfigError(f"`seeds` must be >= 1, got {n_seeds}")
    config = replace(config, compare=replace(config.compare, seeds=n_seeds))

    def body(staging: Path) -> Ablation:
        inputs = open_run(config)
        run_config = inputs.config
        names = ["niwt (paper's choices)"] + [f"{factor}: {alt}" for factor, _, alt, _ in ABLATIONS]
        arms: dict[str, list] = {name: [] for name in names}
        for i in range(n_seeds):
            cfg = replace(run_config, seed=run_config.seed + i)
            ctx = seed_context(inputs, config=cfg, staging=staging, arm="paper", progress=progress)
            arms[names[0]].append(run_methods(ctx, ("niwt",), explain=False)[0])
            for j, (name, (_, _, _, changes)) in enumerate(zip(names[1:], ABLATIONS)):
                actx = seed_context(inputs, config=_changed(cfg, changes), staging=staging, arm=f"ablation{j}",
                                    progress=progress, models=ctx.models)
                arms[name].append(run_methods(actx, ("niwt",), explain=False)[0])
        arm = {name: Arm(name, tuple(results)) for name, results in arms.items()}
        paper = arm[names[0]]
        rows = tuple(AblationRow(factor, default, alt, paired_difference(alt, "paper", arm[name].values(),
                                                                         paper.values()))
                     for name, (factor, default, alt, _) in zip(names[1:], ABLATIONS))
        ablation = Ablation(tuple(run_config.seed + i for i in range(n_seeds)), tuple(arm.values()), rows,
                            _world_name(run_config))
        write_run(staging, run_config, ablation)
        return ablation

    return in_run_dir(out, force, body, command="ablate", resume=resume)
