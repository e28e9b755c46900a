"""The baselines' runs on a run context: their grid searched on validation, the best point refitted on every seen class."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

from niwt.baselines import get_baseline
from niwt.config import RunConfig
from niwt.data.settings import Setting
from niwt.pipeline.context import RunContext
from niwt.pipeline.stages import record_stage
from niwt.results import MethodResult, Selection
from niwt.rundir import save_test_scores
from niwt.seeding import stage_seed

__all__ = ["baseline_points", "baseline_method"]


def baseline_points(config: RunConfig, name: str) -> list[dict[str, float]]:
    grid = config.compare.grid(name)
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]


def baseline_method(ctx: RunContext, name: str) -> MethodResult:
    """A baseline on the penultimate features, its hyper-parameters chosen on the validation setting.

    The grid is searched with the validation models' features (its mean H over the validation
    splits), the best point refitted on every seen class with the final model's features.
    """

    def compute() -> tuple[MethodResult, Callable[[Path], None]]:
        t0 = time.perf_counter()
        d, k = ctx.data, ctx.knowledge
        points = baseline_points(ctx.config, name)
        seeded_fit = "random_state" in get_baseline(name).get_params()

        def seed(setting: Setting) -> dict[str, int]:
            return {"random_state": stage_seed(ctx.config.seed, "baseline", name, setting.name)} if seeded_fit else {}

        if len(points) > 1 or ctx.config.eval.calibrate:
            grid = []
            for params in points:  # each point fitted and scored on every validation split
                scores = tuple(get_baseline(name, **params, **seed(val))
                               .fit(ctx.features(val, "train"), d.labels[val.train_idx], k)
                               .decision_function(ctx.features(val, "test"), k) for val in ctx.validations)
                grid.append(ctx.grid_point(params, scores))
            selection = Selection.best_of(grid)
        else:
            selection = Selection(points[0])
        final = ctx.final
        f_train, f_test = ctx.features(final, "train"), ctx.features(final, "test")
        est = get_baseline(name, **selection.params, **seed(final)).fit(f_train, d.labels[final.train_idx], k)
        scores = est.decision_function(f_test, k)
        report, calibrated = ctx.final_reports(scores, selection)
        result = MethodResult(name, report, selection, {"fit": time.perf_counter() - t0}, calibrated)
        return result, lambda directory: save_test_scores(directory, scores)

    return record_stage(ctx.store, name, ctx.key(name, grid=ctx.config.compare.grid(name)), compute, MethodResult)
