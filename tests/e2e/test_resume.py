"""Runs killed with SIGKILL at several points resume to the same final metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from niwt.faults import ENV

CONFIG = """
seed = 1
[data]
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
pretrain_epochs = 3
epochs = 3
[mapping]
epochs = 3
n_holdout = 1
[transfer]
lam_grid = [0.0, 0.01]
max_steps = 5
batch_size = 8
"""


def _niwt(*args: str, failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if failpoint is not None:
        env[ENV] = failpoint
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "niwt.cli", *args, "--quiet"], env=env, capture_output=True,
                          text=True, timeout=300)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["methods"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    config = root / "tiny.toml"
    config.write_text(CONFIG)
    done = _niwt("run", str(config), "--out", str(root / "uninterrupted"))
    assert done.returncode == 0, done.stderr
    return root, config, _metrics(root / "uninterrupted")


@pytest.mark.slow
@pytest.mark.parametrize("point", [
    "epoch:pre-train:2",          # during pre-training, after its second epoch
    "epoch:train (seen):2",       # during seen training
    "stage:seed1.niwt_selections",  # during transfer: Λ chosen, the final transfer not yet run
    "write:before-manifest",      # while writing the run directory
    "write:between-renames",      # while moving it into place over an older run
])
def test_killed_run_resumes_to_the_same_metrics(setup, point):
    root, config, expected = setup
    out = root / point.replace(":", "_").replace(" ", "_").replace("(", "").replace(")", "")
    if point == "write:between-renames":  # needs an older run to replace
        assert _niwt("run", str(config), "--out", str(out), "--set", "transfer.max_steps=2").returncode == 0
    killed = _niwt("run", str(config), "--out", str(out), "--force", failpoint=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if point != "write:between-renames":
        assert not out.exists()  # a killed run never claims to be complete
    # Without --resume a new run would start from zero; with it, the killed run's stages are reused.
    resumed = _niwt("run", str(config), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _metrics(out) == expected
    assert sorted(p.name for p in root.glob(f".{out.name}.*")) == []  # nothing left behind
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"seed1.pretrain", "seed1.train_val", "seed1.train_final", "seed1.niwt"} <= set(manifest["stages"])


@pytest.mark.slow
def test_resume_recomputes_only_changed_stages(setup, tmp_path):
    root, config, expected = setup
    out = tmp_path / "run"
    assert _niwt("run", str(config), "--out", str(out)).returncode == 0
    before = json.loads((out / "manifest.json").read_text())["stages"]
    changed = _niwt("run", str(config), "--out", str(out), "--resume", "--set", "transfer.max_steps=3")
    assert changed.returncode == 0, changed.stderr
    after = json.loads((out / "manifest.json").read_text())["stages"]
    for stage in ("seed1.pretrain", "seed1.train_val", "seed1.train_final"):
        assert after[stage] == before[stage]  # training reused
    assert after["seed1.niwt"] != before["seed1.niwt"] and after["seed1.niwt_selections"] != before["seed1.niwt_selections"]
