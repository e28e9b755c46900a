"""End to end through `niwt run` on format-exact miniature AwA2, CUB and own-folder datasets.

The same code path a real run takes: the loader, lazy image files, the transforms, training,
importance, mapping, transfer and evaluation.
"""

from __future__ import annotations

import json
import math

import pytest

from niwt.cli import main
from niwt.data.formats.awa2 import awa2_image_list
from tests._fixtures_data import AWA2_CLASSES, AWA2_UNSEEN, make_awa2, make_cub, make_folder, make_xlsa17_image_split
from tests._paths import ROOT

TINY = """
seed = 0
[data]
kind = "{kind}"
root = "{root}"
resize = 32
crop = 32
{extra}
[model]
width = 4
hidden = 16
[train]
pretrain_epochs = 0
epochs = 2
batch_size = 16
[mapping]
epochs = 3
[transfer]
lam_grid = [0.0, 0.01]
max_steps = 5
batch_size = 8
pool = "seen"
"""


def _run(tmp_path, kind, root, extra=""):
    config = tmp_path / f"{kind}.toml"
    config.write_text(TINY.format(kind=kind, root=root, extra=extra))
    out = tmp_path / f"run-{kind}"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    niwt = metrics["methods"]["niwt"]
    for key in ("seen_acc", "unseen_acc", "H", "zsl_acc"):
        assert 0.0 <= niwt[key] <= 1.0 and math.isfinite(niwt[key])
    assert metrics["config"]["data"]["kind"] == kind and metrics["config"]["data"]["crop"] == 32
    assert (out / "model" / "niwt.safetensors").exists()
    return metrics


@pytest.mark.slow
def test_folder_dataset_runs_end_to_end(tmp_path):
    root = make_folder(tmp_path, images_per_class=6)
    _run(tmp_path, "folder", root)


@pytest.mark.slow
def test_awa2_release_folder_runs_end_to_end(tmp_path):
    """With xlsa17's res101.mat in split_dir (its exact image split) and images read by two worker processes."""
    root = make_awa2(tmp_path, images_per_class=2)
    paths, labels, _ = awa2_image_list(root, AWA2_CLASSES)
    make_xlsa17_image_split(tmp_path / "xlsa17_AWA2", "/BS/xian/work/data/Animals_with_Attributes2//JPEGImages/",
                            AWA2_CLASSES, paths, labels, AWA2_UNSEEN, ("beaver", "dalmatian"))
    metrics = _run(tmp_path, "awa2", root, f'split_dir = "{tmp_path / "xlsa17_AWA2"}"\nworkers = 2')
    assert metrics["config"]["data"]["split"] == "proposed" and metrics["config"]["data"]["workers"] == 2
    info = json.loads((tmp_path / "run-awa2" / "model" / "run.json").read_text())
    assert info["split_origin"].startswith("xlsa17: ") and "res101.mat" in info["split_origin"]


@pytest.mark.slow
def test_cub_folder_runs_end_to_end_with_captions_as_text(tmp_path):
    root = make_cub(tmp_path, images_per_class=3)
    _run(tmp_path, "cub", root)
    config = tmp_path / "cub.toml"
    out = tmp_path / "run-cub-text"
    assert main(["run", str(config), "--out", str(out), "--quiet", "--set", "knowledge.source=text"]) == 0


def test_a_missing_root_is_named(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(TINY.format(kind="folder", root=tmp_path / "nowhere", extra=""))
    assert main(["run", str(config), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "nowhere" in capsys.readouterr().err


FEATURES = """
seed = 0
[data]
kind = "xlsa17"
root = "{root}"
[model]
arch = "mlp"
hidden = 8
[train]
pretrain_epochs = 0
epochs = 3
batch_size = 8
augment = false
[mapping]
epochs = 3
[transfer]
lam_grid = [0.0, 0.01]
max_steps = 5
batch_size = 8
pool = "seen"
[compare]
ale_epochs = 2
dem_epochs = 2
"""


@pytest.mark.slow
def test_feature_mode_on_xlsa17_features_with_baselines_on_the_same_features(tmp_path, capsys):
    from tests._fixtures_data import make_xlsa17

    root = make_xlsa17(tmp_path, n_classes=8, n_unseen=2, n_val=2, per_class=6, feature_dim=16)
    config = tmp_path / "features.toml"
    config.write_text(FEATURES.format(root=root))
    out = tmp_path / "run"
    assert main(["compare", str(config), "--seeds", "1", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"niwt", "niwt-bal", "ale", "dem", "eszsl", "sae"}
    for m in metrics["methods"].values():
        assert 0.0 <= m["H"] <= 1.0
    # the validation classes come from the split file's train_loc / val_loc
    assert "quoted, not measured here" not in capsys.readouterr().out  # a toy dataset has no published numbers
    # a run on features cannot look at a photo: the page is refused up front, saying why
    from niwt.errors import DataError
    from niwt.runs import load_run
    from niwt.serve.session import Session

    with pytest.raises(DataError, match="pre-extracted features"):
        Session(load_run(out))


def test_feature_mode_needs_features(tmp_path, capsys):
    assert main(["run", "--quiet", str(_toml(tmp_path, "seed = 0\n[model]\narch = \"mlp\"\n")), "--out",
                 str(tmp_path / "x")]) == 2
    assert "pre-extracted features" in capsys.readouterr().err


def _toml(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_the_readme_folder_example_runs(tmp_path):

    config = ROOT / "configs" / "folder_example.toml"
    root = tmp_path / "my_classes"
    assert main(["data", "example", str(root)]) == 0
    assert main(["data", "inspect", str(root), "--json"]) == 0
    fast = ["--set", "train.epochs=1", "--set", "mapping.epochs=3", "--set", "explain.epochs=3",
            "--set", "transfer.max_steps=5", "--set", "transfer.lam_grid=[0.0]"]
    assert main(["run", str(config), "--set", f"data.root={root}", "--out", str(tmp_path / "run"), "--quiet",
                 *fast]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]["data"]["kind"] == "folder"
    assert main(["data", "example", str(root)]) == 2  # never written over
