"""grad_cam: agrees with the pytorch-grad-cam package, leaves the model as it was, scales safely."""

from __future__ import annotations

import copy
import functools

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from niwt.errors import ConfigError, DataError
from niwt.explain import cam_from_activations, grad_cam, scale_maps
from niwt.importance import neuron_importance
from niwt.models import create_model
from niwt.report.overlay import overlay, save_overlay

torchvision = pytest.importorskip("torchvision")
pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")


def _reference(model: nn.Module, layer: str, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = GradCAM(model=model, target_layers=[model.get_submodule(layer)])
    try:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in y])
    finally:
        for p in model.parameters():  # the package leaves gradients behind; models are shared
            p.grad = None


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@functools.lru_cache(maxsize=None)
def _tv(name: str) -> nn.Module:
    """A seeded torchvision model with random weights, built once per test session."""
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None, num_classes=10).eval()


@pytest.mark.parametrize(("arch", "layer"), [("resnet18", "layer4"), ("vgg11", "features.19")])
def test_matches_pytorch_grad_cam_on_torchvision_models(arch: str, layer: str) -> None:
    # features.19 of VGG11 is the ReLU(inplace=True) after the last convolution.
    model = _tv(arch)
    x = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    ours = grad_cam(model, layer, x, y)
    assert ours.shape == (3, 96, 96)
    assert all(p.grad is None for p in model.parameters())  # before the package, which sets .grad
    ref = _reference(model, layer, x, y)
    for a, b in zip(ours.numpy(), ref):
        assert b.max() > 0, "degenerate reference map"
        assert _pearson(a, b) > 0.99
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4)


def test_matches_pytorch_grad_cam_on_a_niwt_backbone_with_unseen_rows() -> None:
    torch.manual_seed(2)
    model = create_model("vgg", 3, width=8, hidden=16).eval()
    model.classifier.set_unseen(torch.randn(2, 16))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 3, 4, 4])  # rows 3 and 4 are the unseen classes
    ours = grad_cam(model, model.features, x, y)
    ref = _reference(model, "features", x, y)
    assert ours.shape == ref.shape == (4, 32, 32) and any(b.max() > 0 for b in ref)
    for a, b in zip(ours.numpy(), ref):
        if b.max() == 0:
            assert a.max() == 0
        else:
            assert _pearson(a, b) > 0.99
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4)


def test_default_targets_are_the_predictions() -> None:
    torch.manual_seed(4)
    model = create_model("resnet", 4, width=4).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        y = model(x).argmax(1)
    torch.testing.assert_close(grad_cam(model, "stage3.0", x), grad_cam(model, "stage3.0", x, y))


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_state_restored_grads_untouched_and_hooks_removed_after_an_exception() -> None:
    torch.manual_seed(5)
    model = create_model("vgg", 3, width=4, hidden=8)
    model.train()
    model.fc.eval()
    flags = {name: m.training for name, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 32, 32)
    grad_cam(model, "features", x, torch.tensor([0, 2]))
    with pytest.raises(DataError, match="targets"):
        grad_cam(model, "features", x, torch.tensor([0, 7]))  # row 7 does not exist
    assert _hooks(model) == 0
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def _inplace_consumer_supported() -> bool:
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(inplace=True), nn.Flatten())
    try:
        neuron_importance(net, "0", torch.ones(1, 1, 1, 1), torch.tensor([0]))
    except RuntimeError:
        return False
    return True


def test_a_layer_overwritten_in_place_is_refused_clearly_or_supported() -> None:
    model = _tv("vgg11")
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([1, 2])
    if _inplace_consumer_supported():  # importance hook hands later layers a copy of its leaf
        maps = grad_cam(model, "features.18", x, y)  # the conv before ReLU(inplace=True)
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
        # the maps of the conv's own output: what pytorch-grad-cam gives on a copy whose ReLUs copy
        plain = copy.deepcopy(model)
        for m in plain.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        ref = _reference(plain, "features.18", x, y)
        assert all(b.max() > 0 for b in ref), "degenerate reference map"
        np.testing.assert_allclose(maps.numpy(), ref, atol=1e-4)
    else:
        with pytest.raises(ConfigError, match=r"features\.18.*in place"):
            grad_cam(model, "features.18", x, y)
    assert _hooks(model) == 0


def test_all_zero_map_gives_zeros_not_nan() -> None:
    acts = torch.ones(2, 3, 4, 4)
    weights = torch.tensor([[-1.0, -2.0, 0.0], [1.0, 0.0, 0.0]])  # first map: ReLU of a negative sum
    maps = cam_from_activations(acts, weights, (8, 8))
    assert torch.equal(maps[0], torch.zeros(8, 8))
    assert torch.equal(maps[1], torch.ones(8, 8))  # constant positive map
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[4].weight.zero_()  # logits do not depend on the layer: zero importance, zero map
    out = grad_cam(model, "1", torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))
    assert torch.equal(out, torch.zeros(2, 8, 8))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (3, 5, 6), elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_scale_maps_lands_in_unit_interval(values: np.ndarray) -> None:
    out = scale_maps(torch.from_numpy(values))
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
    for m, o in zip(values, out.numpy()):
        if m.max() > m.min():
            assert o.max() == pytest.approx(1.0) and o.min() == pytest.approx(0.0)


def test_overlay_png(tmp_path) -> None:
    from PIL import Image

    image = np.zeros((8, 8, 3), np.uint8)
    cam = np.zeros((8, 8))
    cam[2:4, 2:4] = 1.0
    out = overlay(image, cam, alpha=0.5, scale=2)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0]  # map 0: the image unchanged
    # map 1: half the image (black) and half jet(1) = (0.5, 0, 0): 0.25 * 255 + 0.5 -> 64
    assert out[5, 5].tolist() == [64, 0, 0]
    np.testing.assert_array_equal(out[4:8, 4:8], np.broadcast_to([64, 0, 0], (4, 4, 3)))  # map pixels 2-3, scale 2
    assert (out.sum(-1) > 0).sum() == 4 * 4  # nothing else changed
    # a float image of 0.5 is taken as 128 / 255; where the map is 0.5: 0.75 of it and 0.25 of jet(0.5)
    half = overlay(np.full((8, 8, 3), 0.5), cam * 0.5)
    assert half[0, 0].tolist() == [128, 128, 128]
    jet = np.array(matplotlib.colormaps["jet"](0.5)[:3])
    np.testing.assert_array_equal(half[2, 2], np.floor((0.75 * 128 / 255 + 0.25 * jet) * 255 + 0.5).astype(np.uint8))
    image3 = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    path = save_overlay(tmp_path / "o.png", image3, cam)
    assert Image.open(path).size == (8, 8)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), overlay(image3, cam))  # PNG: lossless
    with pytest.raises(DataError, match="cam"):
        overlay(image, np.ones((4, 4)))
