"""Backbones with one contract, and a registry that builds them by name.

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

A builder registered with :func:`register_model` takes the number of seen classes, then only the
settings it uses as named parameters; :func:`create_model` refuses any other setting and
:func:`model_settings` lists the accepted ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from numbers import Integral, Real

import torch
from torch import nn

from niwt.checks import as_image_batch
from niwt.errors import ConfigError
from niwt.importance import shift_channels
from niwt.models import fast_resnet
from niwt.models.head import ExtendableLinear
from niwt.models.weights import torchvision_network

__all__ = ["Backbone", "PooledLinearHead", "VGGLike", "ResNetLike", "TorchvisionVGG", "TorchvisionResNet",
           "TorchvisionVGG16", "TorchvisionResNet101", "VGG_ARCHS", "RESNET_ARCHS", "FeatureMLP",
           "register_model", "create_model", "list_models", "model_settings"]


class Backbone(nn.Module):
    """Base class: the contract described in the module docstring.

    Attributes:
        importance_layer: dotted name of the importance layer's module.
        classifier: the seen (and, after transfer, unseen) rows.
        num_features: width D of the penultimate features.
        image_size: side length the model was built for, or ``None`` when any size works.
        num_prefix_tokens: class / register tokens ahead of the patch tokens when the importance
            layer outputs tokens (see :func:`niwt.importance.token_prefix`); 0 for conv layers.
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

_FINAL_LAYER = {**{arch: "classifier.6." for arch in VGG_ARCHS}, **{arch: "fc." for arch in RESNET_ARCHS}}


def _torchvision_net(arch: str, weights: str | None) -> nn.Module:
    """torchvision's ``arch`` network with the asked weights (:func:`~niwt.models.weights.torchvision_network`)."""
    from torchvision import models

    return torchvision_network(getattr(models, arch), arch, weights, final=_FINAL_LAYER[arch])


def _family_builder(arch: str, adapter: type[Backbone]) -> Callable[..., Backbone]:
    """The registry builder of torchvision's ``arch``: ``(num_classes, weights)`` -> ``adapter``."""

    def build(num_classes: int, weights: str | None = None) -> Backbone:
        return adapter(_torchvision_net(arch, weights), num_classes)

    build.__name__ = build.__qualname__ = f"build_{arch}"
    build.__doc__ = f"torchvision's {arch} as a {adapter.__name__}; `weights`: a file, \"imagenet\" or \"none\"."
    return build


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


_REGISTRY: dict[str, Callable[..., Backbone]] = {}

_SETTING_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _builder_settings(name: str, builder: Callable[..., Backbone]) -> tuple[str, ...]:
    """The named settings of ``builder`` after its first parameter (the number of classes)."""
    try:
        params = list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the builder of model {name!r} has no inspectable signature: {exc}") from None
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                            inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise ConfigError(f"the builder of model {name!r} must take the number of classes as its first "
                          "positional parameter")
    catch_all = [p.name for p in params if p.kind in (inspect.Parameter.VAR_KEYWORD,
                                                      inspect.Parameter.VAR_POSITIONAL)]
    if catch_all:
        raise ConfigError(f"the builder of model {name!r} must name every setting it uses; it takes "
                          f"catch-all parameter(s) {catch_all}, which would swallow settings it cannot use")
    return tuple(p.name for p in params[1:] if p.kind in _SETTING_KINDS)


def register_model(name: str, builder: Callable[..., Backbone]) -> None:
    """Register ``builder`` under ``name``; a name can be registered once.

    Args:
        name: the model's name for :func:`create_model`.
        builder: ``builder(num_classes, **settings) -> Backbone`` (a class or a function) naming every
            setting it uses as a parameter, with no ``*args`` / ``**kwargs``.

    Raises:
        ConfigError: if ``name`` is taken, or ``builder``'s signature does not follow the rule above.
    """
    if name in _REGISTRY:
        raise ConfigError(f"a model named {name!r} is already registered")
    _builder_settings(name, builder)
    _REGISTRY[name] = builder


_FAMILIES: dict[str, Callable[[str], Callable[..., Backbone]]] = {}


def register_family(prefix: str, factory: Callable[[str], Callable[..., Backbone]]) -> None:
    """Let :func:`create_model` build every name ``prefix + <name>`` with ``factory(<name>)``'s
    builder (e.g. ``"timm/"``: any timm classifier by its name).

    Raises:
        ConfigError: if ``prefix`` is taken.
    """
    if prefix in _FAMILIES:
        raise ConfigError(f"a model family with prefix {prefix!r} is already registered")
    _FAMILIES[prefix] = factory


def list_models() -> list[str]:
    """The registered names :func:`create_model` accepts (families: :func:`list_families`)."""
    return sorted(_REGISTRY)


def list_families() -> list[str]:
    """The prefixes of model families: ``"<prefix><name>"`` builds that family's ``<name>``."""
    return sorted(_FAMILIES)


def is_model_name(name: object) -> bool:
    """Whether :func:`create_model` knows ``name`` (registered, or of a registered family)."""
    return isinstance(name, str) and (name in _REGISTRY or any(
        name.startswith(prefix) and len(name) > len(prefix) for prefix in _FAMILIES))


def _builder(name: str) -> Callable[..., Backbone]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    for prefix, factory in _FAMILIES.items():
        if isinstance(name, str) and name.startswith(prefix) and len(name) > len(prefix):
            return factory(name[len(prefix):])
    families = "".join(f", {prefix}<name>" for prefix in list_families())
    raise ConfigError(f"unknown model {name!r}; available models: {', '.join(list_models())}{families}")


def model_settings(name: str) -> tuple[str, ...]:
    """The settings (keyword arguments) :func:`create_model` accepts for model ``name``.

    Example:
        >>> model_settings("resnet")
        ('width',)

    Raises:
        ConfigError: for an unknown model name.
    """
    return _builder_settings(name, _builder(name))


def model_defaults(name: str) -> dict[str, object]:
    """The settings model ``name`` accepts that have a default, with it.

    Raises:
        ConfigError: for an unknown model name.
    """
    params = inspect.signature(_builder(name)).parameters
    return {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


def create_model(name: str, num_classes: int, **kwargs: object) -> Backbone:
    """Build the backbone ``name`` with ``num_classes`` seen rows (random weights, no download).

    Args:
        name: one of :func:`list_models`.
        num_classes: number of seen classes, >= 1.
        **kwargs: settings of that model; see :func:`model_settings`.

    Raises:
        ConfigError: for an unknown model, a ``num_classes`` below 1, or a setting the model cannot use
            (the message lists the settings it accepts).
    """
    builder = _builder(name)
    accepted = model_settings(name)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        listed = ", ".join(accepted) if accepted else "none"
        raise ConfigError(f"model {name!r} cannot use the setting(s) {', '.join(unknown)}; "
                          f"settings it accepts: {listed}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 1:
        raise ConfigError(f"`num_classes` must be an integer >= 1, got {num_classes!r}")
    return builder(num_classes, **kwargs)


register_model("vgg", VGGLike)
register_model("resnet", ResNetLike)
for _arch in VGG_ARCHS:
    register_model(_arch, _family_builder(_arch, TorchvisionVGG))
for _arch in RESNET_ARCHS:
    register_model(_arch, _family_builder(_arch, TorchvisionResNet))
register_model("tv_vgg16", TorchvisionVGG16)  # the names of earlier releases
register_model("tv_resnet101", TorchvisionResNet101)
register_model("mlp", FeatureMLP)
