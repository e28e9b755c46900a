"""The per-seed recipe: the one way every command that trains (``run``, ``demo``, ``compare``,
``sweep-lambda``, ``reproduce``, ``ablate``, and :func:`niwt.pipeline.run_niwt`) turns a run's
inputs into the context of one seed.

A command opens its run once (:func:`~niwt.pipeline.inputs.open_run`: the config resolved and
fitted to the dataset), then calls :func:`seed_context` for each seed, and for each arm of a
seed (``reproduce`` and ``ablate`` change one setting per arm and share the seed's models).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from niwt.config import RunConfig
from niwt.models import Backbone
from niwt.pipeline.context import RunContext, build_context
from niwt.pipeline.inputs import RunInputs, class_vectors
from niwt.pipeline.methods import needs_validation
from niwt.pipeline.networks import TrainedModels
from niwt.rundir import StageStore
from niwt.seeding import seed_everything

__all__ = ["seed_context", "seed_store"]


def seed_store(staging: Path | None, seed: int, arm: str = "") -> StageStore | None:
    """Where seed ``seed``'s stages (of ``arm``, when given) are kept in run directory ``staging``:
    ``stages/seed<seed>.[<arm>.]<stage>``; None without a run directory."""
    if staging is None:
        return None
    return StageStore(staging, prefix=f"seed{seed}." + (f"{arm}." if arm else ""))


def seed_context(inputs: RunInputs, seed: int | None = None, *, config: RunConfig | None = None,
                 staging: Path | None = None, arm: str = "", methods: tuple[str, ...] = ("niwt",),
                 validation: bool | None = None, progress: bool = False, base: Backbone | None = None,
                 models: TrainedModels | None = None) -> RunContext:
    """One seed of a run: its config, the process seeded, its stage store, its class vectors, and
    the context (models trained, or reused from a finished stage, or given).

    Args:
        inputs: the run's inputs (:func:`~niwt.pipeline.inputs.open_run`), opened once per run.
        seed: the seed (default: the config's).
        config: an arm's config, derived from ``inputs.config`` (one setting changed); its seed
            is replaced by ``seed`` when given.
        staging: the run directory the stages are kept in (None: nothing is kept).
        arm: the arm's name, keeping its stages apart from the seed's others.
        methods: the methods that will run on the context (whether validation models are needed).
        validation: train the validation models or not (default: whether ``methods`` need them).
        progress: show progress of long stages.
        base: a pre-trained backbone to start from (pre-training is skipped).
        models: trained models to reuse (training is skipped: an arm that shares a seed's models).
    """
    cfg = config if config is not None else inputs.config
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    seed_everything(cfg.seed)
    knowledge, names = class_vectors(cfg, inputs.data)
    return build_context(cfg, inputs.data, knowledge, knowledge_names=names, images=inputs.images,
                         validation=needs_validation(cfg, methods) if validation is None else validation,
                         progress=progress,
                         store=seed_store(staging, cfg.seed, arm), base=base, models=models)
