"""End to end on a tiny shapes world through the CLI: run directory, metrics, refusal, determinism."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from niwt.cli import main
from niwt.config import RunConfig, load_config, resolve_config
from niwt.data import ZSLData
from niwt.errors import DataError
from niwt.models import create_model

TINY = """
seed = 1
[data]
seed = 3
n_source = 4
n_seen = 6
n_unseen = 3
n_val = 2
n_source_images = 8
n_trainval_images = 8
n_test_seen_images = 4
n_test_unseen_images = 4
[model]
width = 4
hidden = 16
[train]
pretrain_epochs = 1
epochs = 1
[mapping]
epochs = 3
n_holdout = 1
[transfer]
lam_grid = [0.0, 0.01]
max_steps = 5
batch_size = 8
"""


@pytest.fixture(scope="session")
def tiny_toml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_toml, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["run", str(tiny_toml), "--out", str(out), "--quiet"]) == 0
    return out


def test_run_directory_is_complete(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.toml", "versions.json", "metrics.json", "model", "mapping", "transfer"} <= names
    assert not list(tiny_run.parent.glob(".*partial"))


def test_metrics_have_the_spine_form(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    niwt = metrics["methods"]["niwt"]
    for key in ("seen_acc", "unseen_acc", "H", "zsl_acc"):
        assert 0.0 <= niwt[key] <= 1.0
    s, u = niwt["seen_acc"], niwt["unseen_acc"]
    assert niwt["H"] == pytest.approx(0 if s + u == 0 else 2 * s * u / (s + u))
    assert metrics["config"]["data"]["n_seen"] == 6
    sel = metrics["per_seed"][0]["methods"]["niwt"]["selection"]
    assert sel["validated"] and [row["lam"] for row in sel["grid"]] == [0.0, 0.01]
    best = max(sel["grid"], key=lambda row: row["H"])
    assert sel["chosen"] == {"lam": best["lam"], "lr": best["lr"]}


def test_resolved_config_and_weights_reload(tiny_run, tiny_toml):
    cfg = load_config(tiny_run / "config.toml")
    # The resolved config: what the file left unset is filled (data seed given; model defaults).
    assert cfg == resolve_config(load_config(tiny_toml))
    assert (cfg.data.seed, cfg.model.hidden, cfg.model.dropout) == (3, 16, 0.3)
    state = load_file(str(tiny_run / "model" / "niwt.safetensors"))
    model = create_model(cfg.model.arch, cfg.data.n_seen, width=cfg.model.width, hidden=cfg.model.hidden)
    model.load_state_dict(state)
    assert model.classifier.n_unseen == cfg.data.n_unseen


def test_existing_run_is_refused_without_force(tiny_run, tiny_toml, capsys):
    before = (tiny_run / "metrics.json").read_text()
    assert main(["run", str(tiny_toml), "--out", str(tiny_run), "--quiet"]) == 2
    assert "already holds a niwt run" in capsys.readouterr().err
    assert (tiny_run / "metrics.json").read_text() == before


def test_force_replaces_and_same_seed_gives_same_numbers(tiny_run, tiny_toml, tmp_path):
    out = tmp_path / "again"
    assert main(["run", str(tiny_toml), "--out", str(out), "--quiet"]) == 0
    first = json.loads((tiny_run / "metrics.json").read_text())["methods"]
    assert json.loads((out / "metrics.json").read_text())["methods"] == first
    assert main(["run", str(tiny_toml), "--out", str(out), "--quiet", "--force",
                 "--set", "seed=2"]) == 0
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "transfer.lamda=1"], "unknown setting `transfer.lamda`"),
        (["--set", "model.arch=alexnet"], "`model.arch` must be one of ['mlp', 'resnet', 'resnet101', "),
    ],
)
def test_cli_reports_bad_input_without_a_traceback(tiny_toml, tmp_path, capsys, extra, message):
    assert main(["run", str(tiny_toml), "--out", str(tmp_path / "x"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("niwt: error:") and message in err
    assert list(tmp_path.iterdir()) == []  # no run, no staging directory left behind


def test_knowledge_rows_must_match_classes():
    with pytest.raises(DataError, match=r"one row per class: expected shape \(3, d\), got \(2, 4\)"):
        ZSLData(name="x", class_names=("a", "b", "c"), knowledge=np.zeros((2, 4)), knowledge_names=tuple("abcd"),
                labels=np.zeros(0, np.int64), seen_classes=np.array([0, 1]), unseen_classes=np.array([2]),
                train_classes=np.array([0]), val_classes=np.array([1]), trainval_idx=np.zeros(0, np.int64),
                test_seen_idx=np.zeros(0, np.int64), test_unseen_idx=np.zeros(0, np.int64))


def test_nan_in_attributes_is_named():
    k = np.ones((3, 2))
    k[1, 1] = np.nan
    with pytest.raises(DataError, match=r"first at class 'b' \(row 1\), dimension 1"):
        ZSLData(name="x", class_names=("a", "b", "c"), knowledge=k, knowledge_names=("p", "q"),
                labels=np.zeros(0, np.int64), seen_classes=np.array([0, 1]), unseen_classes=np.array([2]),
                train_classes=np.array([0]), val_classes=np.array([1]), trainval_idx=np.zeros(0, np.int64),
                test_seen_idx=np.zeros(0, np.int64), test_unseen_idx=np.zeros(0, np.int64))


def test_a_source_pool_on_a_dataset_without_source_images_becomes_the_seen_pool_before_training(tmp_path, caplog):
    from niwt.cli import main
    from niwt.config import load_config
    from niwt.data.shapes import ShapesConfig, make_shapes
    from niwt.pipeline import fit_to_data

    data = make_shapes(ShapesConfig(n_source=0, n_seen=6, n_unseen=3, n_val=2, n_trainval_images=4,
                                    n_test_seen_images=2, n_test_unseen_images=2))
    assert len(data.source_idx) == 0
    with caplog.at_level("WARNING"):
        fitted = fit_to_data(RunConfig(), data)
    assert fitted.transfer.pool == "seen" and 'transfer.pool = "source" needs source images' in caplog.text
    assert fit_to_data(replace(RunConfig(), transfer=replace(RunConfig().transfer, pool="noise")), data) \
        .transfer.pool == "noise"  # a pool that works is kept
    out = tmp_path / "run"
    from tests._configs import SMALL_RUN

    (tmp_path / "c.toml").write_text(SMALL_RUN.replace("n_source = 4", "n_source = 0"))
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out), "--quiet"]) == 0
    assert load_config(out / "config.toml").transfer.pool == "seen"
