"""The model registry (settings refused, not swallowed) and the backbone contract on every model."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

from niwt.errors import ConfigError, DataError
from niwt.models import (
    CONTRACT_CLAUSES,
    RESNET_ARCHS,
    VGG_ARCHS,
    Backbone,
    BackboneContractError,
    PooledLinearHead,
    ResNetLike,
    TorchvisionResNet,
    TorchvisionResNet101,
    TorchvisionVGG,
    TorchvisionVGG16,
    VGGLike,
    check_backbone,
    create_model,
    list_models,
    model_settings,
    register_model,
)

SMALL_SETTINGS = {"vgg": {"width": 4, "hidden": 12}, "resnet": {"width": 4}, "mlp": {"in_features": 10, "hidden": 6}}
TORCHVISION = (*VGG_ARCHS, *RESNET_ARCHS)
LARGE_SETTINGS = {name: {"weights": "none"} for name in (*TORCHVISION, "tv_vgg16", "tv_resnet101")}
"""Small settings of the in-repo models; the torchvision ones take none (random weights at 32 px)."""
ALIASES = {"tv_vgg16": "vgg16", "tv_resnet101": "resnet101"}


def _build(name: str) -> Backbone:
    torch.manual_seed(0)
    model = create_model(name, 3, **SMALL_SETTINGS.get(name, LARGE_SETTINGS.get(name, {})))
    # the small models run in float64 for tight tolerances; the large ones stay float32 (memory, time)
    return model.double() if name in SMALL_SETTINGS else model


def _images(model: Backbone, n: int = 2, side: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    side = model.image_size or side
    return torch.rand(n, model.in_channels, side, side, generator=gen).to(model.classifier.weight.dtype)


# ----------------------------------------------------------------------------- registry


def test_settings_are_the_builders_named_parameters():
    assert model_settings("vgg") == ("width", "hidden", "dropout", "image_size")
    assert model_settings("resnet") == ("width",)
    for name in (*TORCHVISION, *ALIASES):
        assert model_settings(name) == ("weights",)
    names = list_models()
    assert {"vgg", "resnet", *TORCHVISION, *ALIASES} <= set(names)
    for name in names:
        assert isinstance(model_settings(name), tuple)


def test_a_setting_the_model_cannot_use_is_refused_with_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"model 'resnet' cannot use the setting\(s\) hidden; "
                                          r"settings it accepts: width"):
        create_model("resnet", 3, width=4, hidden=12)
    with pytest.raises(ConfigError, match=r"model 'tv_vgg16' cannot use the setting\(s\) width, dropout; "
                                          r"settings it accepts: weights"):
        create_model("tv_vgg16", 3, width=4, dropout=0.1)
    with pytest.raises(ConfigError, match=r"model 'vgg' cannot use the setting\(s\) depth; settings it accepts: "
                                          r"width, hidden, dropout, image_size"):
        create_model("vgg", 3, depth=3)


def test_settings_can_be_filtered_for_any_model():
    wanted = {"width": 4, "hidden": 12, "dropout": 0.1, "image_size": 32}
    for name in ("vgg", "resnet"):
        model = create_model(name, 3, **{k: v for k, v in wanted.items() if k in model_settings(name)})
        assert model.classifier.n_seen == 3


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("vgg", {"width": 0}, r"model 'vgg': `width` must be an integer >= 1, got 0"),
        ("vgg", {"image_size": 4}, r"`image_size` must be an integer >= 8, got 4"),
        ("vgg", {"dropout": 1.0}, r"`dropout` must lie in \[0, 1\), got 1.0"),
        ("resnet", {"width": 2.5}, r"model 'resnet': `width` must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_setting_values_are_named(name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model(name, 3, **kwargs)


def test_unknown_model_bad_class_count_and_duplicate_registration():
    with pytest.raises(ConfigError, match=r"unknown model 'alexnet'; available models: mlp, resnet, resnet101, "):
        create_model("alexnet", 3)
    with pytest.raises(ConfigError, match=r"unknown model 'alexnet'"):
        model_settings("alexnet")
    with pytest.raises(ConfigError, match=r"`num_classes` must be an integer >= 1, got 0"):
        create_model("resnet", 0)
    with pytest.raises(ConfigError, match="a model named 'vgg' is already registered"):
        register_model("vgg", VGGLike)


def test_builders_that_swallow_settings_cannot_be_registered():
    def swallowing(num_classes: int, width: int = 4, **rest: object) -> Backbone:
        return ResNetLike(num_classes, width)

    with pytest.raises(ConfigError, match=r"'swallower'.*catch-all parameter\(s\) \['rest'\]"):
        register_model("swallower", swallowing)
    with pytest.raises(ConfigError, match="number of classes as its first positional parameter"):
        register_model("no_classes", lambda *, width=4: ResNetLike(3, width))
    assert "swallower" not in list_models() and "no_classes" not in list_models()


def test_no_builder_takes_catch_all_parameters():
    for cls in (VGGLike, ResNetLike):
        kinds = {p.kind for p in inspect.signature(cls).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds


# ----------------------------------------------------------------------------- forward input checks


def test_forward_refuses_images_of_another_size_layout_or_dtype():
    model = _build("vgg")
    with pytest.raises(DataError, match=r"`x` holds 40x40 px images but the model was built for 32x32 px"):
        model(torch.rand(2, 3, 40, 40, dtype=torch.float64))
    with pytest.raises(DataError, match=r"looks like \[N, H, W, C\]; permute to \[N, C, H, W\]"):
        model(torch.rand(2, 32, 32, 3, dtype=torch.float64))
    with pytest.raises(DataError, match=r"dtype torch.uint8; convert to float in \[0, 1\]"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(DataError, match="1 NaN"):
        x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
        x[1, 2, 3, 4] = float("nan")
        model(x)


def test_forward_accepts_numpy_and_converts_to_the_models_dtype():
    model = _build("vgg").eval()
    x = np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(torch.from_numpy(x).double()))


# ----------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("name", [name for name in list_models() if name not in ALIASES])
def test_every_registered_model_fulfils_the_contract(name):
    model = _build(name)
    tight = {"rtol": 1e-9, "atol": 1e-12} if name in SMALL_SETTINGS else {}
    check_backbone(model, _images(model), **tight)


def test_the_fast_heads_share_one_implementation():
    assert issubclass(VGGLike, PooledLinearHead)  # it overrides them to move its importance layer
    for cls in (TorchvisionVGG, TorchvisionVGG16):
        assert issubclass(cls, PooledLinearHead)
        assert not {"forward_head", "head_cache", "forward_head_shifted"} & set(vars(cls))


def test_check_restores_flags_and_leaves_grads_and_weights_alone():
    model = _build("resnet")
    model.train()
    model.stage1.eval()
    flags = {name: m.training for name, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check_backbone(model, _images(model))
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


class _ScaledLogits(VGGLike):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


class _ShiftIgnored(VGGLike):
    def forward_head_shifted(self, cached: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return self.fc[1:](cached)


class _CacheWithoutPooling(VGGLike):
    def head_cache(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc[0](torch.flatten(a, 1))


class _WrongImportanceLayer(ResNetLike):
    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, width=4)
        self.importance_layer = "stage3.1"  # same channel count as stage3.0, but not what forward_features returns


@pytest.mark.parametrize(
    ("cls", "clause", "message"),
    [
        (_ScaledLogits, "a", r"clause \(a\) model\(x\) == classifier.*values differ"),
        (_ShiftIgnored, "b", r"clause \(b\).*features at a random shift"),
        (_CacheWithoutPooling, "b", r"clause \(b\).*RuntimeError"),
        (_WrongImportanceLayer, "c", r"clause \(c\).*importances: \d+ of \d+ values differ"),
    ],
)
def test_a_broken_adapter_fails_the_named_clause(cls, clause, message):
    torch.manual_seed(0)
    model = cls(3) if cls is _WrongImportanceLayer else cls(3, width=4, hidden=12)
    model = model.double()
    model.train()
    with pytest.raises(BackboneContractError, match=message) as info:
        check_backbone(model, _images(model))
    assert info.value.clause == clause and clause in CONTRACT_CLAUSES
    assert isinstance(info.value, ConfigError)
    assert model.training and all(m.training for m in model.modules())


def test_a_module_without_the_members_fails_the_members_clause():
    with pytest.raises(BackboneContractError, match=r"clause \(members\).*missing forward_features"):
        check_backbone(nn.Conv2d(3, 2, 1), torch.rand(1, 3, 4, 4))


def test_contract_check_validates_its_inputs():
    model = _build("resnet")
    with pytest.raises(DataError, match="`images` is empty"):
        check_backbone(model, torch.zeros(0, 3, 32, 32, dtype=torch.float64))
    with pytest.raises(DataError, match=r"`targets` must lie in \[0, 3\)"):
        check_backbone(model, _images(model), targets=torch.tensor([0, 5]))
    with pytest.raises(DataError, match=r"looks like \[N, H, W, C\]"):
        check_backbone(model, torch.rand(2, 32, 32, 3))


# ----------------------------------------------------------------------------- pre-trained weights


def test_torchvision_backbones_never_start_random_unless_asked(tmp_path):
    with pytest.raises(ConfigError, match=r"model 'resnet101' needs pre-trained weights.*\"none\" for random"):
        create_model("tv_resnet101", 3)
    with pytest.raises(DataError, match="weights file .* not found"):
        create_model("tv_resnet101", 3, weights=str(tmp_path / "missing.pth"))


def test_weights_files_are_loaded_checked_and_named_when_they_do_not_fit(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet101

    torch.manual_seed(0)
    net = resnet101(weights=None)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp_path / "r101.safetensors"))
    model = create_model("tv_resnet101", 3, weights=str(tmp_path / "r101.safetensors"))
    assert torch.equal(model.layer4[2].conv3.weight, net.layer4[2].conv3.weight)
    assert model.classifier.n_seen == 3  # ImageNet's fc is not used
    # a state dict saved with torch.save is read with weights_only=True
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, tmp_path / "r101.pth")
    assert torch.equal(create_model("tv_resnet101", 3, weights=str(tmp_path / "r101.pth")).stem[0].weight,
                       net.conv1.weight)
    bad = dict(state)
    bad["layer1.0.conv1.weight"] = torch.zeros(1)
    del bad["layer2.0.bn1.bias"]
    bad["head.extra"] = torch.zeros(2)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(DataError, match=r"missing layer2.0.bn1.bias; unexpected head.extra; wrong shapes "
                                        r"layer1.0.conv1.weight \(1,\)"):
        create_model("tv_resnet101", 3, weights=str(tmp_path / "bad.safetensors"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="neither a safetensors file nor a PyTorch state dict"):
        create_model("tv_resnet101", 3, weights=str(tmp_path / "junk.pth"))


# ----------------------------------------------------------------------------- the torchvision families


def test_the_families_are_registered_with_the_papers_importance_layers():
    assert set(TORCHVISION) <= set(list_models())
    torch.manual_seed(0)
    vgg = create_model("vgg16_bn", 3, weights="none")
    assert isinstance(vgg, TorchvisionVGG) and vgg.importance_layer == "features"
    assert isinstance(vgg.features[-1], nn.ReLU) and isinstance(vgg.features[-2], nn.BatchNorm2d)
    assert isinstance(vgg.pool5, nn.MaxPool2d) and vgg.num_features == 4096
    with torch.no_grad():  # conv5_3 + ReLU: 512 channels at 1/16 of the side, before pool5
        assert vgg.eval().forward_features(torch.rand(1, 3, 64, 64)).shape == (1, 512, 4, 4)
    for name, width in (("resnet18", 512), ("resnet50", 2048)):
        net = create_model(name, 3, weights="none")
        assert isinstance(net, TorchvisionResNet) and net.importance_layer == "layer4.0"
        assert net.num_features == width and net.classifier.weight.shape == (3, width)
        assert len(net.layer4) == 3 if name == "resnet50" else len(net.layer4) == 2


def test_the_older_names_build_the_same_networks():
    assert issubclass(TorchvisionVGG16, TorchvisionVGG) and issubclass(TorchvisionResNet101, TorchvisionResNet)
    torch.manual_seed(0)
    old = create_model("tv_resnet101", 3, weights="none")
    torch.manual_seed(0)
    new = create_model("resnet101", 3, weights="none")
    assert type(old) is TorchvisionResNet101 and type(new) is TorchvisionResNet
    assert old.state_dict().keys() == new.state_dict().keys()
    assert all(torch.equal(v, new.state_dict()[k]) for k, v in old.state_dict().items())


def test_weights_of_another_family_member_are_refused_naming_the_first_keys(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet18, vgg11

    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in resnet18(weights=None).state_dict().items()},
              str(tmp_path / "r18.safetensors"))
    with pytest.raises(DataError, match=r"weights '.*r18.safetensors' do not fit resnet34: missing "
                                        r"layer1.2.bn1.bias, .* and \d+ more.*Give resnet34 weights as torchvision"):
        create_model("resnet34", 3, weights=str(tmp_path / "r18.safetensors"))
    torch.save(vgg11(weights=None).state_dict(), tmp_path / "vgg11.pth")
    with pytest.raises(DataError, match=r"do not fit vgg11_bn: missing features.1.bias, features.1.num_batches_tracked"
                                        r".*wrong shapes features.11.bias \(512,\) \(expected \(256,\)\)"):
        create_model("vgg11_bn", 3, weights=str(tmp_path / "vgg11.pth"))
