"""Bring your own classifier: a torchvision-style network as a niwt backbone, split at a named layer.

:func:`adapt` takes any classifier whose last layer is an ``nn.Linear`` and the dotted name of the
importance layer, checks both on a small dummy batch, and returns a :class:`~niwt.models.Backbone`
that shares the network's modules (nothing is copied but the last layer, whose rows become the
seen rows of the :class:`~niwt.models.ExtendableLinear` classifier). Importance, the reference and
fast transfer paths and evaluation then run on it unchanged.

How the network is split into ``forward_features`` (up to the importance layer) and
``forward_head`` (the rest, up to the input of the last layer):

* the families niwt ships adapters for, at their usual layers: VGG at its last conv's ReLU
  (:class:`~niwt.models.TorchvisionVGG`), ResNet at ``layer4.0``
  (:class:`~niwt.models.TorchvisionResNet`), ConvNeXt and EfficientNet at a stage
  (``features.i``) or a block of a stage (``features.i.j``) (:class:`TorchvisionStaged`);
* any other network or layer: the network is traced with ``torch.fx`` and its graph cut at the
  layer (:class:`GraphSplit`). This needs a layer whose output alone feeds the rest of the
  network: a layer bypassed by a skip connection (inside a residual block) cannot be split and is
  refused, naming the tensor that goes around it.

Every refusal is a :class:`~niwt.errors.ConfigError` raised before any training: an unknown layer
(with the closest names), a layer that does not run exactly once in a forward pass, a network whose
last layer is not an ``nn.Linear`` (naming what it is), a network that computes something after it.
"""

from __future__ import annotations

import difflib
import logging
import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from niwt.errors import ConfigError
from niwt.layers import eval_mode, token_prefix
from niwt.models.backbones import Backbone
from niwt.models.head import ExtendableLinear
from niwt.models.torchvision_nets import TorchvisionResNet, TorchvisionVGG

__all__ = ["adapt", "GraphSplit", "TorchvisionStaged"]

log = logging.getLogger(__name__)

_CLOSE = 5


@dataclass(frozen=True)
class _Probe:
    """What one forward pass of a dummy batch shows of a network.

    Attributes:
        final: dotted name of the last layer that ran (the module producing the logits).
        layer_output: the importance layer's output on the dummy batch.
        channels: input channels of the dummy batch.
    """

    final: str
    layer_output: torch.Tensor
    channels: int


class TorchvisionStaged(Backbone):
    """ConvNeXt or EfficientNet (``features`` stages, ``avgpool``, ``classifier``) split at a stage or block.

    ``forward_features`` runs ``features`` up to stage ``i`` (``layer = "features.i"``) or up to
    block ``j`` of stage ``i`` (``"features.i.j"``); ``forward_head`` runs the remaining blocks and
    stages, the average pool and the classifier's layers before its last one.

    Args:
        net: a ``torchvision.models.ConvNeXt`` or ``EfficientNet`` (its modules are used, not copied).
        layer: ``"features.i"`` or ``"features.i.j"``.
        num_classes: number of seen classes of the classifier.
    """

    def __init__(self, net: nn.Module, layer: str, num_classes: int) -> None:
        super().__init__()
        stage, block = _staged_position(net, layer)
        stages = list(net.features)
        if block is None:
            front, rest = stages[: stage + 1], stages[stage + 1 :]
        else:
            blocks = list(stages[stage])
            front = [*stages[:stage], nn.Sequential(*blocks[: block + 1])]
            rest = [nn.Sequential(*blocks[block + 1 :]), *stages[stage + 1 :]]
        self.features = nn.Sequential(*front)  # its output is the importance layer's
        self.rest = nn.Sequential(*rest)
        self.avgpool = net.avgpool
        tail = list(net.classifier)[:-1]
        # ConvNeXt's classifier flattens itself (LayerNorm2d, Flatten); EfficientNet's forward flattens first
        self.pre_logits = nn.Sequential(*tail) if any(isinstance(m, nn.Flatten) for m in tail) \
            else nn.Sequential(nn.Flatten(1), *tail)
        self.num_features = net.classifier[-1].in_features
        self.importance_layer = "features"
        self.classifier = ExtendableLinear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return self.pre_logits(self.avgpool(self.rest(a)))


def _staged_position(net: nn.Module, layer: str) -> tuple[int, int | None]:
    """``(i, j)`` of ``"features.i.j"`` (``j`` None for ``"features.i"``); ConfigError otherwise."""
    parts = layer.split(".")
    ok = parts[0] == "features" and len(parts) in (2, 3) and all(p.isdigit() for p in parts[1:])
    if ok and int(parts[1]) < len(net.features):
        if len(parts) == 2:
            return int(parts[1]), None
        stage = net.features[int(parts[1])]
        if type(stage) is nn.Sequential and int(parts[2]) < len(stage):
            return int(parts[1]), int(parts[2])
    raise ConfigError(f"{type(net).__name__} is split at a stage `features.i` or at a block `features.i.j` of a "
                      f"stage; got `{layer}`")


def _staged_layer(net: nn.Module, layer: str) -> bool:
    try:
        _staged_position(net, layer)
    except ConfigError:
        return False
    return True


def _family(model: nn.Module, layer: str, final: str, num_classes: int) -> Backbone | None:
    """The family adapter of ``model`` at ``layer``, or None when no family adapter fits."""
    from torchvision.models import VGG, ConvNeXt, EfficientNet, ResNet

    if isinstance(model, VGG) and final == f"classifier.{len(model.classifier) - 1}" \
            and layer == f"features.{len(model.features) - 2}" and isinstance(model.features[-1], nn.MaxPool2d):
        return TorchvisionVGG(model, num_classes)
    if isinstance(model, ResNet) and final == "fc" and layer == "layer4.0":
        return TorchvisionResNet(model, num_classes)
    if isinstance(model, ConvNeXt | EfficientNet) and final == f"classifier.{len(model.classifier) - 1}" \
            and _staged_layer(model, layer):
        return TorchvisionStaged(model, layer, num_classes)
    return None


class _SplitTracer(fx.Tracer):
    """Keeps the importance layer, and every module without children, as one call each."""

    def __init__(self, layer: str) -> None:
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # modules without children run as themselves, so their own train/eval behaviour is kept at run time
        return (module_qualified_name == self.layer or not any(True for _ in m.children())
                or super().is_leaf_module(m, module_qualified_name))


def _in_place(node: fx.Node, root: nn.Module) -> bool:
    """Whether ``node`` may write into its first input (``ReLU(inplace=True)``, ``relu_``, ``+=``)."""
    if node.op == "call_module":
        return bool(getattr(root.get_submodule(node.target), "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_") and not str(node.target).endswith("__")
    if node.op == "call_function":
        return bool(node.kwargs.get("inplace", False)) or node.target in (operator.iadd, operator.imul)
    return False


class GraphSplit(Backbone):
    """Any ``torch.fx``-traceable classifier cut at one layer: the graph before it and the graph after it.

    ``forward_features`` is the traced graph up to the importance layer (its output);
    ``forward_head`` is the graph from that output to the input of the last layer. Both share the
    network's modules. When the first use of the layer's output writes into it (an in-place ReLU),
    the head works on a copy, so its input is never modified.

    Args:
        model: the network (traced in eval mode).
        layer: dotted name of the importance layer.
        final: dotted name of the network's last layer (an ``nn.Linear`` producing the logits).
        num_classes: number of seen classes of the classifier.

    Raises:
        ConfigError: the network cannot be traced, or ``layer`` does not cut it (a tensor computed
            before the layer is used after it).
    """

    def __init__(self, model: nn.Module, layer: str, final: str, num_classes: int) -> None:
        super().__init__()
        name = type(model).__name__
        try:
            with eval_mode(model):
                graph = _SplitTracer(layer).trace(model)
        except Exception as err:  # noqa: BLE001 - fx fails in many ways on untraceable code; say which
            raise ConfigError(
                f"{name} cannot be split at `{layer}` automatically: torch.fx cannot trace it "
                f"({type(err).__name__}: {str(err)[:200]}); subclass niwt.models.Backbone with your own "
                "forward_features / forward_head") from err
        nodes = list(graph.nodes)
        order = {n: i for i, n in enumerate(nodes)}
        cuts = [n for n in nodes if n.op == "call_module" and n.target == layer]
        finals = [n for n in nodes if n.op == "call_module" and n.target == final]
        output = nodes[-1]
        if len(cuts) != 1 or len(finals) != 1 or output.args[0] is not finals[0] \
                or order[finals[0]] < order[cuts[0]]:
            raise ConfigError(f"{name} cannot be split at `{layer}` automatically: its traced graph calls "
                              f"`{layer}` {len(cuts)} time(s) and `{final}` {len(finals)} time(s) (expected once each, "
                              f"`{final}` last); subclass niwt.models.Backbone with your own forward_features / "
                              "forward_head")
        cut, last = cuts[0], finals[0]
        head_nodes = _head_nodes(name, layer, cut, last.args[0], order)

        features = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for node in nodes[: order[cut] + 1]:
            env[node] = features.node_copy(node, lambda n: env[n])
        features.output(env[cut])

        head = fx.Graph()
        henv: dict[fx.Node, fx.Node] = {cut: head.placeholder("a")}
        if any(_in_place(user, model) for user in cut.users if user in head_nodes):
            henv[cut] = head.call_method("clone", (henv[cut],))
        for node in sorted(head_nodes, key=order.__getitem__):
            henv[node] = head.node_copy(node, lambda n: henv[n])
        head.output(henv[last.args[0]])  # the input of the last layer: the penultimate features

        self.features = fx.GraphModule(model, features, class_name="Features")
        self.features.graph.eliminate_dead_code()  # what only the head needed
        self.features.recompile()
        self.head = fx.GraphModule(model, head, class_name="Head")
        self.importance_layer = f"features.{layer}"
        self.num_prefix_tokens = token_prefix(model)  # a ViT's class / register tokens (0 for a CNN)
        self.num_features = model.get_submodule(final).in_features
        self.classifier = ExtendableLinear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.head(a), 1)

    def set_importance_layer(self, name: str) -> None:
        """The layer the graph was cut at, by either of its names (the network's, or the backbone's)."""
        if name not in (self.importance_layer, getattr(self, "split_layer", None)):
            super().set_importance_layer(name)


def _head_nodes(name: str, layer: str, cut: fx.Node, end: fx.Node, order: dict[fx.Node, int]) -> set[fx.Node]:
    """The nodes ``end`` needs after ``cut``; ConfigError when one of them reads a tensor from before ``cut``."""
    needed: set[fx.Node] = set()
    # nodes computed from the images; the rest are constants, such as the `attn_mask=None` and
    # `is_causal=False` arguments (placeholders with defaults) of a ViT's forward
    from_input: set[fx.Node] = set()
    for node in sorted(order, key=order.__getitem__):
        if (node.op == "placeholder" and not node.args) or any(n in from_input for n in node.all_input_nodes):
            from_input.add(node)
    stack = [end] if end is not cut else []
    while stack:
        node = stack.pop()
        if node in needed or node is cut:
            continue
        if node.op == "get_attr":  # a parameter or buffer: copied into the head
            needed.add(node)
            continue
        if node not in from_input:  # a constant (such as a flag an attention layer computes): copied too
            needed.add(node)
            stack.extend(node.all_input_nodes)
            continue
        if node.op == "placeholder" or order[node] < order[cut]:
            user = next((u for u in node.users if u in needed or u is end), None)
            where = f" by `{user.name}`" if user is not None else ""
            raise ConfigError(
                f"{name} cannot be split at `{layer}`: `{node.name}`, computed before it, is used after it{where} "
                f"(a skip connection goes around `{layer}`), so the rest of the network does not depend on "
                f"`{layer}` alone; choose a layer whose output alone feeds the rest, such as a block holding it "
                f"({_parents(layer)})")
        needed.add(node)
        stack.extend(node.all_input_nodes)
    return needed


def _parents(layer: str) -> str:
    """``"`a.b`, `a`"`` for ``"a.b.c"``: the modules holding ``layer``, innermost first."""
    parts = layer.split(".")
    return ", ".join(f"`{'.'.join(parts[:i])}`" for i in range(len(parts) - 1, 0, -1)) or "none"


def _close_names(model: nn.Module, layer: str) -> str:
    names = [n for n, _ in model.named_modules() if n]
    close = difflib.get_close_matches(layer, names, n=_CLOSE, cutoff=0.5)
    if not close:  # e.g. "layer4" for "layer4.0.conv9": the names under the nearest existing parent
        parent = layer
        while parent and parent not in names:
            parent = parent.rpartition(".")[0]
        close = [n for n in names if n.startswith(parent + ".")][:_CLOSE] if parent else names[-_CLOSE:]
    return ", ".join(f"`{n}`" for n in close)


def _probe(model: nn.Module, layer: str, probe_size: int) -> _Probe:
    """Run a dummy batch once with hooks: how often ``layer`` runs, and which layer runs last."""
    name = type(model).__name__
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels = 3 if first_conv is None else first_conv.in_channels
    ref = next(model.parameters(), None)
    x = torch.rand(2, channels, probe_size, probe_size, generator=torch.Generator().manual_seed(0))
    if ref is not None:
        x = x.to(ref.device, ref.dtype)
    target = model.get_submodule(layer)
    calls: list[torch.Tensor] = []
    ran: list[tuple[str, nn.Module, object]] = []
    handles = [target.register_forward_hook(lambda _m, _i, out: calls.append(out))]
    for mod_name, module in model.named_modules():
        if mod_name and not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(
                lambda m, _i, out, mod_name=mod_name: ran.append((mod_name, m, out))))
    try:
        with eval_mode(model), torch.no_grad():
            logits = model(x)
    except Exception as err:  # noqa: BLE001 - the user's network may fail in any way on the dummy batch
        raise ConfigError(f"{name} cannot run on a dummy batch of shape {tuple(x.shape)} ({type(err).__name__}: "
                          f"{str(err)[:200]}); pass `probe_size` with an image side the network accepts") from err
    finally:
        for handle in handles:
            handle.remove()
    if len(calls) != 1:
        raise ConfigError(
            f"the importance layer `{layer}` of {name} runs {len(calls)} times in one forward pass; it must run "
            "exactly once (a module reused at several places, such as a shared ReLU, has no single output): "
            f"choose a module that runs once, such as its parent `{layer.rpartition('.')[0] or layer}`")
    if not isinstance(calls[0], torch.Tensor) or calls[0].ndim < 2:
        raise ConfigError(f"the importance layer `{layer}` of {name} must output a tensor [N, K, ...], got "
                          f"{type(calls[0]).__name__}")
    if not ran:
        raise ConfigError(f"{name} ran no layer on the dummy batch; niwt needs a classifier ending in an nn.Linear")
    final, module, out = ran[-1]
    if not isinstance(module, nn.Linear):
        raise ConfigError(
            f"the last layer of {name} is `{final}` ({type(module).__name__}); niwt appends unseen classes as rows "
            "of a final nn.Linear, so the network must end in one (replace the last layer by an nn.Linear, or "
            "subclass niwt.models.Backbone)")
    if out is not logits:
        raise ConfigError(f"{name} computes something after its last layer `{final}` (nn.Linear): its output is "
                          "not that layer's; niwt needs the logits to be the last linear layer's output")
    return _Probe(final, calls[0], channels)


def adapt(model: nn.Module, layer: str, *, probe_size: int = 64, check: bool = True) -> Backbone:
    """``model`` as a niwt backbone with its importance layer at ``layer``.

    The returned backbone shares ``model``'s modules (training it trains them); its classifier's
    seen rows are a copy of ``model``'s last linear layer, so its logits equal ``model``'s.

    Args:
        model: a classifier whose last layer is an ``nn.Linear`` producing the logits (torchvision's
            VGG, ResNet, ConvNeXt, EfficientNet, ... or your own).
        layer: dotted name of the importance layer (``"features.29"``, ``"layer4.0"``).
        probe_size: side of the dummy images the network is checked with (any size it accepts).
        check: run :func:`~niwt.models.check_backbone` on the dummy batch (every clause of the
            contract, with float32 tolerances), so a split that breaks it is refused here.

    Returns:
        A :class:`~niwt.models.Backbone` (a family adapter, or a :class:`GraphSplit`).

    Raises:
        ConfigError: ``model`` is not a module; ``layer`` is not one of its modules (the closest names
            are listed) or does not run exactly once in a forward pass; the last layer is not an
            ``nn.Linear`` (the module found is named) or its output is not the network's; the network
            cannot be split at ``layer``.

    Example:
        >>> from torchvision.models import resnet18
        >>> backbone = adapt(resnet18(weights=None), "layer4.0")  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if not isinstance(layer, str) or not layer:
        raise ConfigError(f"`layer` must be the dotted name of a module of the model, got {layer!r}")
    if isinstance(probe_size, bool) or not isinstance(probe_size, int) or probe_size < 1:
        raise ConfigError(f"`probe_size` must be an integer >= 1, got {probe_size!r}")
    names = {n for n, _ in model.named_modules() if n}
    if layer not in names:
        raise ConfigError(f"{type(model).__name__} has no layer `{layer}`; close names: {_close_names(model, layer)}")
    probe = _probe(model, layer, probe_size)
    last = model.get_submodule(probe.final)
    backbone = _family(model, layer, probe.final, last.out_features)
    if backbone is None:
        backbone = GraphSplit(model, layer, probe.final, last.out_features)
    ref = last.weight
    backbone.classifier = backbone.classifier.to(ref.device, ref.dtype)
    with torch.no_grad():
        backbone.classifier.weight.copy_(last.weight)
        if last.bias is not None:
            backbone.classifier.bias.copy_(last.bias)
        else:
            backbone.classifier.bias.zero_()
    backbone.in_channels = probe.channels
    shared = {id(m) for m in model.modules()}
    for module in backbone.modules():  # the adapter's own containers follow the network; shared modules keep their flags
        if id(module) not in shared:
            module.training = model.training
    if check:
        from niwt.models.contract import check_backbone

        images = torch.rand(2, probe.channels, probe_size, probe_size, generator=torch.Generator().manual_seed(1))
        check_backbone(backbone, images, rtol=1e-3, atol=1e-5)
    log.debug("%s adapted at %s as %s", type(model).__name__, layer, type(backbone).__name__)
    return backbone
