"""The linearised ResNet head: same features, importances, transfer losses and gradients as autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from niwt.errors import ConfigError, DataError
from niwt.importance import neuron_importance
from niwt.layers import eval_mode
from niwt.models import Backbone, ExtendableLinear, check_backbone, create_model, fast_resnet
from niwt.transfer import UnseenWeightOptimizer


def _randomise_norms(net: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters in every batch norm."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))


class _SplitAtLayer3(Backbone):
    """A torchvision ResNet with its importance layer at ``layer3.0``: the head (``layer3[1:]`` and
    ``layer4``) then holds a strided unit with a downsample path, which the adapter's head does not."""

    def __init__(self, net: ResNet, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.importance_layer = "net.layer3.0"
        self.num_features = net.fc.in_features
        self.classifier = ExtendableLinear(self.num_features, num_classes)

    def _blocks(self) -> list[nn.Module]:
        return [*self.net.layer3[1:], *self.net.layer4]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.layer3[0](n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x)))))))

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        for block in self._blocks():
            a = block(a)
        return torch.flatten(F.adaptive_avg_pool2d(a, 1), 1)

    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        return fast_resnet.head_cache(self._blocks(), a)

    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return fast_resnet.forward_head_shifted(self._blocks(), cached, shift)


def _split_model(kind: str, seed: int = 0) -> _SplitAtLayer3:
    torch.manual_seed(seed)
    if kind == "bottleneck":  # groups and a narrower width too (ResNeXt-style units)
        net = ResNet(Bottleneck, [1, 1, 2, 2], groups=2, width_per_group=16)
    else:
        net = ResNet(BasicBlock, [1, 1, 2, 2])
    _randomise_norms(net, torch.Generator().manual_seed(seed))
    return _SplitAtLayer3(net, 4).double().eval()


def _adapter(arch: str, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    model = create_model(arch, 4, weights="none")
    _randomise_norms(model, torch.Generator().manual_seed(seed))
    return model.double().eval()


def _images(n: int, side: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- worked by hand


def _one_channel_unit() -> BasicBlock:
    """A BasicBlock on 1 channel whose convolutions act at 1x1 through their centre taps (2, then 3),
    with norms ``0.5 x - 1`` and ``x`` (eps 0)."""
    block = BasicBlock(1, 1)
    with torch.no_grad():
        for conv, centre in ((block.conv1, 2.0), (block.conv2, 3.0)):
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = centre
        for norm, (scale, offset) in ((block.bn1, (0.5, -1.0)), (block.bn2, (1.0, 0.0))):
            norm.eps = 0.0
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0)
            norm.weight.fill_(scale)
            norm.bias.fill_(offset)
    return block.double().eval()


@pytest.mark.parametrize(
    ("a", "feature", "alpha"),
    [
        # a = 2: bn1(2a) = 1 > 0, branch 3 * 1 = 3, y = relu(3 + 2) = 5; dy/da = 1 + 3 * 0.5 * 2 = 4
        (2.0, 5.0, 4.0),
        # a = 0.25: bn1(0.5) = -0.75 (ReLU off), branch 0, y = 0.25; dy/da = 1 (the skip alone)
        (0.25, 0.25, 1.0),
        # a = -1: branch 0 and y = relu(-1) = 0: the output ReLU is off, dy/da = 0
        (-1.0, 0.0, 0.0),
    ],
)
def test_one_channel_unit_worked_by_hand(a, feature, alpha):
    block = _one_channel_unit()
    acts = torch.full((1, 1, 1, 1), a, dtype=torch.float64)
    cached = fast_resnet.head_cache([block], acts)
    shift = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    features = fast_resnet.forward_head_shifted([block], cached, shift)
    assert features.item() == feature
    (grad,) = torch.autograd.grad(2.0 * features.sum(), shift)  # logit 2 f: importance 2 dy/da
    assert grad.item() == 2.0 * alpha


def test_cache_row_layout_of_a_bottleneck():
    # h, w; activations 256 x 2 x 2; features 256; masks 64, 64 and 256 channels at 2 x 2.
    block = Bottleneck(256, 64).double().eval()
    cached = fast_resnet.head_cache([block], torch.rand(3, 256, 2, 2, dtype=torch.float64))
    assert cached.shape == (3, 2 + 1024 + 256 + (64 + 64 + 256) * 4)
    assert cached[:, :2].tolist() == [[2.0, 2.0]] * 3
    masks = cached[:, 2 + 1024 + 256 :]
    assert set(masks.unique().tolist()) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- same as autograd


@pytest.mark.parametrize("kind", ["bottleneck", "basic"])
def test_split_resnets_fulfil_the_contract(kind):
    model = _split_model(kind)
    check_backbone(model, _images(2, 64), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_the_resnet_adapters_fulfil_the_contract_with_the_linearised_head(arch):
    model = _adapter(arch)
    x = _images(2, 64)
    with torch.no_grad():
        cached = model.head_cache(model.forward_features(x))
    assert cached.ndim == 2  # the linearised head's rows, not the activations
    check_backbone(model, x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["bottleneck", "basic"])
def test_gradients_at_a_nonzero_shift_and_wrt_the_activations_match_autograd(kind):
    model = _split_model(kind, seed=3)
    with torch.no_grad():
        a = model.forward_features(_images(3, 64, seed=4))
    w = torch.randn(3, model.num_features, dtype=torch.float64)
    shift = (0.3 * torch.randn(3, a.shape[1], dtype=torch.float64)).requires_grad_(True)
    acts = a.clone().requires_grad_(True)
    fast = (model.forward_head_shifted(model.head_cache(acts), shift) * w).sum()
    g_shift, g_acts = torch.autograd.grad(fast, (shift, acts))

    shift_ref = shift.detach().clone().requires_grad_(True)
    acts_ref = a.clone().requires_grad_(True)
    ref = (model.forward_head(acts_ref + shift_ref[:, :, None, None]) * w).sum()
    e_shift, e_acts = torch.autograd.grad(ref, (shift_ref, acts_ref))
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(g_shift, e_shift, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_acts, e_acts, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", [BasicBlock, Bottleneck])
def test_a_strided_first_unit_with_a_downsample_path(kind):
    # The head starts with the stride-2 unit (the importance summed right after its transposed
    # convolutions) on an odd 5 x 5 input (3 x 3 out: the transposed convolutions need output padding).
    torch.manual_seed(13)
    cin, planes = 16, 8
    width = planes * kind.expansion
    down = nn.Sequential(nn.Conv2d(cin, width, 1, 2, bias=False), nn.BatchNorm2d(width))
    blocks = [kind(cin, planes, stride=2, downsample=down), kind(width, planes)]
    gen = torch.Generator().manual_seed(14)
    for block in blocks:
        _randomise_norms(block, gen)
        block.double().eval()
    a = torch.randn(3, cin, 5, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(3, width, generator=gen, dtype=torch.float64)
    shift = torch.zeros(3, cin, dtype=torch.float64, requires_grad=True)
    features = fast_resnet.forward_head_shifted(blocks, fast_resnet.head_cache(blocks, a), shift)
    (alpha,) = torch.autograd.grad((features * w).sum(), shift)

    acts = a.clone().requires_grad_(True)
    out = nn.Sequential(*blocks)(acts)
    assert out.shape[2:] == (3, 3)
    expected_features = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
    (grad,) = torch.autograd.grad((expected_features * w).sum(), acts)
    torch.testing.assert_close(features, expected_features, rtol=0, atol=0)  # the same operations
    torch.testing.assert_close(alpha, grad.sum((2, 3)), rtol=1e-10, atol=1e-13)


def _loss_and_grad(opt: UnseenWeightOptimizer, problem, weight, idx, cls, mode):
    w = weight.clone().requires_grad_(True)
    with eval_mode(problem.model):
        loss = opt.batch_loss(problem, w, idx, cls, mode=mode)
        (grad,) = torch.autograd.grad(loss, w)
    return loss.detach(), grad


@pytest.mark.parametrize("kind", ["bottleneck", "basic"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_transfer_loss_and_gradient_equal_the_reference_path(kind, reduction):
    model = _split_model(kind, seed=5)
    pool = _images(6, 64, seed=6)
    gen = torch.Generator().manual_seed(7)
    channels = 1024 if kind == "bottleneck" else 256  # layer3's output
    targets = torch.rand(3, channels, generator=gen, dtype=torch.float64)
    opt = UnseenWeightOptimizer(lam=1e-2, reduction=reduction)
    problem = opt.prepare(model, pool, targets)
    assert problem.cache is not None and problem.cache.ndim == 2
    weight = 0.1 * torch.randn(3, model.num_features, generator=gen, dtype=torch.float64)
    idx, cls = torch.tensor([0, 1, 2, 3, 4, 5, 1]), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    loss_fast, grad_fast = _loss_and_grad(opt, problem, weight, idx, cls, "fast")
    loss_ref, grad_ref = _loss_and_grad(opt, problem, weight, idx, cls, "reference")
    torch.testing.assert_close(loss_fast, loss_ref, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad_fast, grad_ref, rtol=1e-10, atol=1e-14 * float(grad_ref.abs().max()))
    assert float(grad_ref.abs().max()) > 0  # a gradient that can disagree
    assert all(p.grad is None for p in model.parameters())


def test_fit_on_the_adapter_learns_the_same_rows_on_both_paths():
    model = _adapter("resnet18", seed=8)
    pool = _images(8, 64, seed=9)
    targets = torch.rand(2, 512, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    kw = dict(lam=1e-3, lr=1e-2, batch_size=4, max_steps=3, patience=100, random_state=1)
    fast = UnseenWeightOptimizer(mode="fast", **kw).fit(model, pool, targets)
    ref = UnseenWeightOptimizer(mode="reference", **kw).fit(model, pool, targets)
    torch.testing.assert_close(torch.tensor(fast.history_), torch.tensor(ref.history_), rtol=1e-10, atol=0)
    torch.testing.assert_close(fast.weights_, ref.weights_, rtol=1e-9, atol=1e-12)
    assert not torch.equal(fast.weights_, fast.init_weights_)


def test_the_importance_is_the_one_neuron_importance_gives():
    model = _adapter("resnet50", seed=11)
    x = _images(3, 64, seed=12)
    targets = torch.tensor([0, 3, 1])
    with torch.no_grad():
        cached = model.head_cache(model.forward_features(x))
    shift = torch.zeros(3, 2048, dtype=torch.float64, requires_grad=True)
    logits = model.classifier(model.forward_head_shifted(cached, shift))
    (alpha,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), shift)
    expected = neuron_importance(model, "layer4.0", x, targets)
    torch.testing.assert_close(alpha, expected, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- refusals and fallbacks


def test_training_mode_norms_are_refused_and_the_adapter_falls_back():
    model = _adapter("resnet18")
    with torch.no_grad():
        a = model.forward_features(_images(2, 64))
    model.layer4.train()
    assert "training mode" in fast_resnet.linearisable(model.layer4[1:])
    with pytest.raises(ConfigError, match=r"unit '0' has one in training mode; call model.eval\(\)"):
        fast_resnet.head_cache(model.layer4[1:], a)
    assert model.head_cache(a) is a  # the activations: the generic shifted head
    model.eval()
    rows = model.head_cache(a)
    model.layer4.train()
    with pytest.raises(ConfigError, match="eval mode"):
        model.forward_head_shifted(rows, torch.zeros(2, 512, dtype=torch.float64))


class _Doubled(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def test_units_that_are_not_torchvision_blocks_are_named():
    assert fast_resnet.linearisable([BasicBlock(4, 4).eval()]) is None
    reason = fast_resnet.linearisable([BasicBlock(4, 4).eval(), _Doubled(4, 4).eval()])
    assert reason == "unit '1' (_Doubled) overrides the forward of BasicBlock"
    assert "is a Sequential" in fast_resnet.linearisable([nn.Sequential(nn.Conv2d(4, 4, 1))])
    with pytest.raises(ConfigError, match=r"cannot take these units: unit '1' \(_Doubled\)"):
        fast_resnet.head_cache([BasicBlock(4, 4).eval(), _Doubled(4, 4).eval()], torch.rand(1, 4, 2, 2))


def test_rows_from_another_head_are_refused():
    blocks = [BasicBlock(4, 4).double().eval()]
    rows = fast_resnet.head_cache(blocks, torch.rand(2, 4, 3, 3, dtype=torch.float64))
    # 2 + 4 * 9 activations + 4 features + 2 masks of 4 * 9 = 114; with 8 channels 2 + 72 + 8 + 144 = 226
    assert rows.shape == (2, 114)
    with pytest.raises(DataError, match=r"rows of width 114 do not fit this head .* 8 channels at 3x3 would need 226"):
        fast_resnet.forward_head_shifted([BasicBlock(8, 8).double().eval()], rows, torch.zeros(2, 8))
    with pytest.raises(DataError, match=r"`shift` must be \[2, 4\]"):
        fast_resnet.forward_head_shifted(blocks, rows, torch.zeros(2, 5, dtype=torch.float64))
