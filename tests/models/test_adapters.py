"""Bring your own classifier: `adapt` on torchvision families and any traceable network, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import models as tv

from niwt import UnseenWeightOptimizer
from niwt.errors import ConfigError
from niwt.importance import neuron_importance
from niwt.models import (
    GraphSplit,
    TorchvisionResNet,
    TorchvisionStaged,
    TorchvisionVGG,
    adapt,
    check_backbone,
)

TIGHT = {"rtol": 1e-9, "atol": 1e-12}


def _images(n: int = 2, side: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _net(builder, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return builder(weights=None, num_classes=5, **kwargs).double().eval()


class TinyGap(nn.Module):
    """conv -> ReLU -> global average pool -> linear: the importance of class c at `act` is fc.weight[c]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.act(self.conv(x))), 1))


# ----------------------------------------------------------------------------- what adapt returns


@pytest.mark.parametrize(
    ("builder", "layer", "kind"),
    [
        (tv.vgg11, "features.19", TorchvisionVGG),  # the last conv's ReLU (conv5_3 for VGG16)
        (tv.resnet18, "layer4.0", TorchvisionResNet),
        (tv.convnext_tiny, "features.7.0", TorchvisionStaged),  # first block of the last stage
        (tv.efficientnet_b0, "features.7", TorchvisionStaged),  # a whole stage
        (tv.efficientnet_b0, "features.6.1", TorchvisionStaged),  # a block of a stage
        (tv.resnet18, "layer3", GraphSplit),
        (tv.resnet18, "bn1", GraphSplit),  # followed by ReLU(inplace=True)
        (tv.vgg11, "features.10", GraphSplit),
        (tv.mobilenet_v3_small, "features.12", GraphSplit),
    ],
)
def test_adapt_keeps_the_logits_and_fulfils_the_contract(builder, layer, kind):
    net = _net(builder)
    x = _images()
    with torch.no_grad():
        expected = net(x)
    backbone = adapt(net, layer, probe_size=32)
    assert type(backbone) is kind
    backbone.eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), expected, rtol=1e-9, atol=1e-12)
    check_backbone(backbone, x, **TIGHT)
    # the importance at the backbone's layer is the one at the network's own layer
    targets = torch.tensor([1, 4])
    torch.testing.assert_close(neuron_importance(backbone, backbone.importance_layer, x, targets),
                               neuron_importance(net, layer, x, targets), rtol=1e-9, atol=1e-12)


def test_the_importance_of_a_pooled_linear_head_is_the_class_row():
    torch.manual_seed(0)
    net = TinyGap().double()
    backbone = adapt(net, "act", probe_size=8)
    assert isinstance(backbone, GraphSplit)
    targets = torch.tensor([2, 0, 1])
    alpha = neuron_importance(backbone, backbone.importance_layer, _images(3, 8), targets)
    # d(mean_ij A_kij . w_ck)/dA_kij = w_ck / (h w), summed over the h w positions: exactly w_ck
    torch.testing.assert_close(alpha, net.fc.weight.detach()[targets], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(backbone.classifier.weight, net.fc.weight)
    torch.testing.assert_close(backbone.classifier.bias, net.fc.bias)


def test_adapt_shares_modules_and_leaves_the_network_as_it_was():
    net = _net(tv.resnet18)
    net.train()
    net.layer1.eval()
    flags = {name: m.training for name, m in net.named_modules()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    backbone = adapt(net, "layer3", probe_size=32)
    assert {name: m.training for name, m in net.named_modules()} == flags
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert not net._forward_hooks and all(not m._forward_hooks for m in net.modules())
    assert backbone.features.get_submodule("layer3") is net.layer3  # no copy
    assert backbone.classifier.weight.data_ptr() != net.fc.weight.data_ptr()  # the rows are copied


def test_an_in_place_op_after_the_layer_does_not_modify_the_heads_input():
    backbone = adapt(_net(tv.resnet18), "bn1", probe_size=32).eval()  # bn1 -> ReLU(inplace=True)
    with torch.no_grad():
        a = backbone.forward_features(_images())
        before = a.clone()
        backbone.forward_head(a)
    assert (before < 0).any() and torch.equal(a, before)


@pytest.mark.parametrize(("builder", "layer"), [(tv.resnet18, "layer4.0"), (tv.resnet18, "layer3"),
                                                (tv.efficientnet_b0, "features.7")])
def test_reference_and_fast_transfer_take_the_same_steps_on_an_adapted_network(builder, layer):
    backbone = adapt(_net(builder), layer, probe_size=32)
    pool = _images(6, 32, seed=3)
    channels = backbone.forward_features(pool[:1]).shape[1]
    targets = np.random.default_rng(0).standard_normal((2, channels))
    runs = [UnseenWeightOptimizer(mode=mode, max_steps=3, batch_size=4, lr=1e-2).fit(backbone, pool, targets)
            for mode in ("reference", "fast")]
    np.testing.assert_allclose(runs[0].history_, runs[1].history_, rtol=1e-8)
    torch.testing.assert_close(runs[0].weights_, runs[1].weights_, rtol=1e-7, atol=1e-10)
    assert runs[0].history_[-1] != runs[0].history_[0]  # the rows moved
    runs[1].apply(backbone)
    assert backbone(pool).shape == (6, 5 + 2)


# ----------------------------------------------------------------------------- refusals


def test_an_unknown_layer_lists_the_closest_names():
    with pytest.raises(ConfigError, match=r"ResNet has no layer `layer4.0.conv9`; close names: `layer4.0.conv2`, "
                                          r"`layer4.0.conv1`"):
        adapt(_net(tv.resnet18), "layer4.0.conv9")
    with pytest.raises(ConfigError, match=r"`layer` must be the dotted name of a module of the model, got ''"):
        adapt(_net(tv.resnet18), "")


def test_a_layer_that_runs_twice_is_refused_naming_the_count():
    # torchvision's BasicBlock uses one ReLU module after both of its convolutions
    with pytest.raises(ConfigError, match=r"`layer4.0.relu` of ResNet runs 2 times in one forward pass; it must "
                                          r"run exactly once .* such as its parent `layer4.0`"):
        adapt(_net(tv.resnet18), "layer4.0.relu", probe_size=32)


def test_a_layer_that_never_runs_is_refused():
    net = TinyGap()
    net.unused = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match=r"`unused` of TinyGap runs 0 times"):
        adapt(net, "unused", probe_size=8)


def test_a_network_not_ending_in_a_linear_layer_is_refused_naming_what_it_ends_in():
    # SqueezeNet's classifier ends in a 1x1 convolution, a ReLU and an average pool
    with pytest.raises(ConfigError, match=r"the last layer of SqueezeNet is `classifier.3` \(AdaptiveAvgPool2d\); "
                                          r"niwt appends unseen classes as rows of a final nn.Linear"):
        adapt(tv.squeezenet1_1(weights=None, num_classes=5), "features.12", probe_size=64)


def test_a_network_computing_after_its_linear_layer_is_refused():
    class LogSoftmax(TinyGap):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(super().forward(x), 1)

    with pytest.raises(ConfigError, match=r"LogSoftmax computes something after its last layer `fc` \(nn.Linear\)"):
        adapt(LogSoftmax(), "act", probe_size=8)


def test_a_layer_bypassed_by_a_skip_connection_is_refused_naming_the_bypass():
    # layer4.1.bn2 feeds `out += identity`: the block's input goes around it
    with pytest.raises(ConfigError, match=r"ResNet cannot be split at `layer4.1.bn2`: `layer4_0_relu_1`, computed "
                                          r"before it, is used after it by `add_7` \(a skip connection goes around "
                                          r"`layer4.1.bn2`\).*such as a block holding it \(`layer4.1`, `layer4`\)"):
        adapt(_net(tv.resnet18), "layer4.1.bn2", probe_size=32)


def test_a_network_that_cannot_run_the_dummy_batch_or_be_traced_is_refused():
    with pytest.raises(ConfigError, match=r"VGG cannot run on a dummy batch of shape \(2, 3, 8, 8\).*pass `probe_size`"):
        adapt(tv.vgg11(weights=None), "features.19", probe_size=8)

    class DataDependent(TinyGap):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.conv(x))
            if h.sum() > 0:  # control flow on values: torch.fx cannot trace it
                h = h * 2
            return self.fc(torch.flatten(self.pool(h), 1))

    with pytest.raises(ConfigError, match=r"DataDependent cannot be split at `act` automatically: torch.fx cannot "
                                          r"trace it .*subclass niwt.models.Backbone"):
        adapt(DataDependent(), "act", probe_size=8)
    with pytest.raises(ConfigError, match=r"`model` must be a torch nn.Module, got str"):
        adapt("resnet18", "layer4.0")  # type: ignore[arg-type]
