"""Every config in configs/ loads and validates; the paper's settings carry the authors' hyper-parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from niwt.cli import main
from niwt.config import apply_overrides, load_config, resolve_config
from tests._paths import ROOT

CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
PAPER = [p for p in CONFIGS if p.stem.count("_") == 3]
"""The paper's settings: <dataset>_<backbone>_<knowledge>_<mode>.toml."""

# (dataset, backbone, knowledge) -> (lambda, lr of the mapping and the transfer, transfer batch), from the
# authors' configs (reference, section 6.10), and the epochs of the mapping: 300 for VGG16, 500 for ResNet-101
AUTHORS = {("awa2", "vgg16", "attributes"): (1e-3, 1e-3, 64), ("awa2", "resnet101", "attributes"): (1e-3, 1e-3, 32),
           ("cub", "vgg16", "attributes"): (1e-2, 1e-4, 32), ("cub", "resnet101", "attributes"): (1e-2, 1e-4, 32),
           ("cub", "vgg16", "captions"): (1e-4, 1e-4, 32), ("cub", "resnet101", "captions"): (1e-2, 1e-4, 64)}


def _load(path: Path, root: str = "/no/such/dataset"):
    return resolve_config(apply_overrides(load_config(path), [f"data.root={root!r}".replace("'", '"')]))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_and_validates_without_the_data(path):
    config = _load(path)
    assert config.data.root == "/no/such/dataset"  # the data need not exist to load a config


def test_the_paper_settings_are_all_there():
    names = {p.stem for p in PAPER}
    expected = {f"{ds}_{arch}_{know}_{mode}" for ds, arch, know in AUTHORS for mode in ("fixed", "finetuned")}
    assert names == expected and len(names) == 12


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_the_paper_settings_carry_the_authors_hyper_parameters(path):
    ds, arch, know, mode = path.stem.split("_")
    c = _load(path)
    lam, lr, batch = AUTHORS[(ds, arch, know)]
    assert (c.data.kind, c.model.arch, c.model.weights, c.train.mode) == (ds, arch, "imagenet", mode)
    assert c.knowledge.source == ("attributes" if know == "attributes" else "text")
    assert (c.transfer.lam, c.transfer.lr, c.transfer.batch_size, c.transfer.select) == (lam, lr, batch, False)
    assert (c.transfer.init, c.transfer.patience, c.transfer.tol) == ("seen_centered", 40, 0.01)
    assert (c.mapping.model, c.mapping.lr, c.mapping.batch_size, c.mapping.n_holdout) == ("linear", lr, 64, 5)
    assert c.mapping.epochs == (300 if arch == "vgg16" else 500)
    assert (c.data.crop, c.importance.reduction, c.train.pretrain_epochs, c.eval.calibrate) == (224, "sum", 0, False)
    # finetuned: the classifier alone at 1e-3, then every layer at 1e-5; fixed: the classifier at 1e-3
    if mode == "finetuned":
        assert (c.train.head_epochs, c.train.head_lr, c.train.lr) == (10, 1e-3, 1e-5)
    else:
        assert (c.train.head_epochs, c.train.lr) == (0, 1e-3)
    assert c.train.batch_size == {("awa2", "vgg16"): 63, ("cub", "vgg16"): 64, ("awa2", "resnet101"): 33,
                                  ("cub", "resnet101"): 32}[(ds, arch)]


def test_niwt_config_prints_a_paper_setting_with_the_root_set(capsys, tmp_path):
    assert main(["config", str(PAPER[0]), "--set", f"data.root={tmp_path / 'absent'}"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("=")[0].strip(): line.split("=", 1)[1].split("#")[0].strip()
             for line in out.splitlines() if "=" in line and not line.startswith("#")}
    assert lines["root"] == f'"{tmp_path / "absent"}"' and lines["weights"] == '"imagenet"'
    assert lines["arch"] == '"vgg16"' or lines["arch"] == '"resnet101"'
