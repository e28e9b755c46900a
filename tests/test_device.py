"""Devices and precision, exercised on the CPU: the runtime config, bf16 autocast for importance and
training, loss scaling, and the loop's once-per-epoch reading of losses (what it does on a GPU)."""

from __future__ import annotations

import pytest
import torch

from niwt.cli import _with_device, get_args_parser
from niwt.config import RunConfig, RuntimeConfig, apply_overrides
from niwt.device import autocast, check_precision, grad_scaler, resolve_device, to_device
from niwt.errors import ConfigError, DataError
from niwt.importance import neuron_importance
from niwt.models import create_model
from niwt.training import loop as training
from niwt.training import optimize, train_classifier

CPU = torch.device("cpu")


def test_runtime_config_defaults_and_refusals():
    assert RunConfig().runtime == RuntimeConfig("auto", "fp32")
    config = apply_overrides(RunConfig(), ["runtime.device=cpu", "runtime.precision=bf16"])
    assert (config.runtime.device, config.runtime.precision) == ("cpu", "bf16")
    with pytest.raises(ConfigError, match=r"`runtime.device` must be one of \['auto', 'cpu', 'cuda'\], got 'gpu'"):
        apply_overrides(RunConfig(), ["runtime.device=gpu"])
    with pytest.raises(ConfigError, match=r"`runtime.precision` must be one of \['fp32', 'bf16', 'fp16'\], got 'fp8'"):
        RuntimeConfig(precision="fp8")


def test_device_option_sets_runtime_device_and_wins_over_the_config():
    args = get_args_parser().parse_args(["run", "c.toml", "--device", "cpu"])
    config = apply_overrides(RunConfig(), ["runtime.device=auto"])
    assert _with_device(config, args).runtime.device == "cpu"
    unset = get_args_parser().parse_args(["run", "c.toml"])
    assert unset.device is None and _with_device(config, unset) is config
    with pytest.raises(SystemExit):
        get_args_parser().parse_args(["run", "c.toml", "--device", "tpu"])


def test_device_resolution_on_this_machine():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto") == (torch.device("cuda", torch.cuda.current_device())
                                      if torch.cuda.is_available() else CPU)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA device.*--device cpu"):
            resolve_device("cuda")


def test_fp16_is_refused_off_cuda_and_bf16_needs_no_scaler():
    with pytest.raises(ConfigError, match="fp16.*needs a CUDA device.*runtime.precision=bf16"):
        check_precision("fp16", CPU)
    check_precision("bf16", CPU)
    assert grad_scaler(CPU, "bf16") is None and grad_scaler(CPU, "fp32") is None
    x = torch.ones(2)
    assert to_device(x, CPU) is x  # already there: no copy


@pytest.mark.parametrize(("arch", "kwargs"), [("vgg", {"image_size": 32}), ("resnet", {})])
def test_bf16_importance_agrees_with_fp32(arch: str, kwargs: dict):
    torch.manual_seed(0)
    model = create_model(arch, 6, width=8, **kwargs).eval()
    x = torch.rand(48, 3, 32, 32, generator=torch.Generator().manual_seed(10))
    y = torch.arange(48) % 6
    full = neuron_importance(model, model.importance_layer, x, y)
    with autocast(CPU, "bf16"):
        low = neuron_importance(model, model.importance_layer, x, y, batch_size=16)
    assert low.dtype == torch.float32  # handed back in the model's dtype
    assert not torch.equal(low, full)  # bf16 really ran
    cos = torch.nn.functional.cosine_similarity(full, low, dim=1)
    assert cos.mean() > 0.99 and cos.min() > 0.97  # the tolerance stated in niwt.device


def test_short_bf16_training_gives_finite_falling_losses():
    torch.manual_seed(0)
    model = create_model("vgg", 3, width=4, hidden=16, image_size=32)
    x = torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.arange(24) % 3
    x[y == 1, 0] += 0.5  # something to learn
    before = [p.detach().clone() for p in model.parameters()]
    losses = train_classifier(model, x, y, epochs=4, lr=1e-2, batch_size=8, precision="bf16")
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _quadratic():
    x = torch.tensor([0.0], requires_grad=True)
    return x, torch.optim.SGD([x], lr=0.25), lambda _batch: ((x - 3.0) ** 2).sum()


def _one_batch():
    return [0]


def test_losses_read_once_per_epoch_equal_losses_read_every_step(monkeypatch: pytest.MonkeyPatch):
    x, opt, loss = _quadratic()
    every_step = optimize([x], loss, lambda: [0, 1, 2], opt, epochs=3, size=lambda _: 1)
    y, opt_y, loss_y = _quadratic()
    monkeypatch.setattr(training, "_reads_loss_each_step", lambda _loss: False)  # what a GPU loss does
    per_epoch = optimize([y], loss_y, lambda: [0, 1, 2], opt_y, epochs=3, size=lambda _: 1)
    assert per_epoch.step_losses == every_step.step_losses
    assert per_epoch.epoch_losses == every_step.epoch_losses
    assert torch.equal(x, y)
    # 9, 2.25, 0.5625: each SGD step halves the distance to 3 (step 0.25 * gradient 2 (x - 3))
    assert every_step.step_losses[:3] == (9.0, 2.25, 0.5625)


def test_a_non_finite_loss_read_at_the_epoch_end_still_names_its_step(monkeypatch: pytest.MonkeyPatch):
    x, opt, _ = _quadratic()
    calls = iter(range(100))

    def loss(_batch: object) -> torch.Tensor:
        return ((x - 3.0) ** 2).sum() * (float("nan") if next(calls) == 4 else 1.0)

    monkeypatch.setattr(training, "_reads_loss_each_step", lambda _loss: False)
    with pytest.raises(DataError, match=r"quad: the loss became nan at step 4 \(epoch 1\)"):
        optimize([x], loss, lambda: [0, 1, 2], opt, epochs=3, size=lambda _: 1, desc="quad")


def test_loss_scaling_leaves_the_updates_unchanged():
    x, opt, loss = _quadratic()
    plain = optimize([x], loss, _one_batch, opt, epochs=4, size=lambda _: 1)
    y, opt_y, loss_y = _quadratic()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaled = optimize([y], loss_y, _one_batch, opt_y, epochs=4, size=lambda _: 1, scaler=scaler)
    assert scaled.step_losses == plain.step_losses  # a power-of-two scale is undone exactly
    assert torch.equal(x, y) and y.grad is None
    assert scaler.get_scale() == 2.0**10  # no overflow: the scale was kept (growth needs 2000 steps)
