"""The wiring of a new run, one concept a module, and the experiments built on it.

* ``inputs``: what a run starts from (:func:`open_run`: the config resolved, the dataset opened,
  the config fitted to it; the class vectors);
* ``recipe``: the per-seed recipe every command that trains follows (:func:`seed_context`);
* ``context``: the run context of one seed (built once, never mutated);
* ``networks``: pre-training and the seen-class trainings;
* ``stages``: finished stages, computed once and read back on ``--resume``;
* ``method_niwt`` / ``method_baselines`` / ``methods``: NIWT, the baselines, and method dispatch;
* ``outputs``: what a run writes at the top of its directory;
* ``presets``: the commands' configs; ``commands``: ``niwt run``; ``experiments``: ``compare``,
  ``sweep-lambda``, ``reproduce``, ``ablate``; ``adoption``: ``niwt adopt`` (a classifier trained
  elsewhere, taken as it is).

A finished run is :mod:`niwt.runs`'s. Nothing below this package imports it.
"""

from niwt.pipeline.adoption import adopt
from niwt.pipeline.commands import run_niwt, run_to_dir
from niwt.pipeline.context import RunContext
from niwt.pipeline.inputs import RunInputs, class_vectors, fit_to_data, open_run
from niwt.pipeline.method_baselines import baseline_method
from niwt.pipeline.method_niwt import (
    NIWT_VARIANTS,
    FinalTransfer,
    NIWTRun,
    TransferOutput,
    final_transfers,
    fit_niwt,
    niwt_method,
    niwt_methods,
    niwt_transfer,
    select_niwt,
    select_niwt_variants,
    transfer_grid,
)
from niwt.pipeline.methods import needs_validation, run_methods
from niwt.pipeline.networks import TrainedModels, fit_seen, pretrain, train_models
from niwt.pipeline.outputs import publish_niwt_outputs, write_run
from niwt.pipeline.presets import COMPARISON_WORLD, comparison_config, demo_config, quick_config
from niwt.pipeline.recipe import seed_context

__all__ = ["NIWT_VARIANTS", "NIWTRun", "TransferOutput", "FinalTransfer", "TrainedModels", "RunContext", "RunInputs",
           "open_run", "seed_context", "fit_to_data", "class_vectors", "pretrain", "fit_seen", "train_models",
           "needs_validation", "transfer_grid", "niwt_transfer", "select_niwt", "select_niwt_variants",
           "final_transfers", "fit_niwt", "niwt_method", "niwt_methods", "baseline_method", "run_methods", "run_niwt",
           "run_to_dir", "demo_config", "comparison_config", "quick_config", "COMPARISON_WORLD", "write_run",
           "publish_niwt_outputs", "adopt"]
