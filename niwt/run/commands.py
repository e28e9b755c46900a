"""`niwt run` and the API's run_niwt: NIWT end to end, into a run directory or in memory."""

from __future__ import annotations

from pathlib import Path

from niwt.config import RunConfig, resolve_config
from niwt.data import ZSLData
from niwt.models import Backbone
from niwt.results import Comparison, SeedRun
from niwt.run.context import build_context
from niwt.run.dataset import fit_to_data, open_dataset
from niwt.run.knowledge import class_vectors
from niwt.run.methods import needs_validation, run_methods
from niwt.run.niwt import NIWTRun, fit_niwt
from niwt.run.outputs import publish_niwt_outputs, write_run
from niwt.rundir import StageStore, in_run_dir
from niwt.seeding import seed_everything

__all__ = ["run_niwt", "run_to_dir"]


def run_niwt(config: RunConfig, data: ZSLData | None = None, progress: bool = False,
             base: Backbone | None = None) -> NIWTRun:
    """Run NIWT end to end (seeded by ``config.seed``) and evaluate GZSL on the test images."""
    config = resolve_config(config)
    seed_everything(config.seed)
    images = None
    if data is None:
        data, images = open_dataset(config)
    config = fit_to_data(config, data)
    knowledge, names = class_vectors(config, data)
    ctx = build_context(config, data, knowledge, knowledge_names=names, base=base, progress=progress,
                        validation=needs_validation(config, ("niwt",)), images=images)
    return fit_niwt(ctx)


def run_to_dir(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False,
               resume: bool = False) -> Comparison:
    """Run NIWT and write a complete run directory at ``out``; returns what ``metrics.json`` holds.

    With ``resume``, a killed run aimed at ``out`` continues from its last finished step.
    """
    config = resolve_config(config)

    def body(staging: Path) -> Comparison:
        seed_everything(config.seed)
        store = StageStore(staging, prefix=f"seed{config.seed}.")
        data, images = open_dataset(config)
        run_config = fit_to_data(config, data)
        knowledge, names = class_vectors(run_config, data)
        ctx = build_context(run_config, data, knowledge, knowledge_names=names, progress=progress, store=store,
                            validation=needs_validation(run_config, ("niwt",)), images=images)
        results = run_methods(ctx, ("niwt",))
        comparison = Comparison((SeedRun(config.seed, results),),
                                dataset=data.name if config.model.arch == "mlp" else "")
        publish_niwt_outputs(store, staging)
        write_run(staging, run_config, comparison)
        return comparison

    return in_run_dir(out, force, body, command="run", resume=resume)
