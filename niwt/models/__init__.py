"""Backbones with one contract (``forward_features`` / ``forward_head`` / ``classifier``) and a registry."""

from niwt.models.backbones import (
    Backbone,
    ResNetLike,
    TorchvisionResNet101,
    TorchvisionVGG16,
    VGGLike,
    create_model,
    list_models,
    register_model,
)
from niwt.models.head import ExtendableLinear

__all__ = ["Backbone", "VGGLike", "ResNetLike", "TorchvisionVGG16", "TorchvisionResNet101",
           "ExtendableLinear", "create_model", "list_models", "register_model"]
