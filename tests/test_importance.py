"""neuron_importance: values worked out by hand, state restored, hooks removed, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from niwt.errors import ConfigError, DataError
from niwt.importance import neuron_importance
from niwt.models import create_model


def test_summed_importance_of_gap_linear_head_is_the_class_row(gap_model):
    # o_c = sum_k W_ck * mean_ij A_kij + b_c  =>  d o_c / d A_kij = W_ck / (h w)  =>  sum_ij = W_ck.
    x = torch.randn(5, 3, 7, 9, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1])
    alpha = neuron_importance(gap_model, "conv", x, y, reduction="sum")
    expected = gap_model.classifier.weight.detach()[y]
    torch.testing.assert_close(alpha, expected, rtol=0, atol=1e-12)


def test_mean_reduction_divides_by_the_spatial_size(gap_model):
    x = torch.randn(3, 3, 7, 9, dtype=torch.float64)
    y = torch.tensor([2, 0, 3])
    alpha = neuron_importance(gap_model, gap_model.conv, x, y, reduction="mean")
    expected = gap_model.classifier.weight.detach()[y] / (7 * 9)
    torch.testing.assert_close(alpha, expected, rtol=0, atol=1e-14)


def test_hand_set_conv_layer_importance():
    # One 1x1 conv with weight 2 on a single channel, then the layer output is summed into the
    # logit with weight 3 per position: o = 3 * sum_ij (2 x_ij)  =>  d o / d A_ij = 3 everywhere,
    # summed over a 2x2 map: 12; mean: 3.
    conv = nn.Conv2d(1, 1, 1, bias=False)
    conv.weight.data.fill_(2.0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 3 * self.conv(x).sum((1, 2, 3)).unsqueeze(1)

    x = torch.arange(4.0).view(1, 1, 2, 2)
    assert neuron_importance(Net(), "conv", x, torch.tensor([0])).item() == pytest.approx(12.0)
    assert neuron_importance(Net(), "conv", x, torch.tensor([0]), "mean").item() == pytest.approx(3.0)


def test_streaming_gives_the_same_importances_as_one_batch():
    torch.manual_seed(1)
    model = create_model("vgg", 5, width=4, hidden=16).double()
    x = torch.randn(10, 3, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 5, (10,))
    whole = neuron_importance(model, model.importance_layer, x, y)
    streamed = neuron_importance(model, model.importance_layer, x, y, batch_size=3)
    torch.testing.assert_close(whole, streamed)


def test_state_restored_grads_untouched_and_inputs_unchanged():
    torch.manual_seed(2)
    model = create_model("resnet", 4, width=4)
    model.train()
    model.stage1.eval()  # a mixed state must come back exactly as it was
    flags = {name: m.training for name, m in model.named_modules()}
    x = torch.randn(6, 3, 32, 32)
    x_copy = x.clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    neuron_importance(model, "stage3.0", x, torch.zeros(6, dtype=torch.long))
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(x, x_copy)
    for k, v in model.state_dict().items():  # eval mode: BatchNorm running stats untouched
        assert torch.equal(v, state[k]), k


def test_hooks_removed_and_state_restored_after_an_exception():
    torch.manual_seed(3)
    model = create_model("vgg", 3, width=4, hidden=8)
    model.train()

    def boom(*_: object) -> None:
        raise RuntimeError("boom")

    handle = model.fc.register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        neuron_importance(model, "features", torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    handle.remove()
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training and all(m.training for m in model.modules())


def test_works_under_no_grad_and_with_frozen_parameters(gap_model):
    for p in gap_model.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        alpha = neuron_importance(gap_model, "conv", x, torch.tensor([1, 2]))
    torch.testing.assert_close(alpha, gap_model.classifier.weight[[1, 2]])


def test_unknown_layer_lists_the_valid_names(gap_model):
    with pytest.raises(ConfigError, match=r"unknown layer 'conv9'; close names: conv, conv\.1, conv\.0 \(4 in all"):
        neuron_importance(gap_model, "conv9", torch.randn(1, 3, 4, 4, dtype=torch.float64), torch.tensor([0]))


@pytest.mark.parametrize(
    ("images", "targets", "message"),
    [
        (torch.randn(2, 3, 4, 4), torch.tensor([0]), r"one class index per image: expected \[2\], got \(1,\)"),
        (torch.randn(3, 4, 4), torch.tensor([0]), r"`images` must be a batch \[N, C, H, W\], got a 3-d shape"),
        (torch.randn(2, 3, 4, 4), torch.tensor([0, 9]), r"`targets` must lie in \[0, 4\)"),
    ],
)
def test_bad_input_is_named(gap_model, images, targets, message):
    with pytest.raises(DataError, match=message):
        neuron_importance(gap_model.float(), "conv", images, targets)


def test_bad_reduction_is_named(gap_model):
    with pytest.raises(ConfigError, match="`reduction` must be one of"):
        neuron_importance(gap_model, "conv", torch.randn(1, 3, 4, 4, dtype=torch.float64), torch.tensor([0]), "max")


def test_reductions_are_one_public_tuple():
    from niwt.importance import REDUCTIONS

    assert REDUCTIONS == ("sum", "mean")
    with pytest.raises(ConfigError, match=r"one of \['sum', 'mean'\], got 'max'"):
        neuron_importance(nn.Conv2d(3, 1, 1), "", torch.rand(1, 3, 2, 2), torch.tensor([0]), "max")


@pytest.mark.parametrize("layer", ["bn1", "layer4.1.bn2", "layer4"])
def test_layers_followed_by_an_in_place_op_work_on_a_torchvision_resnet(layer):
    # bn1 feeds ReLU(inplace=True); layer4.1.bn2 feeds `out += identity`: the captured output must
    # not be modified in place behind the gradient's back.
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=5).double().eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    targets = torch.tensor([1, 3])
    alpha = neuron_importance(model, layer, x, targets)
    # the same gradient taken by hand, with every in-place op made out-of-place
    import copy

    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    store = {}
    handle = plain.get_submodule(layer).register_forward_hook(lambda _m, _i, out: store.setdefault("a", out))
    logits = plain(x)
    handle.remove()
    (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), store["a"])
    assert torch.allclose(alpha, grad.sum((2, 3)))


def test_a_model_without_a_niwt_classifier_is_refused_up_front_by_transfer():
    from torchvision.models import resnet18

    from niwt import UnseenWeightOptimizer
    from niwt.errors import ConfigError

    with pytest.raises(ConfigError, match="`model` must be a niwt Backbone, got ResNet"):
        UnseenWeightOptimizer().fit(resnet18(weights=None), torch.rand(2, 3, 32, 32), np.ones((1, 512)))


class _TokenHead(torch.nn.Module):
    """Tokens ``[N, 1 + 4, 2]`` (a class token, then 4 patches) from a linear embedding, and logits
    ``W @ (class token + sum of patch tokens)``: d o_c / d patch token = W[c] for every patch."""

    num_prefix_tokens = 1

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(3, 10)
        self.tokens = torch.nn.Identity()
        self.head = torch.nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tokens(self.embed(x.mean((2, 3))).view(-1, 5, 2))
        return self.head(t[:, 0] + t[:, 1:].sum(1))


def test_importance_at_a_token_layer_sums_over_the_patch_tokens_only():
    from niwt.layers import shift_channels, token_grid

    model = _TokenHead()
    x = torch.rand(2, 3, 4, 4)
    y = torch.tensor([0, 2])
    # the class token's gradient (W[c] too) is left out: 4 patches x W[c], or W[c] as the mean
    torch.testing.assert_close(neuron_importance(model, "tokens", x, y, "sum"), torch.tensor([[4.0, 8.0], [0.0, 12.0]]))
    torch.testing.assert_close(neuron_importance(model, "tokens", x, y, "mean"), torch.tensor([[1.0, 2.0], [0.0, 3.0]]))
    tokens = torch.arange(10.0).view(1, 5, 2)
    moved = shift_channels(tokens, torch.tensor([[10.0, 100.0]]), prefix=1)
    torch.testing.assert_close(moved[0, 0], tokens[0, 0])  # the class token does not move
    torch.testing.assert_close(moved[0, 1:] - tokens[0, 1:], torch.tensor([[10.0, 100.0]]).expand(4, 2))
    grid = token_grid(tokens, prefix=1)
    assert grid.shape == (1, 2, 2, 2)
    torch.testing.assert_close(grid[0, :, 0, 1], tokens[0, 2])  # patch 1 sits at row 0, column 1
