"""End-to-end runs of the pipeline on torchvision VGG16 and ResNet-101 (random weights, 32 px shapes world).

These are the slowest tests of the suite (tens of seconds each on one CPU core): full-size networks
trained for one epoch on a few dozen 32 px images, then importance, mapping, transfer and
evaluation. They are marked ``slow``; ``pytest -m "not slow"`` leaves them out.
"""

from __future__ import annotations

import math

import pytest
import torch

from niwt.config import RunConfig, from_dict
from niwt.models import create_model
from niwt.pipeline import run_niwt

pytestmark = pytest.mark.slow


def _config(arch: str, mode: str, **train: object) -> RunConfig:
    return from_dict(RunConfig, {
        "seed": 2,
        "data": {"kind": "shapes", "image_size": 32, "n_source": 3, "n_seen": 5, "n_unseen": 2, "n_val": 2,
                 "n_source_images": 2, "n_trainval_images": 4, "n_test_seen_images": 2, "n_test_unseen_images": 2},
        "model": {"arch": arch, "weights": "none"},
        "train": {"mode": mode, "pretrain_epochs": 0, "epochs": 1, "batch_size": 8, "lr": 1e-4, **train},
        "importance": {"batch_size": 8},
        "mapping": {"epochs": 2, "n_holdout": 1},
        "explain": {"epochs": 2},
        "transfer": {"select": False, "max_steps": 2, "batch_size": 4, "pool": "seen"},
    })


def _trunk(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if not k.startswith("classifier.") and v.is_floating_point()}


@pytest.mark.parametrize(
    ("arch", "mode", "train", "channels", "width"),
    [
        ("vgg16", "finetuned", {"head_epochs": 1, "head_lr": 1e-3}, 512, 4096),  # conv5_3, fc7
        ("resnet101", "fixed", {}, 2048, 2048),  # layer4.0, global pool
    ],
)
def test_a_full_size_network_runs_end_to_end(arch, mode, train, channels, width):
    config = _config(arch, mode, **train)
    torch.manual_seed(0)
    base = create_model(arch, 1, weights="none")
    before = _trunk(base)
    run = run_niwt(config, base=base)

    # every stage ran on the full-size network: its importance layer and classifier widths
    assert run.optimizer.channels_ == channels
    assert run.model.classifier.weight.shape == (5, width)
    assert run.model.classifier.unseen_weight.shape == (2, width)
    assert torch.isfinite(run.model.classifier.unseen_weight).all()
    report = run.report
    for value in (report.seen_acc, report.unseen_acc, report.H):
        assert 0.0 <= value <= 1.0 and math.isfinite(value)
    assert set(run.result.seconds) >= {"train_final", "final"}

    # fixed trains the classifier alone; finetuned moves the trunk too (after the classifier's own epoch)
    after = _trunk(run.model)
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if mode == "fixed":
        assert changed == []
    else:
        assert "features.0.weight" in changed and "fc.0.weight" in changed
    assert all(torch.equal(v, before[k]) for k, v in _trunk(base).items())  # the base itself is untouched
