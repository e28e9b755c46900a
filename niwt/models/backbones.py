"""Backbones with one contract, and a registry that builds them by name.

Every backbone is an ``nn.Module`` with:

* ``importance_layer``: dotted name of the module whose output is NIWT's importance layer;
* ``forward_features(x)``: images ``[N, 3, H, W]`` -> activations at that layer ``[N, K, h, w]``;
* ``forward_head(a)``: those activations -> penultimate features ``[N, D]`` (input of the classifier);
* ``classifier``: an :class:`~niwt.models.head.ExtendableLinear` (seen rows, then unseen rows);
* ``reset_classifier(n)``: a fresh classifier for ``n`` seen classes.

``forward(x) == classifier(forward_head(forward_features(x)))`` always holds, which is what lets
transfer cache the activations once and run only the head afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from niwt.errors import ConfigError
from niwt.models.head import ExtendableLinear

__all__ = ["Backbone", "VGGLike", "ResNetLike", "TorchvisionVGG16", "TorchvisionResNet101",
           "register_model", "create_model", "list_models"]


class Backbone(nn.Module):
    """Base class: the contract described in the module docstring."""

    importance_layer: str
    classifier: ExtendableLinear
    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_head(self.forward_features(x)))

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        """What transfer caches per pool image: by default the importance-layer activations."""
        return a

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Penultimate features when every channel k of the activations is shifted by ``shift[:, k]``.

        The gradient w.r.t. ``shift`` at 0 is exactly the spatially summed importance
        (d o / d c_k = sum_ij d o / d A_kij), so transfer can differentiate w.r.t. ``shift`` instead of
        the activations. Heads that start with a pooling and a linear layer override this (with
        :meth:`head_cache`) to skip the largest layer's matrix products: the shift commutes with the
        pooling and passes through the linear layer as ``W_sum @ shift``.
        """
        return self.forward_head(cached + shift[:, :, None, None])

    def reset_classifier(self, n_classes: int) -> None:
        """Replace the classifier by a fresh one with ``n_classes`` seen rows and no unseen rows."""
        ref = next(self.parameters())
        self.classifier = ExtendableLinear(self.num_features, n_classes).to(ref.device, ref.dtype)

    def trunk_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the classifier's."""
        head = {id(p) for p in self.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in head]


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class VGGLike(Backbone):
    """A small VGG (with BatchNorm): conv blocks, then fc6 and fc7 (ReLU + dropout), then the classifier.

    The importance layer is ``features``: the last conv block's output after its ReLU and before
    the final max-pool, as VGG16's ``conv5_3`` in the paper.

    Args:
        num_classes: number of seen classes of the classifier.
        width: channels of the first block (then x2, x4).
        hidden: width of fc6 and fc7 (the penultimate feature size D).
        dropout: dropout after fc6 and fc7.
        image_size: input side length (the fc6 input size depends on it).
    """

    def __init__(self, num_classes: int, width: int = 32, hidden: int = 256, dropout: float = 0.3,
                 image_size: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv(3, w), nn.MaxPool2d(2),
            *_conv(w, 2 * w), nn.MaxPool2d(2),
            *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w),
        )
        side = image_size // 4 // 2
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Sequential(
            nn.Linear(4 * w * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),  # fc6
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),  # fc7
        )
        self.num_features = hidden
        self.importance_layer = "features"
        self.classifier = ExtendableLinear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(a), 1))

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc[0](torch.flatten(self.pool(a), 1))  # fc6 pre-activation [N, hidden]

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return self.fc[1:](cached + shift @ _channel_sums(self.fc[0], shift.shape[1]).T)


def _channel_sums(linear: nn.Linear, channels: int) -> torch.Tensor:
    """``[out, K]``: the weights of a linear layer on flattened ``[K, h, w]`` input, summed per channel."""
    return linear.weight.view(linear.out_features, channels, -1).sum(-1)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetLike(Backbone):
    """A small ResNet: stem, three stages of basic blocks, global average pooling, classifier.

    The importance layer is ``stage3.0``, the first unit of the last stage (after the residual add
    and ReLU), as ``block4/unit_1`` of ResNet-101 in the paper.
    """

    def __init__(self, num_classes: int, width: int = 32, hidden: int = 256, dropout: float = 0.0,
                 image_size: int = 32) -> None:
        super().__init__()
        del hidden, dropout, image_size  # the ResNet head is GAP: no fc layers to size
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.stage1 = nn.Sequential(_BasicBlock(w, w))
        self.stage2 = nn.Sequential(_BasicBlock(w, 2 * w, 2))
        self.stage3 = nn.Sequential(_BasicBlock(2 * w, 4 * w, 2), _BasicBlock(4 * w, 4 * w))
        self.num_features = 4 * w
        self.importance_layer = "stage3.0"
        self.classifier = ExtendableLinear(4 * w, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage3[0](self.stage2(self.stage1(self.stem(x))))

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.stage3[1:](a), 1), 1)


class TorchvisionVGG16(Backbone):
    """torchvision's VGG16 (random weights) in the backbone contract; importance at conv5_3."""

    def __init__(self, num_classes: int, **_: object) -> None:
        super().__init__()
        from torchvision.models import vgg16

        net = vgg16(weights=None)
        self.features = net.features[:30]  # up to conv5_3 + ReLU: [N, 512, 14, 14] at 224 px
        self.pool5 = net.features[30]
        self.avgpool = net.avgpool
        self.fc = net.classifier[:6]  # fc6, ReLU, dropout, fc7, ReLU, dropout
        self.num_features = 4096
        self.importance_layer = "features"
        self.classifier = ExtendableLinear(4096, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.pool5(a)), 1))

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc[0](torch.flatten(self.avgpool(self.pool5(a)), 1))  # fc6 pre-activation [N, 4096]

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return self.fc[1:](cached + shift @ _channel_sums(self.fc[0], shift.shape[1]).T)


class TorchvisionResNet101(Backbone):
    """torchvision's ResNet-101 (random weights); importance at ``layer4.0`` (block4/unit_1)."""

    def __init__(self, num_classes: int, **_: object) -> None:
        super().__init__()
        from torchvision.models import resnet101

        net = resnet101(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.num_features = 2048
        self.importance_layer = "layer4.0"
        self.classifier = ExtendableLinear(2048, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4[0](self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.layer4[1:](a), 1), 1)


_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register_model(name: str, builder: Callable[..., Backbone]) -> None:
    """Register ``builder`` under ``name``; a name can be registered once."""
    if name in _REGISTRY:
        raise ConfigError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = builder


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, **kwargs: object) -> Backbone:
    """Build the backbone ``name`` with ``num_classes`` seen rows (random weights, no download)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes, **kwargs)


register_model("vgg", VGGLike)
register_model("resnet", ResNetLike)
register_model("tv_vgg16", TorchvisionVGG16)
register_model("tv_resnet101", TorchvisionResNet101)
