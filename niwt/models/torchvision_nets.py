"""torchvision's VGG and ResNet families in the backbone contract: importance where the paper
takes it (VGG16's conv5_3 after its ReLU, the first unit of ResNet's ``layer4``), unseen classes as
rows of the last linear layer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from niwt.models import fast_resnet
from niwt.models.backbones import Backbone, PooledLinearHead
from niwt.models.head import ExtendableLinear
from niwt.models.weights import torchvision_network

__all__ = ["TorchvisionVGG", "TorchvisionResNet", "TorchvisionVGG16", "TorchvisionResNet101", "VGG_ARCHS", "FINAL_LAYER",
           "RESNET_ARCHS", "family_builder"]


class TorchvisionVGG(PooledLinearHead):
    """A torchvision VGG (``vgg11`` ... ``vgg19_bn``) in the backbone contract.

    The importance layer is ``features``: the network's convolutions up to the last one's ReLU
    (conv5_3 for VGG16, as in the paper), before the last max-pool; the head is that max-pool,
    the adaptive average pool, fc6 and fc7 (with their ReLU and dropout). The final ImageNet layer
    is dropped: :attr:`classifier` takes its place.

    Args:
        net: a ``torchvision.models.VGG`` (its modules are used, not copied).
        num_classes: number of seen classes of the classifier (images of at least 32 px).
    """

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.features = net.features[:-1]  # up to the last conv's ReLU: [N, 512, 14, 14] at 224 px
        self.pool5 = net.features[-1]
        self.avgpool = net.avgpool
        self.fc = net.classifier[:-1]  # fc6, ReLU, dropout, fc7, ReLU, dropout
        self.num_features = net.classifier[-1].in_features
        self.importance_layer = "features"
        self.classifier = ExtendableLinear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def pool_features(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.pool5(a)), 1)


class TorchvisionVGG16(TorchvisionVGG):
    """torchvision's VGG16 in the backbone contract; importance at conv5_3 (after its ReLU).

    Args:
        num_classes: number of seen classes of the classifier (images of at least 32 px).
        weights: a weights file, ``"imagenet"`` or ``"none"`` (:mod:`niwt.models.weights`).
    """

    def __init__(self, num_classes: int, weights: str | None = None) -> None:
        super().__init__(_torchvision_net("vgg16", weights), num_classes)


class TorchvisionResNet(Backbone):
    """A torchvision ResNet (``resnet18`` ... ``resnet152``); importance at ``layer4.0`` (block4/unit_1).

    The importance layer is the output of the first unit of the last stage (after its residual add
    and ReLU), as in the paper; the head is the remaining units of ``layer4`` and the global average
    pool. The final ImageNet layer ``fc`` is dropped: :attr:`classifier` takes its place.

    Args:
        net: a ``torchvision.models.ResNet`` (its modules are used, not copied).
        num_classes: number of seen classes of the classifier.
    """

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.num_features = net.fc.in_features
        self.importance_layer = "layer4.0"
        self.classifier = ExtendableLinear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4[0](self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.layer4[1:](a), 1), 1)

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        """Rows ``[N, L]`` of the linearised head (:mod:`niwt.models.fast_resnet`): the activations,
        the pooled features and the ReLU masks of ``layer4[1:]``; the activations themselves when
        those units cannot be linearised (blocks other than torchvision's, batch norm in training mode)."""
        if fast_resnet.linearisable(self.layer4[1:]) is None:
            return fast_resnet.head_cache(self.layer4[1:], a)
        return a

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Features at the shifted activations: through the linearised head for its rows (``[N, L]``,
        no forward pass at shift 0, the importance from transposed convolutions), else through
        :meth:`forward_head`."""
        if cached.ndim == 2:
            return fast_resnet.forward_head_shifted(self.layer4[1:], cached, shift)
        return super().forward_head_shifted(cached, shift)


class TorchvisionResNet101(TorchvisionResNet):
    """torchvision's ResNet-101; importance at ``layer4.0`` (block4/unit_1).

    Args:
        num_classes: number of seen classes of the classifier.
        weights: a weights file, ``"imagenet"`` or ``"none"`` (:mod:`niwt.models.weights`).
    """

    def __init__(self, num_classes: int, weights: str | None = None) -> None:
        super().__init__(_torchvision_net("resnet101", weights), num_classes)


VGG_ARCHS: tuple[str, ...] = ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
"""The torchvision VGG family, registered under these names."""

RESNET_ARCHS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
"""The torchvision ResNet family, registered under these names."""

FINAL_LAYER: dict[str, str] = {**{arch: "classifier.6." for arch in VGG_ARCHS}, **{arch: "fc." for arch in RESNET_ARCHS}}
"""The key prefix of each family member's last (classifier) layer in torchvision's state dict."""


def _torchvision_net(arch: str, weights: str | None) -> nn.Module:
    """torchvision's ``arch`` network with the asked weights (:func:`~niwt.models.weights.torchvision_network`)."""
    from torchvision import models

    return torchvision_network(getattr(models, arch), arch, weights, final=FINAL_LAYER[arch])


def family_builder(arch: str, adapter: type[Backbone]) -> Callable[..., Backbone]:
    """The registry builder of torchvision's ``arch``: ``(num_classes, weights)`` -> ``adapter``."""

    def build(num_classes: int, weights: str | None = None) -> Backbone:
        return adapter(_torchvision_net(arch, weights), num_classes)

    build.__name__ = build.__qualname__ = f"build_{arch}"
    build.__doc__ = f"torchvision's {arch} as a {adapter.__name__}; `weights`: a file, \"imagenet\" or \"none\"."
    return build

