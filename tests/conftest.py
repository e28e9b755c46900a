"""Shared, session-scoped fixtures: tiny models, a tiny shapes world and a small finished run (nothing is downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from niwt.data.shapes import ShapesConfig
from niwt.models.backbones import Backbone
from niwt.models.head import ExtendableLinear


class GapLinear(Backbone):
    """conv -> (importance layer) -> global average pool -> linear: importance is the class row."""

    def __init__(self, num_classes: int = 4, channels: int = 6) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        self.num_features = channels
        self.importance_layer = "conv"
        self.classifier = ExtendableLinear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return a.mean((2, 3))


@pytest.fixture()
def gap_model() -> GapLinear:
    torch.manual_seed(0)
    return GapLinear().double()


@pytest.fixture(scope="session")
def tiny_shapes_config() -> ShapesConfig:
    return ShapesConfig(seed=3, n_source=4, n_seen=6, n_unseen=3, n_val=2, n_source_images=8,
                        n_trainval_images=8, n_test_seen_images=4, n_test_unseen_images=4)


@pytest.fixture(scope="session")
def _small_run_once(tmp_path_factory) -> Path:
    """A finished run of ``tests/_configs.SMALL_RUN``, trained once per session (never handed out:
    modules get their own copy, so what one writes into it another never sees)."""
    from niwt.cli import main
    from tests._configs import SMALL_RUN

    root = tmp_path_factory.mktemp("small_run")
    (root / "c.toml").write_text(SMALL_RUN)
    assert main(["run", str(root / "c.toml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def small_run_dir(_small_run_once, tmp_path_factory) -> Path:
    """This module's own copy of the session's small finished run."""


    return Path(shutil.copytree(_small_run_once, tmp_path_factory.mktemp("run") / "run"))
