"""The wiring of a run, one concept a module: the dataset a config asks for (``dataset``), its
class vectors (``knowledge``), finished stages (``stage``), the training stages (``training``),
the run context (``context``), the NIWT method (``niwt``), the baselines' runs (``baselines``),
method dispatch (``methods``), the files a run writes (``outputs``), the commands' configs
(``presets``), ``niwt run`` itself (``commands``) and a run's features as files (``export``).
Nothing below this package imports it."""

from niwt.run.baselines import baseline_method
from niwt.run.commands import run_niwt, run_to_dir
from niwt.run.context import RunContext, build_context
from niwt.run.dataset import fit_to_data, load_dataset, open_dataset
from niwt.run.knowledge import class_vectors, load_knowledge
from niwt.run.methods import needs_validation, run_methods
from niwt.run.niwt import (
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
from niwt.run.outputs import publish_niwt_outputs, write_run
from niwt.run.presets import COMPARISON_WORLD, comparison_config, demo_config, quick_config
from niwt.run.training import TrainedModels, fit_seen, pretrain, train_models

__all__ = ["NIWT_VARIANTS", "NIWTRun", "TransferOutput", "FinalTransfer", "TrainedModels", "RunContext",
           "build_context", "open_dataset", "fit_to_data", "load_dataset", "class_vectors", "load_knowledge", "pretrain", "fit_seen",
           "train_models", "needs_validation", "transfer_grid", "niwt_transfer", "select_niwt", "select_niwt_variants",
           "final_transfers", "fit_niwt", "niwt_method", "niwt_methods", "baseline_method", "run_methods", "run_niwt",
           "run_to_dir", "demo_config", "comparison_config", "quick_config", "COMPARISON_WORLD", "write_run",
           "publish_niwt_outputs"]
