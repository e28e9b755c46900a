"""A classifier trained elsewhere, taken as it is, head included (``niwt adopt``).

:func:`adopted_backbone` builds a torchvision (``resnet18`` ... ``vgg19_bn``) or timm
(``timm/<name>``) network with as many outputs as the weights' classifier has, loads every tensor
of the weights into it (its last layer too, unlike ``model.weights``, whose classifier rows a run
trains anew), and splits it as :func:`niwt.models.create_model` splits that architecture, so that
a run saved from it reads back with ``create_model`` like any other. :func:`module_backbone` does
the same for any ``nn.Module`` that :func:`niwt.models.adapt` accepts; such a run is read back
with the same module (``load_run(RUN, model=...)``). :func:`order_rows` puts the classifier's
outputs in the order of the run's seen classes.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib

import numpy as np
import torch
from torch import nn

from niwt.errors import ConfigError, DataError
from niwt.messages import first_names
from niwt.models.adapters import adapt
from niwt.models.backbones import Backbone
from niwt.models.registry import register_family
from niwt.models.timm_models import PREFIX as TIMM_PREFIX
from niwt.models.timm_models import fit_positions, timm_backbone, timm_network
from niwt.models.torchvision_nets import FINAL_LAYER, RESNET_ARCHS, VGG_ARCHS
from niwt.models.weights import load_checked

__all__ = ["MODULE_PREFIX", "ADOPTABLE_HELP", "adoptable", "classifier_key", "head_size", "adopted_backbone",
           "module_backbone", "module_arch", "order_rows", "input_convention", "state_digest", "check_adoptable"]

MODULE_PREFIX = "module/"
"""``model.arch`` of a run adopted from a Python ``nn.Module`` (``module/<its class name>``)."""

_ALIASES = {"tv_vgg16": "vgg16", "tv_resnet101": "resnet101"}
_TORCHVISION = (*VGG_ARCHS, *RESNET_ARCHS, *_ALIASES)

ADOPTABLE_HELP = (f"a torchvision classifier ({', '.join(_TORCHVISION[:3])}, ..., {', '.join(RESNET_ARCHS[-2:])}) "
                  f"or timm's, as {TIMM_PREFIX}<name>; from Python, any nn.Module whose last layer is an nn.Linear")


def adoptable(arch: str) -> bool:
    """Whether ``arch`` names an architecture :func:`adopted_backbone` builds."""
    return isinstance(arch, str) and (arch in _TORCHVISION or (arch.startswith(TIMM_PREFIX) and len(arch) > 5))


def check_adoptable(arch: str) -> None:
    """Refuse an architecture :func:`adopted_backbone` cannot build (ConfigError, saying what can be)."""
    if not adoptable(arch):
        raise ConfigError(f"cannot adopt a {arch!r} classifier: give {ADOPTABLE_HELP}")


def _timm_net(arch: str, num_classes: int, image_size: int) -> nn.Module:
    return timm_network(arch[len(TIMM_PREFIX):], num_classes, "none", image_size)


@functools.lru_cache(maxsize=8)
def _timm_cfg(arch: str, image_size: int) -> dict:
    """timm's pretrained config of ``arch`` (a network is built once per name to read it)."""
    return dict(_timm_net(arch, 1, image_size).pretrained_cfg)


def classifier_key(arch: str, image_size: int = 224) -> str:
    """The state-dict name of ``arch``'s last (classifier) layer: ``"fc"``, ``"classifier.6"``,
    timm's ``pretrained_cfg["classifier"]`` (``"classifier"``, ``"head.fc"``, ...)."""
    check_adoptable(arch)
    if arch.startswith(TIMM_PREFIX):
        return str(_timm_cfg(arch, image_size).get("classifier", "")).strip(".")
    return FINAL_LAYER[_ALIASES.get(arch, arch)].rstrip(".")


def head_size(arch: str, state: dict[str, torch.Tensor], source: str, image_size: int = 224) -> int:
    """How many outputs the classifier in ``state`` has (the rows of its last layer).

    Raises:
        DataError: ``state`` has no such layer (the weights of another architecture: its first
            keys are named) or it is not a linear layer's weight.
    """
    key = classifier_key(arch, image_size) + ".weight"
    weight = state.get(key)
    if weight is None:
        raise DataError(f"weights {source} hold no `{key}`, the classifier of {arch}: are they another architecture's? "
                        f"Their first keys: {first_names(sorted(state), 5, more=' and {} more')}")
    if weight.ndim != 2:
        raise DataError(f"weights {source}: `{key}` has shape {tuple(weight.shape)}; the classifier of {arch} is a "
                        "linear layer [outputs, features]")
    return int(weight.shape[0])


def adopted_backbone(arch: str, state: dict[str, torch.Tensor], *, source: str, layer: str = "",
                     image_size: int = 224) -> Backbone:
    """``arch`` with every tensor of ``state``, its classifier included, as a niwt backbone whose
    seen rows are the classifier's outputs in their order (its logits equal the network's).

    Args:
        arch: a torchvision name or ``timm/<name>`` (:func:`adoptable`).
        state: the network's state dict.
        source: how the weights are named in messages (the file).
        layer: a timm network's importance layer (empty: the family's default; a torchvision
            network is split where its family is, and ``importance.layer`` moves it later).
        image_size: the side a timm vision transformer is built for.

    Raises:
        ConfigError: an architecture that cannot be adopted.
        DataError: weights that do not fit ``arch`` (the first misfit keys named).
    """
    n = head_size(arch, state, source, image_size)
    if arch.startswith(TIMM_PREFIX):
        name = arch[len(TIMM_PREFIX):]
        net = _timm_net(arch, n, image_size)
        load_checked(net, fit_positions(net, state), f"timm's {name}", source,
                     skip=lambda k: k.endswith("num_batches_tracked"), naming="timm")
        return timm_backbone(net.eval(), layer)
    models = importlib.import_module("torchvision.models")
    base = _ALIASES.get(arch, arch)
    net = getattr(models, base)(weights=None, num_classes=n)
    load_checked(net, state, base, source, skip=lambda k: False, naming="torchvision")
    split = "layer4.0" if base in RESNET_ARCHS else f"features.{len(net.features) - 2}"
    return adapt(net.eval(), split)


def module_arch(model: nn.Module) -> str:
    """``model.arch`` of a run adopted from ``model``: ``module/<its class name>``."""
    return MODULE_PREFIX + type(model).__name__


def module_backbone(model: nn.Module, layer: str) -> Backbone:
    """A copy of ``model`` (left as it is) as a backbone split at ``layer`` (:func:`niwt.models.adapt`)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if not layer:
        raise ConfigError(f"adopting a {type(model).__name__} needs its importance layer: give layer= the dotted name "
                          "of a module of it (e.g. 'layer4.0' for a ResNet)")
    return adapt(copy.deepcopy(model).eval(), layer)


def _no_module_builder(name: str):
    def build(num_classes: int) -> Backbone:
        raise ConfigError(f"this run was adopted from a Python {name} (model.arch = {MODULE_PREFIX}{name}): "
                          f"niwt cannot build one by itself; load it with niwt.load_run(RUN, model=<the same {name}>)")

    return build


register_family(MODULE_PREFIX, _no_module_builder)


def order_rows(backbone: Backbone, outputs: np.ndarray) -> None:
    """Put ``backbone``'s classifier rows in the order of the run's seen classes: row ``r`` becomes
    output ``outputs[r]`` of the classifier (``outputs`` a permutation of its outputs)."""
    head = backbone.classifier
    outputs = np.asarray(outputs, dtype=np.int64)
    if sorted(outputs.tolist()) != list(range(head.n_seen)):
        raise DataError(f"`outputs` must name each of the classifier's {head.n_seen} outputs once, got "
                        f"{outputs.tolist()}")
    index = torch.from_numpy(outputs).to(head.weight.device)
    with torch.no_grad():
        head.weight.copy_(head.weight.detach().index_select(0, index).clone())
        head.bias.copy_(head.bias.detach().index_select(0, index).clone())


def input_convention(arch: str, image_size: int = 224) -> tuple[int, int, bool]:
    """How ``arch``'s weights expect images: ``(resize, crop, normalize)``. A timm network's from
    its pretrained config (input size, crop fraction; it normalises inputs itself); torchvision's
    the ImageNet convention (256, 224, normalised with the ImageNet mean and std)."""
    check_adoptable(arch)
    if not arch.startswith(TIMM_PREFIX):
        return 256, 224, True
    cfg = _timm_cfg(arch, image_size)
    crop = int(tuple(cfg.get("input_size", (3, 224, 224)))[-1])
    return int(round(crop / float(cfg.get("crop_pct", 0.875) or 1.0))), crop, False


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """A fingerprint of a state dict's names and values (the adopted network's stage key)."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode() + str(value.dtype).encode())
        h.update(value.view(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return h.hexdigest()[:20]
