"""Backbones with one contract (``forward_features`` / ``forward_head`` / ``classifier``) and a registry."""

from niwt.models.adapters import GraphSplit, TorchvisionStaged, adapt
from niwt.models.backbones import Backbone, FeatureMLP, PooledLinearHead, ResNetLike, VGGLike
from niwt.models.contract import CONTRACT_CLAUSES, BackboneContractError, check_backbone
from niwt.models.files import load_model, save_weights
from niwt.models.head import ExtendableLinear
from niwt.models.registry import (
    create_model,
    is_model_name,
    list_families,
    list_models,
    model_defaults,
    model_settings,
    register_family,
    register_model,
)
from niwt.models.timm_models import PREFIX as TIMM_PREFIX
from niwt.models.timm_models import timm_builder
from niwt.models.torchvision_nets import (
    RESNET_ARCHS,
    VGG_ARCHS,
    TorchvisionResNet,
    TorchvisionResNet101,
    TorchvisionVGG,
    TorchvisionVGG16,
)

register_family(TIMM_PREFIX, timm_builder)

from niwt.models import adopted  # noqa: E402, F401 - registers the module/ family after timm's

__all__ = ["FeatureMLP", "Backbone", "PooledLinearHead", "VGGLike", "ResNetLike", "TorchvisionVGG", "TorchvisionResNet",
           "TorchvisionVGG16", "TorchvisionResNet101", "TorchvisionStaged", "GraphSplit", "VGG_ARCHS", "RESNET_ARCHS",
           "adapt", "TIMM_PREFIX", "timm_builder",
           "ExtendableLinear", "create_model", "list_models", "list_families", "is_model_name", "register_family", "model_defaults", "model_settings", "load_model", "save_weights", "register_model",
           "BackboneContractError", "CONTRACT_CLAUSES", "check_backbone"]
