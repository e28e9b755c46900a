"""`niwt run` and the API's run_niwt: NIWT end to end, into a run directory or in memory."""

from __future__ import annotations

from pathlib import Path

from niwt.config import RunConfig
from niwt.data import ZSLData
from niwt.models import Backbone
from niwt.pipeline.inputs import RunInputs, open_run
from niwt.pipeline.method_niwt import NIWTRun, fit_niwt
from niwt.pipeline.methods import run_methods
from niwt.pipeline.outputs import publish_niwt_outputs, write_run
from niwt.pipeline.recipe import seed_context, seed_store
from niwt.results import Comparison, SeedRun
from niwt.rundir import in_run_dir

__all__ = ["run_niwt", "run_seeds", "run_to_dir"]


def run_niwt(config: RunConfig, data: ZSLData | None = None, progress: bool = False,
             base: Backbone | None = None) -> NIWTRun:
    """Run NIWT end to end (seeded by ``config.seed``) and evaluate GZSL on the test images."""
    ctx = seed_context(open_run(config, data), progress=progress, base=base)
    return fit_niwt(ctx)


def run_seeds(config: RunConfig, out: str | Path, *, methods: tuple[str, ...], seeds: int, command: str,
              force: bool = False, progress: bool = False, resume: bool = False, inputs: RunInputs | None = None,
              base: Backbone | None = None) -> Comparison:
    """``methods`` on seeds ``config.seed``, ``config.seed + 1``, ... (``seeds`` of them), into one run
    directory at ``out``: the route of ``niwt run``, ``demo`` and ``compare``.

    The run's inputs are opened once (:func:`~niwt.pipeline.inputs.open_run`); each seed follows
    the per-seed recipe (:func:`~niwt.pipeline.recipe.seed_context`). NIWT's model and maps of the
    first seed are copied to the top of the run (what ``predict``, ``teach`` and ``explain`` read).
    With ``resume``, a killed run aimed at ``out`` continues from its last finished step. ``inputs``
    are the run's inputs when they were opened already (``niwt adopt`` checks them first);
    ``base`` is a network to start from (the adopted classifier).
    """

    def body(staging: Path) -> Comparison:
        opened = inputs if inputs is not None else open_run(config)
        runs = []
        for i in range(seeds):
            ctx = seed_context(opened, opened.config.seed + i, staging=staging, methods=methods, progress=progress,
                               base=base)
            runs.append(SeedRun(ctx.config.seed, run_methods(ctx, methods)))
            if i == 0 and "niwt" in methods:
                publish_niwt_outputs(seed_store(staging, ctx.config.seed), staging)
        comparison = Comparison(tuple(runs), dataset=opened.data.name if opened.config.model.arch == "mlp" else "")
        write_run(staging, opened.config, comparison)
        return comparison

    return in_run_dir(out, force, body, command=command, resume=resume)


def run_to_dir(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
               resume: bool = False) -> Comparison:
    """``niwt run``: NIWT on the config's seed, a complete run directory at ``out``
    (:func:`run_seeds`); returns what ``metrics.json`` holds.

    With ``resume``, a killed run aimed at ``out`` continues from its last finished step.
    """
    return run_seeds(config, out, methods=("niwt",), seeds=1, command="run", force=force, progress=progress,
                     resume=resume)
