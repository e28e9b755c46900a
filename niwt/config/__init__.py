"""Typed, frozen configuration for every stage, loaded from TOML with strict checking.

Each stage has its own frozen dataclass (:mod:`~niwt.config.schema`); :class:`RunConfig` nests
them. :func:`load_config` reads a TOML file, :func:`apply_overrides` applies ``--set
section.key=value`` strings, and both reject unknown keys (listing the valid ones) and values of
the wrong type (naming the dotted key, the expected type and what was given)
(:mod:`~niwt.config.codec`). :func:`resolve_config` fills what a config leaves to the run
(:mod:`~niwt.config.resolve`); :func:`save_config` writes the resolved config next to outputs;
:func:`describe_config` prints every key with its help (:mod:`~niwt.config.describe`).
"""

from niwt.config.codec import apply_overrides, from_dict, load_config, save_config, to_dict
from niwt.config.describe import describe_config
from niwt.config.resolve import model_options, resolve_config
from niwt.config.schema import (
    METHOD_NAMES,
    CompareConfig,
    EvalConfig,
    ExplainConfig,
    ImportanceConfig,
    KnowledgeConfig,
    MappingConfig,
    ModelConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
    TransferConfig,
)
from niwt.data.dataconfig import AwA2DataConfig, CUBDataConfig, FilesDataConfig, FolderDataConfig, Xlsa17DataConfig
from niwt.data.registry import DATA_KINDS, DataConfig

__all__ = ["KnowledgeConfig", "model_options", "ModelConfig", "TrainConfig", "ImportanceConfig", "MappingConfig",
           "TransferConfig", "EvalConfig", "ExplainConfig", "CompareConfig", "RuntimeConfig", "METHOD_NAMES",
           "RunConfig", "DATA_KINDS", "DataConfig", "FilesDataConfig", "AwA2DataConfig", "CUBDataConfig",
           "Xlsa17DataConfig", "FolderDataConfig", "resolve_config", "describe_config", "from_dict", "to_dict",
           "load_config", "apply_overrides", "save_config"]
