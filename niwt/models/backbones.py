"""Backbones with one contract, and the small ones niwt builds itself (VGG-like, ResNet-like, an MLP on features).

Every backbone is an ``nn.Module`` with:

* ``importance_layer``: dotted name of the module whose output is NIWT's importance layer;
* ``forward_features(x)``: images ``[N, 3, H, W]`` -> activations at that layer ``[N, K, h, w]``
  (or ``[N, T, D]`` tokens of a vision transformer, whose first ``num_prefix_tokens`` are not patches);
* ``forward_head(a)``: those activations -> penultimate features ``[N, D]`` (input of the classifier);
* ``classifier``: an :class:`~niwt.models.head.ExtendableLinear` (seen rows, then unseen rows);
* ``reset_classifier(n)``: a fresh classifier for ``n`` seen classes.

``forward(x) == classifier(forward_head(forward_features(x)))`` always holds, which is what lets
transfer cache the activations once and run only the head afterwards;
:func:`niwt.models.check_backbone` checks this and the fast-head contract on any model.

The registry that builds them by name: :mod:`niwt.models.registry`; torchvision's VGG and ResNet
families: :mod:`niwt.models.torchvision_nets`.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from torch import nn

from niwt.checks import as_image_batch
from niwt.errors import ConfigError
from niwt.layers import shift_channels
from niwt.models.head import ExtendableLinear

__all__ = ["Backbone", "PooledLinearHead", "VGGLike", "ResNetLike", "FeatureMLP"]


class Backbone(nn.Module):
    """Base class: the contract described in the module docstring.

    Attributes:
        importance_layer: dotted name of the importance layer's module.
        classifier: the seen (and, after transfer, unseen) rows.
        num_features: width D of the penultimate features.
        image_size: side length the model was built for, or ``None`` when any size works.
        num_prefix_tokens: class / register tokens ahead of the patch tokens when the importance
            layer outputs tokens (see :func:`niwt.layers.token_prefix`); 0 for conv layers.
    """

    importance_layer: str
    classifier: ExtendableLinear
    num_features: int
    image_size: int | None = None
    in_channels: int = 3
    num_prefix_tokens: int = 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, S + U]`` of images ``x`` ``[N, 3, H, W]`` (float tensor or NumPy array).

        Raises:
            DataError: for images of the wrong layout, dtype, channel count or size, or with NaN.
        """
        ref = self.classifier.weight
        x = as_image_batch("x", x, channels=self.in_channels, size=self.image_size, dtype=ref.dtype,
                           device=ref.device)
        return self.classifier(self.forward_head(self.forward_features(x)))

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        """What transfer caches per pool image: by default the importance-layer activations."""
        return a

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Penultimate features when every channel k of the activations is shifted by ``shift[:, k]``
        (at every position, or every patch token).

        The gradient w.r.t. ``shift`` at 0 is exactly the spatially summed importance
        (d o / d c_k = sum_ij d o / d A_kij), so transfer can differentiate w.r.t. ``shift`` instead of
        the activations. Heads that start with a pooling and a linear layer override this (with
        :meth:`head_cache`) to skip the largest layer's matrix products: the shift commutes with the
        pooling and passes through the linear layer as ``W_sum @ shift``.
        """
        return self.forward_head(shift_channels(cached, shift, self.num_prefix_tokens))

    def set_importance_layer(self, name: str) -> None:
        """Take importance at ``name`` instead of the default layer (the ablation of the layer).

        The weights and the logits do not change, only where the network is split into
        :meth:`forward_features` and :meth:`forward_head`. Backbones that support it override this.

        Raises:
            ConfigError: when this backbone cannot move its importance layer, or not to ``name``.
        """
        if name != self.importance_layer:
            raise ConfigError(f"model {type(self).__name__} takes importance only at {self.importance_layer!r}, "
                              f"got importance.layer = {name!r}; leave importance.layer empty")

    def reset_classifier(self, n_classes: int) -> None:
        """Replace the classifier by a fresh one with ``n_classes`` seen rows and no unseen rows."""
        ref = next(self.parameters())
        self.classifier = ExtendableLinear(self.num_features, n_classes).to(ref.device, ref.dtype)

    def trunk_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the classifier's."""
        head = {id(p) for p in self.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in head]


class PooledLinearHead(Backbone):
    """A backbone whose head is pool -> flatten -> ``fc`` (``fc[0]`` a linear fc6, then the rest).

    Subclasses set ``fc`` (an ``nn.Sequential`` starting with an ``nn.Linear``) and implement
    :meth:`pool_features` with a per-channel pooling (max or average) followed by a channel-major
    flatten. A constant added to channel k then passes through the pooling unchanged and through
    fc6 as the k-th column of its per-channel weight sums, so the shifted head needs only fc6's
    pre-activation per image (:meth:`head_cache`), not the activations.
    """

    fc: nn.Sequential

    def pool_features(self, a: torch.Tensor) -> torch.Tensor:
        """Activations ``[N, K, h, w]`` -> pooled and flattened input of fc6 ``[N, K * h' * w']``."""
        raise NotImplementedError

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool_features(a))

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc[0](self.pool_features(a))  # fc6 pre-activation [N, hidden]

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return self.fc[1:](cached + shift @ _channel_sums(self.fc[0], shift.shape[1]).T)


def _channel_sums(linear: nn.Linear, channels: int) -> torch.Tensor:
    """``[out, K]``: the weights of a linear layer on flattened ``[K, h, w]`` input, summed per channel."""
    return linear.weight.view(linear.out_features, channels, -1).sum(-1)


def _check_setting(model: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"model {model!r}: `{name}` must be an integer >= {minimum}, got {value!r}")


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class VGGLike(PooledLinearHead):
    """A small VGG (with BatchNorm): conv blocks, then fc6 and fc7 (ReLU + dropout), then the classifier.

    The importance layer is ``features``: the last conv block's output after its ReLU and before
    the final max-pool, as VGG16's ``conv5_3`` in the paper.

    Args:
        num_classes: number of seen classes of the classifier.
        width: channels of the first block (then x2, x4).
        hidden: width of fc6 and fc7 (the penultimate feature size D).
        dropout: dropout after fc6 and fc7.
        image_size: input side length (the fc6 input size depends on it), at least 8.
    """

    def __init__(self, num_classes: int, width: int = 32, hidden: int = 256, dropout: float = 0.3,
                 image_size: int = 32) -> None:
        super().__init__()
        for name, value, minimum in (("width", width, 1), ("hidden", hidden, 1), ("image_size", image_size, 8)):
            _check_setting("vgg", name, value, minimum)
        if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model 'vgg': `dropout` must lie in [0, 1), got {dropout!r}")
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
        self.image_size = image_size
        self.importance_layer = "features"
        self._cut: int | None = None  # importance after features[:cut] when an earlier layer is asked for
        self.classifier = ExtendableLinear(hidden, num_classes)

    def importance_layers(self) -> tuple[str, ...]:
        """Where importance can be taken: after each conv block's ReLU, the last one ("features") by default."""
        relus = [i for i, m in enumerate(self.features) if isinstance(m, nn.ReLU)]
        return tuple(f"features.{i}" for i in relus[:-1]) + ("features",)

    def set_importance_layer(self, name: str) -> None:
        """Take importance after an earlier conv block's ReLU (``features.<i>``, see
        :meth:`importance_layers`); the blocks after it become part of the head."""
        choices = self.importance_layers()
        if name not in choices:
            raise ConfigError(f"model 'vgg': `importance.layer` must be one of {list(choices)}, got {name!r}")
        self.importance_layer = name
        self._cut = None if name == "features" else int(name.split(".")[1]) + 1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) if self._cut is None else self.features[: self._cut](x)

    def pool_features(self, a: torch.Tensor) -> torch.Tensor:
        if self._cut is not None:
            a = self.features[self._cut :](a)
        return torch.flatten(self.pool(a), 1)

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        # Past an earlier layer the head holds convolutions, so the shift no longer commutes with it.
        return super().head_cache(a) if self._cut is None else a

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        if self._cut is None:
            return super().forward_head_shifted(cached, shift)
        return Backbone.forward_head_shifted(self, cached, shift)


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
    and ReLU), as ``block4/unit_1`` of ResNet-101 in the paper. The head is global average pooling,
    so there are no fc layers to size and any image size works.

    Args:
        num_classes: number of seen classes of the classifier.
        width: channels of the first stage (then x2, x4); the penultimate feature size is ``4 * width``.
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        _check_setting("resnet", "width", width, 1)
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



class FeatureMLP(PooledLinearHead):
    """A small classifier on pre-extracted image features (xlsa17's 2048-d ResNet-101 features).

    Each feature vector enters as a one-pixel image ``[N, D, 1, 1]``: a 1x1 convolution with ReLU
    (the importance layer ``features``, ``hidden`` channels), then a linear layer with ReLU and
    dropout (the penultimate features), then the classifier. Importance, transfer (fast path
    included) and evaluation then run unchanged.

    Args:
        num_classes: number of seen classes of the classifier.
        in_features: width D of the input features.
        hidden: channels of the importance layer and width of the penultimate features.
        dropout: dropout after the penultimate layer.
    """

    def __init__(self, num_classes: int, in_features: int = 2048, hidden: int = 1024, dropout: float = 0.3) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden", hidden)):
            _check_setting("mlp", name, value, 1)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model 'mlp': `dropout` must lie in [0, 1), got {dropout!r}")
        self.features = nn.Sequential(nn.Conv2d(in_features, hidden, 1), nn.ReLU())
        self.fc = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.num_features = hidden
        self.importance_layer = "features"
        self.in_channels = in_features
        self.image_size = 1
        self.classifier = ExtendableLinear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def pool_features(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flatten(a, 1)

