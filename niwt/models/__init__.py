"""Backbones with one contract (``forward_features`` / ``forward_head`` / ``classifier``) and a registry."""

from niwt.models.backbones import (
    Backbone,
    FeatureMLP,
    PooledLinearHead,
    ResNetLike,
    TorchvisionResNet101,
    TorchvisionVGG16,
    VGGLike,
    create_model,
    list_models,
    model_settings,
    register_model,
)
from niwt.models.contract import CONTRACT_CLAUSES, BackboneContractError, check_backbone
from niwt.models.head import ExtendableLinear

__all__ = ["FeatureMLP", "Backbone", "PooledLinearHead", "VGGLike", "ResNetLike", "TorchvisionVGG16", "TorchvisionResNet101",
           "ExtendableLinear", "create_model", "list_models", "model_settings", "register_model",
           "BackboneContractError", "CONTRACT_CLAUSES", "check_backbone"]
