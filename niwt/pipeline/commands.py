"""`niwt run` and the API's run_niwt: NIWT end to end, into a run directory or in memory."""

from __future__ import annotations

from pathlib import Path

from niwt.config import RunConfig
from niwt.data import ZSLData
from niwt.models import Backbone
from niwt.pipeline.inputs import open_run
from niwt.pipeline.methods import run_methods
from niwt.pipeline.niwt_method import NIWTRun, fit_niwt
from niwt.pipeline.outputs import publish_niwt_outputs, write_run
from niwt.pipeline.recipe import seed_context, seed_store
from niwt.results import Comparison, SeedRun
from niwt.rundir import in_run_dir

__all__ = ["run_niwt", "run_to_dir"]


def run_niwt(config: RunConfig, data: ZSLData | None = None, progress: bool = False,
             base: Backbone | None = None) -> NIWTRun:
    """Run NIWT end to end (seeded by ``config.seed``) and evaluate GZSL on the test images."""
    ctx = seed_context(open_run(config, data), progress=progress, base=base)
    return fit_niwt(ctx)


def run_to_dir(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
               resume: bool = False) -> Comparison:
    """Run NIWT and write a complete run directory at ``out``; returns what ``metrics.json`` holds.

    With ``resume``, a killed run aimed at ``out`` continues from its last finished step.
    """

    def body(staging: Path) -> Comparison:
        inputs = open_run(config)
        ctx = seed_context(inputs, staging=staging, progress=progress)
        results = run_methods(ctx, ("niwt",))
        comparison = Comparison((SeedRun(ctx.config.seed, results),),
                                dataset=inputs.data.name if inputs.config.model.arch == "mlp" else "")
        publish_niwt_outputs(seed_store(staging, ctx.config.seed), staging)
        write_run(staging, inputs.config, comparison)
        return comparison

    return in_run_dir(out, force, body, command="run", resume=resume)
