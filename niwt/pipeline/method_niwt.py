"""The NIWT method on a run context: choosing Λ and the learning rate on validation, the final transfer, and its variants."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niwt import distributed
from niwt.config import RunConfig, to_dict
from niwt.data.settings import FINAL, Setting
from niwt.data.source import take
from niwt.device import autocast, run_device
from niwt.errors import ConfigError
from niwt.evaluate import GZSLReport
from niwt.explain.inverse import InverseConfig, InverseMapper
from niwt.importance import neuron_importance
from niwt.knowledge import KnowledgeEncoder
from niwt.mapping import ImportanceMapper
from niwt.models import Backbone
from niwt.pipeline.context import RunContext
from niwt.pipeline.inputs import class_encoder
from niwt.pipeline.stages import record_stage
from niwt.progress import StageProgress
from niwt.results import GridPoint, MethodResult, Selection
from niwt.rundir import RunInfo, layout, save_test_scores, write_json
from niwt.runs import write_model
from niwt.seeding import stage_seed
from niwt.transfer import PoolCache, UnseenWeightOptimizer, balance_unseen
from niwt.transfer import class_seeds as per_class_seeds

__all__ = ["NIWT_VARIANTS", "NIWTRun", "VariantSelections", "TransferOutput", "FinalTransfer", "transfer_grid",
           "transfer_setting", "niwt_transfer", "select_niwt_variants", "select_niwt", "final_transfers", "fit_niwt", "niwt_method", "niwt_methods"]

log = logging.getLogger(__name__)


def transfer_grid(config: RunConfig) -> list[tuple[float, float]]:
    """The (Λ, lr) points searched on validation (one point when selection is off)."""
    t = config.transfer
    lams = list(t.lam_grid) if t.select and t.lam_grid else [t.lam]
    lrs = list(t.lr_grid) if t.select and t.lr_grid else [t.lr]
    return list(itertools.product(lams, lrs))


@dataclass(frozen=True, eq=False)
class TransferOutput:
    """What :func:`niwt_transfer` made: the map, the targets, one optimiser per grid point, the
    seen images' importances it was fitted on (with their classifier rows), and the pool's cache
    every point's transfer read (kept in the run, so that it can be taught new classes)."""

    mapper: ImportanceMapper
    targets: np.ndarray
    optimizers: tuple[UnseenWeightOptimizer, ...]
    importances: torch.Tensor
    labels: torch.Tensor
    pool_cache: PoolCache | None = None


def niwt_transfer(config: RunConfig, model: Backbone, knowledge: np.ndarray, images: torch.Tensor,
                  labels: torch.Tensor, fit_classes: np.ndarray, new_classes: np.ndarray, pool: torch.Tensor,
                  grid: list[tuple[float, float]], progress: bool = False, stage: str = FINAL,
                  class_names: tuple[str, ...] | None = None) -> TransferOutput:
    """Importance -> mapping -> transfer for ``new_classes`` with each (Λ, lr) of ``grid``.

    ``labels`` index ``fit_classes`` (the model's seen rows). ``stage`` names the setting: the map
    and the transfers draw their own streams (:func:`~niwt.seeding.stage_seed`); the points of
    ``grid`` share the transfer's stream, so they differ in (Λ, lr) alone. With
    ``transfer.per_class``, each new class's row draws its own stream, keyed by its name in
    ``class_names`` (every class of the dataset, by id; :func:`niwt.transfer.class_seeds`).
    """
    lo, hi = distributed.shard_bounds(images.shape[0])
    with StageProgress("importance", hi - lo, unit="image", enabled=progress) as bar, \
            autocast(run_device(config.runtime.device, config.runtime.precision), config.runtime.precision):
        alpha = distributed.on_shards(lambda part: neuron_importance(
            model, model.importance_layer, part, labels[lo:hi], config.importance.reduction,
            batch_size=config.importance.batch_size, progress=bar.update_to), images)
    alpha = alpha.float().cpu() if alpha.dtype in (torch.float16, torch.bfloat16) else alpha.cpu()
    m = config.mapping
    mapper = ImportanceMapper(model=m.model, hidden=m.hidden, lr=m.lr, epochs=m.epochs, batch_size=m.batch_size,
                              weight_decay=m.weight_decay,
                              n_holdout=min(m.n_holdout, len(np.unique(labels.numpy())) - 1),
                              refit=m.refit, random_state=stage_seed(config.seed, "mapping", stage))
    mapper.fit(knowledge[fit_classes], alpha.numpy(), labels.numpy())
    targets = mapper.predict(knowledge[new_classes])
    targets = distributed.broadcast(torch.from_numpy(targets)).numpy()  # every process transfers rank 0's
    t = config.transfer
    pool_cache = PoolCache.of(model, pool)  # the fast path's one-off work, shared by every point
    class_seeds = None
    if t.per_class:
        if class_names is None:
            raise ConfigError("transfer.per_class needs the classes' names (`class_names`) to key their streams")
        class_seeds = per_class_seeds(config.seed, stage, [class_names[c] for c in new_classes])
    optimizers = []
    for lam, lr in grid:
        opt = UnseenWeightOptimizer(lam=lam, lr=lr, batch_size=t.batch_size, max_steps=t.max_steps,
                                    patience=t.patience, tol=t.tol, init=t.init, mode=t.mode,
                                    reduction=config.importance.reduction,
                                    # the points of a grid share one stream: they differ in (Λ, lr) alone, so the choice compares them
                                    random_state=stage_seed(config.seed, "transfer", stage),
                                    progress=progress)
        optimizers.append(opt.fit(model, pool, targets, cache=pool_cache.cache, class_seeds=class_seeds))
        opt.weights_ = distributed.broadcast(opt.weights_)  # the rows every process scores with are rank 0's
    return TransferOutput(mapper, targets, tuple(optimizers), alpha, labels, pool_cache)


def transfer_setting(ctx: RunContext, setting: Setting, model: Backbone, grid: list[tuple[float, float]],
                     ) -> TransferOutput:
    """:func:`niwt_transfer` of ``setting``'s new classes into ``model``, with its training images
    and the context's transfer pool."""
    idx = setting.train_idx
    labels = torch.from_numpy(setting.rows(ctx.data.labels[idx]))
    return niwt_transfer(ctx.config, model, ctx.knowledge, take(ctx.images, idx), labels, setting.fit_classes,
                         setting.new_classes, ctx.pool(setting), grid, ctx.progress, stage=setting.name,
                         class_names=ctx.data.class_names)


@dataclass(frozen=True)
class VariantSelections:
    """The (Λ, lr) every NIWT variant chose on validation: the record of the selection stage."""

    by_variant: dict[str, Selection]

    def to_dict(self) -> dict[str, Any]:
        return {v: sel.to_dict() for v, sel in self.by_variant.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VariantSelections:
        return cls({v: Selection.from_dict(sel) for v, sel in d.items()})


@dataclass(frozen=True, eq=False)
class NIWTRun:
    """NIWT's result, with the extended model (seen and unseen rows) and its fitted stages."""

    result: MethodResult
    model: Backbone
    mapper: ImportanceMapper
    optimizer: UnseenWeightOptimizer
    info: RunInfo
    inverse: InverseMapper | None = None
    knowledge: np.ndarray | None = None
    test_scores: np.ndarray | None = None
    encoder: KnowledgeEncoder | None = None
    pool_cache: PoolCache | None = None

    @property
    def report(self) -> GZSLReport:
        return self.result.report

    @property
    def selection(self) -> Selection:
        return self.result.selection

    def save(self, directory: Path) -> None:
        """Weights (safetensors), maps and transfer records of the run, where a run directory keeps
        them (:mod:`niwt.rundir.layout`): the extended model with its classes and class vectors
        (:func:`niwt.runs.write_model`), the knowledge encoder, the forward map and its selection,
        the inverse map, the final transfer's record, the final test images' scores
        (:func:`~niwt.rundir.save_test_scores`) and the transfer pool's cache (what teaching a
        class needs)."""
        for part in layout.NIWT_PARTS:
            (directory / part).mkdir(exist_ok=True)
        write_model(directory, self.model, self.info, self.knowledge)
        self.mapper.save(directory / layout.FORWARD_MAP)
        write_json(directory / layout.MAP_SELECTION, {
            "best_epoch": self.mapper.best_epoch_, "val_spearman": self.mapper.val_spearman_,
            "holdout_classes": self.mapper.holdout_classes_.tolist(),
            "history": [{"loss": a, "spearman": b} for a, b in self.mapper.history_]})
        write_json(directory / layout.TRANSFER_HISTORY, {
            "lam": self.optimizer.lam, "lr": self.optimizer.lr, "steps": self.optimizer.n_steps_,
            "stopped_early": self.optimizer.stopped_early_, "loss": self.optimizer.history_,
            "selection": self.selection.to_dict()})
        if self.inverse is not None:
            self.inverse.save(directory / layout.INVERSE_MAP)
        if self.test_scores is not None:
            save_test_scores(directory, self.test_scores)
        if self.encoder is not None:
            self.encoder.save(directory / layout.KNOWLEDGE_ENCODER)
        if self.pool_cache is not None:
            self.pool_cache.save(directory / layout.POOL_CACHE)


def _niwt_config(ctx: RunContext) -> dict[str, object]:
    c = ctx.config
    return {"importance": to_dict(c.importance), "mapping": to_dict(c.mapping), "transfer": to_dict(c.transfer),
            "explain": to_dict(c.explain)}


NIWT_VARIANTS = ("niwt", "niwt-bal")
"""NIWT as in the paper (unseen rows with bias 0, scale set by the transfer), and with its unseen
rows balanced against the seen rows (:func:`niwt.transfer.balance_unseen`)."""


def select_niwt_variants(ctx: RunContext, grid: list[tuple[float, float]] | None = None,
                         ) -> dict[str, Selection]:
    """Choose Λ and the learning rate of every NIWT variant on the validation settings (the val
    classes act as unseen), by the mean H over the validation splits.

    One transfer per grid point serves every variant: each is scored with the rows as learned
    (``niwt``), then with the rows balanced (``niwt-bal``), so the variants differ only in what
    they do after the transfer.
    """
    grid = grid if grid is not None else transfer_grid(ctx.config)
    if len(grid) == 1 and not ctx.config.eval.calibrate:
        return {v: Selection({"lam": grid[0][0], "lr": grid[0][1]}) for v in NIWT_VARIANTS}

    def compute() -> tuple[VariantSelections, None]:
        # scores[variant][point][split]: one transfer per split and grid point serves both variants
        scores: dict[str, list[list[np.ndarray]]] = {v: [[] for _ in grid] for v in NIWT_VARIANTS}
        for setting in ctx.validations:
            model = ctx.niwt_model(setting)
            optimizers = transfer_setting(ctx, setting, model, grid).optimizers
            for i, opt in enumerate(optimizers):
                opt.apply(model)
                for variant in NIWT_VARIANTS:  # "niwt" first: balancing changes the rows in place
                    if variant == "niwt-bal":
                        balance_unseen(model)
                    scores[variant][i].append(ctx.row_scores(model, setting))
        points: dict[str, list[GridPoint]] = {v: [] for v in NIWT_VARIANTS}
        for variant in NIWT_VARIANTS:
            for (lam, lr), parts in zip(grid, scores[variant]):
                point = ctx.grid_point({"lam": lam, "lr": lr}, tuple(parts))
                points[variant].append(point)
                rep = point.report
                log.info("validation %s Λ=%g lr=%g: S=%.3f U=%.3f H=%.3f", variant, lam, lr, rep.seen_acc,
                         rep.unseen_acc, rep.H)
        return VariantSelections({v: Selection.best_of(p) for v, p in points.items()}), None

    name = "niwt_selections"
    key = ctx.key(name, grid=grid, **_niwt_config(ctx))
    return dict(record_stage(ctx.store, name, key, compute, VariantSelections).by_variant)


def select_niwt(ctx: RunContext, grid: list[tuple[float, float]] | None = None, *,
                variant: str = "niwt") -> Selection:
    """The Λ and learning rate of ``variant`` chosen on the validation setting
    (:func:`select_niwt_variants`)."""
    if variant not in NIWT_VARIANTS:
        raise ConfigError(f"`variant` must be one of {list(NIWT_VARIANTS)}, got {variant!r}")
    return select_niwt_variants(ctx, grid)[variant]


@dataclass(frozen=True, eq=False)
class FinalTransfer:
    """One transfer of the final setting at a chosen (Λ, lr), with the inverse map fitted on its
    seen importances (None when explanations are not asked for): what every NIWT variant that
    chose this point shares."""

    output: TransferOutput
    inverse: InverseMapper | None
    seconds: dict[str, float]


def _fit_inverse(ctx: RunContext, out: TransferOutput) -> InverseMapper:
    n_classes = len(np.unique(out.labels.numpy()))
    explain = replace(ctx.config.explain, n_holdout=min(ctx.config.explain.n_holdout, n_classes - 1))
    inverse = InverseMapper(InverseConfig(**to_dict(explain), random_state=stage_seed(ctx.config.seed, "inverse map")))
    inverse.fit(out.importances.numpy(), ctx.knowledge[ctx.final.fit_classes], out.labels.numpy())
    return inverse


def final_transfers(ctx: RunContext, grid: list[tuple[float, float]] | None = None, *, explain: bool = True):
    """``get(lam, lr) -> FinalTransfer``: transfers of the final setting, computed once and shared.

    With ``grid``, the first call transfers at every point of it in one go (one importance
    extraction and one map for all; each point's rows are the same as alone), so the variants and
    the Λ curve read them; other points are transferred alone when asked. ``explain=False`` skips
    the inverse map (only explanations use it).
    """
    cache: dict[tuple[float, float], FinalTransfer] = {}

    def transfer(points: list[tuple[float, float]]) -> None:
        t0 = time.perf_counter()
        out = transfer_setting(ctx, ctx.final, ctx.niwt_model(ctx.final), points)
        seconds = {"final": time.perf_counter() - t0}
        t0 = time.perf_counter()
        inverse = _fit_inverse(ctx, out) if explain else None
        if explain:
            seconds["inverse"] = time.perf_counter() - t0
        for point, opt in zip(points, out.optimizers):
            cache[point] = FinalTransfer(replace(out, optimizers=(opt,)), inverse, seconds)

    def get(lam: float, lr: float) -> FinalTransfer:
        if grid and not cache:
            transfer([(float(a), float(b)) for a, b in grid])
        if (lam, lr) not in cache:
            transfer([(lam, lr)])
        return cache[(lam, lr)]

    return get


def fit_niwt(ctx: RunContext, selection: Selection | None = None, *, variant: str = "niwt",
             final_transfer=None, select_seconds: float | None = None, explain: bool = True) -> NIWTRun:
    """NIWT on the final model with Λ/lr chosen on validation (or given in ``selection``): the
    extended model, its fitted stages and its result, computed here (no stage store is read).

    ``final_transfer`` (:func:`final_transfers`) lets variants that chose the same point share
    one transfer (:func:`niwt_methods`); ``explain=False`` skips the inverse map behind
    explanations.
    """
    if variant not in NIWT_VARIANTS:
        raise ConfigError(f"`variant` must be one of {list(NIWT_VARIANTS)}, got {variant!r}")
    t0 = time.perf_counter()
    selection = selection if selection is not None else select_niwt(ctx, variant=variant)
    seconds = {"select": time.perf_counter() - t0 if select_seconds is None else select_seconds}
    final_transfer = final_transfer if final_transfer is not None else final_transfers(ctx, explain=explain)
    shared = final_transfer(selection.params["lam"], selection.params["lr"])
    out = shared.output
    setting = ctx.final
    model = ctx.niwt_model(setting)
    (opt,) = out.optimizers
    opt.apply(model)
    if variant == "niwt-bal":
        balance_unseen(model)
    scores = ctx.scores(model, setting)
    report, calibrated = ctx.final_reports(scores, selection)
    result = MethodResult(variant, report, selection, {**ctx.models.seconds, **seconds, **shared.seconds},
                          calibrated)
    return NIWTRun(result, model, out.mapper, opt, ctx.run_info(model), shared.inverse, ctx.knowledge, scores,
                   class_encoder(ctx.config, ctx.data), out.pool_cache)


def niwt_method(ctx: RunContext, selection: Selection | None = None, *,
                variant: str = "niwt", final_transfer=None, select_seconds: float | None = None,
                explain: bool = True) -> MethodResult:
    """:func:`fit_niwt`'s result as a stage of the context's run directory: reused when it has
    finished with the same key, else computed, with the extended model, the maps and the
    transfer's record kept in the stage's directory (:meth:`NIWTRun.save`)."""
    if variant not in NIWT_VARIANTS:
        raise ConfigError(f"`variant` must be one of {list(NIWT_VARIANTS)}, got {variant!r}")
    if selection is None and ctx.store is not None:  # the stage's key holds the selection
        t0 = time.perf_counter()
        selection = select_niwt(ctx, variant=variant)
        select_seconds = time.perf_counter() - t0

    def compute() -> tuple[MethodResult, Callable[[Path], None]]:
        run = fit_niwt(ctx, selection, variant=variant, final_transfer=final_transfer,
                       select_seconds=select_seconds, explain=explain)
        return run.result, run.save

    if ctx.store is None:
        return compute()[0]
    key = ctx.key(variant, selection=selection.to_dict(), **_niwt_config(ctx),
                  **({} if explain else {"inverse_map": False}))
    return record_stage(ctx.store, variant, key, compute, MethodResult)


def niwt_methods(ctx: RunContext, variants: tuple[str, ...], *, final_transfer=None,
                 explain: bool = True) -> list[MethodResult]:
    """Several NIWT variants with one validation transfer per grid point, and one final transfer
    per distinct chosen point (:func:`niwt_method` for each; ``final_transfer`` from
    :func:`final_transfers` to share them further)."""
    t0 = time.perf_counter()
    selections = select_niwt_variants(ctx)
    select_seconds = time.perf_counter() - t0
    final_transfer = final_transfer if final_transfer is not None else final_transfers(ctx, explain=explain)
    return [niwt_method(ctx, selections[variant], variant=variant, final_transfer=final_transfer,
                        select_seconds=select_seconds, explain=explain) for variant in variants]
