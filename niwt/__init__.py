"""niwt: teach a trained image classifier unseen classes from their descriptions (NIWT, ECCV 2018).

The stages, each usable on its own:

* :func:`neuron_importance`: per-image channel importance of a class at a layer;
* :class:`ImportanceMapper`: domain knowledge -> importance, fitted on seen classes;
* :class:`UnseenWeightOptimizer`: new classifier rows whose importance matches the prediction;
* :func:`evaluate_gzsl`: seen / unseen per-class accuracy, harmonic mean, ZSL accuracy, AUSUC;
* :func:`grad_cam`: Grad-CAM maps of any classifier, unseen classes included.

A run end to end: :func:`run_niwt` (in memory) or ``niwt run`` (a run directory); a finished run
read back: :func:`load_run` (predict, teach, forget).

The package root loads nothing until a name is asked for: ``import niwt.errors`` (or ``niwt
--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from niwt.version import __version__

_EXPORTS: dict[str, str] = {
    "ConfigError": "niwt.errors",
    "DataError": "niwt.errors",
    "NIWTError": "niwt.errors",
    "NotFittedError": "niwt.errors",
    "RunDirectoryError": "niwt.errors",
    "RunConfig": "niwt.config",
    "load_config": "niwt.config",
    "ZSLData": "niwt.data",
    "Setting": "niwt.data.settings",
    "build_settings": "niwt.data.settings",
    "ShapesConfig": "niwt.data.shapes",
    "make_shapes": "niwt.data.shapes",
    "knowledge_vectors": "niwt.knowledge",
    "create_model": "niwt.models",
    "list_models": "niwt.models",
    "seed_everything": "niwt.seeding",
    "train_classifier": "niwt.training",
    "neuron_importance": "niwt.importance",
    "ImportanceMapper": "niwt.mapping",
    "UnseenWeightOptimizer": "niwt.transfer",
    "GZSLReport": "niwt.evaluate",
    "evaluate_gzsl": "niwt.evaluate",
    "score_images": "niwt.scores",
    "grad_cam": "niwt.explain",
    "RunInputs": "niwt.pipeline",
    "RunContext": "niwt.pipeline",
    "open_run": "niwt.pipeline",
    "seed_context": "niwt.pipeline",
    "select_niwt": "niwt.pipeline",
    "fit_niwt": "niwt.pipeline",
    "niwt_method": "niwt.pipeline",
    "run_niwt": "niwt.pipeline",
    "load_run": "niwt.runs",
    "adopt": "niwt.pipeline",
}

__all__ = ["__version__", "ConfigError", "DataError", "NIWTError", "NotFittedError", "RunDirectoryError",
           "RunConfig", "load_config", "ZSLData", "Setting", "build_settings", "ShapesConfig", "make_shapes",
           "knowledge_vectors", "create_model", "list_models", "seed_everything", "train_classifier",
           "neuron_importance", "ImportanceMapper", "UnseenWeightOptimizer", "GZSLReport", "evaluate_gzsl",
           "score_images", "grad_cam", "RunInputs", "RunContext", "open_run", "seed_context", "select_niwt",
           "fit_niwt", "niwt_method", "run_niwt", "load_run", "adopt"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'niwt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once, then an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see
    from niwt.config import RunConfig, load_config
    from niwt.data import ZSLData
    from niwt.data.settings import Setting, build_settings
    from niwt.data.shapes import ShapesConfig, make_shapes
    from niwt.errors import ConfigError, DataError, NIWTError, NotFittedError, RunDirectoryError
    from niwt.evaluate import GZSLReport, evaluate_gzsl
    from niwt.explain import grad_cam
    from niwt.importance import neuron_importance
    from niwt.knowledge import knowledge_vectors
    from niwt.mapping import ImportanceMapper
    from niwt.models import create_model, list_models
    from niwt.pipeline import (
        RunContext,
        RunInputs,
        adopt,
        fit_niwt,
        niwt_method,
        open_run,
        run_niwt,
        seed_context,
        select_niwt,
    )
    from niwt.runs import load_run
    from niwt.scores import score_images
    from niwt.seeding import seed_everything
    from niwt.training import train_classifier
    from niwt.transfer import UnseenWeightOptimizer
