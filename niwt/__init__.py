"""niwt: teach a trained image classifier unseen classes from their descriptions (NIWT, ECCV 2018).

The stages, each usable on its own:

* :func:`neuron_importance` — per-image channel importance of a class at a layer;
* :class:`ImportanceMapper` — domain knowledge -> importance, fitted on seen classes;
* :class:`UnseenWeightOptimizer` — new classifier rows whose importance matches the prediction;
* :func:`evaluate_gzsl` — seen / unseen per-class accuracy, harmonic mean, ZSL accuracy, AUSUC.
"""


from niwt.config import RunConfig, load_config
from niwt.data import ZSLData
from niwt.data.settings import Setting, build_settings
from niwt.data.shapes import ShapesConfig, make_shapes
from niwt.errors import (
    ConfigError,
    DataError,
    NIWTError,
    NotFittedError,
    RunDirectoryError,
)
from niwt.evaluate import GZSLReport, evaluate_gzsl
from niwt.importance import neuron_importance
from niwt.knowledge import knowledge_vectors
from niwt.mapping import ImportanceMapper
from niwt.models import create_model, list_models
from niwt.run import RunContext, build_context, fit_niwt, niwt_method, run_niwt, select_niwt
from niwt.scores import score_images
from niwt.training import seed_everything, train_classifier
from niwt.transfer import UnseenWeightOptimizer
from niwt.version import __version__

__all__ = [
    "__version__",
    "ConfigError",
    "DataError",
    "GZSLReport",
    "ImportanceMapper",
    "NIWTError",
    "NotFittedError",
    "RunConfig",
    "RunDirectoryError",
    "ShapesConfig",
    "UnseenWeightOptimizer",
    "ZSLData",
    "create_model",
    "evaluate_gzsl",
    "knowledge_vectors",
    "list_models",
    "load_config",
    "make_shapes",
    "neuron_importance",
    "run_niwt",
    "RunContext",
    "Setting",
    "build_context",
    "build_settings",
    "niwt_method",
    "fit_niwt",
    "score_images",
    "select_niwt",
    "seed_everything",
    "train_classifier",
]
