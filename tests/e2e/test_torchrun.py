"""Two processes under torchrun (Gloo, CPU) against one process.

What must be equal, to float tolerance: the importances extracted on two shards and gathered, the
map's targets and the unseen rows every process transfers with, and seen-class training of a model
without BatchNorm or dropout with the same global batch (each process a part of every batch, its
loss weighted by its share). The command line under torchrun writes one complete run directory,
from rank 0 alone.

Run as a script (``python -m torch.distributed.run --nproc-per-node 2 tests/e2e/test_torchrun.py
OUT``), this file is the worker each process runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from niwt.errors import ConfigError
from niwt.models import Backbone, create_model
from niwt.models.head import ExtendableLinear
from tests._paths import ROOT

N_IMAGES, N_SEEN, N_UNSEEN, SIDE = 13, 4, 3, 32  # 13 images: shards of 7 and 6


class ConvGap(Backbone):
    """conv -> ReLU -> global average pool -> classifier: no BatchNorm, no dropout."""

    def __init__(self, n_classes: int = N_SEEN) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
        self.num_features = 5
        self.importance_layer = "conv"
        self.classifier = ExtendableLinear(5, n_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def forward_head(self, a: torch.Tensor) -> torch.Tensor:
        return a.mean((2, 3))


def _inputs() -> dict[str, object]:
    """The same images, labels, knowledge, pool and models in every process (seeded, made on the CPU)."""
    gen = torch.Generator().manual_seed(5)
    images = torch.rand(N_IMAGES, 3, SIDE, SIDE, generator=gen)
    labels = torch.arange(N_IMAGES) % N_SEEN
    knowledge = torch.rand(N_SEEN + N_UNSEEN, 6, generator=gen).double().numpy()
    pool = torch.rand(16, 3, SIDE, SIDE, generator=gen)
    torch.manual_seed(0)
    vgg = create_model("vgg", N_SEEN, width=4, hidden=16, image_size=SIDE).eval()
    torch.manual_seed(1)
    small = ConvGap()
    return {"images": images, "labels": labels, "knowledge": knowledge, "pool": pool, "vgg": vgg, "small": small}


def _compute() -> dict[str, torch.Tensor]:
    """Importances, targets and unseen rows of the pipeline's transfer, and a trained small model."""
    from niwt.config import RunConfig, RuntimeConfig
    from niwt.pipeline.method_niwt import niwt_transfer
    from niwt.pipeline.presets import quick_config
    from niwt.training import train_classifier

    x = _inputs()
    config = quick_config(RunConfig(runtime=RuntimeConfig(device="cpu")))
    out = niwt_transfer(config, x["vgg"], x["knowledge"], x["images"], x["labels"], np.arange(N_SEEN),
                        np.arange(N_SEEN, N_SEEN + N_UNSEEN), x["pool"], [(1e-3, 3e-3)])
    # 15 images, global batch 6: batches 6, 6, 3; two processes take 3+3, 3+3 and 2+1 of them
    images15 = torch.cat([x["images"], x["images"][:2].flip(3)])
    labels15 = torch.arange(15) % N_SEEN
    train_classifier(x["small"], images15, labels15, epochs=2, lr=1e-2, batch_size=6,
                     generator=torch.Generator().manual_seed(3))
    return {"importances": out.importances, "targets": torch.from_numpy(out.targets),
            "weights": out.optimizers[0].weights_, "trained": torch.cat([p.detach().reshape(-1)
                                                                          for p in x["small"].parameters()])}


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone", *args]
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_shards_partition_the_items_in_order():
    from niwt.distributed import shard_bounds

    assert [shard_bounds(13, of_rank=r, ranks=2) for r in (0, 1)] == [(0, 7), (7, 13)]
    assert [shard_bounds(5, of_rank=r, ranks=3) for r in (0, 1, 2)] == [(0, 2), (2, 4), (4, 5)]
    assert [shard_bounds(2, of_rank=r, ranks=4) for r in range(4)] == [(0, 1), (1, 2), (2, 2), (2, 2)]


def test_one_process_is_rank_0_of_1_and_collectives_return_their_input(monkeypatch: pytest.MonkeyPatch):
    from niwt import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    x = torch.arange(6.0)
    with distributed.process_group("cpu"):  # nothing to start in one process
        assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
        assert distributed.gather(x) is x and distributed.broadcast(x) is x
        assert distributed.shard(list(range(5))) == [0, 1, 2, 3, 4]


def test_a_world_size_without_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch):
    from niwt import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="RANK, MASTER_ADDR, MASTER_PORT unset: start the command with `torchrun"):
        with distributed.process_group("cpu"):
            pass
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer"):
        distributed.env_world_size()


def test_two_processes_extract_the_same_importances_and_train_the_same_model(tmp_path: Path):
    _torchrun(str(Path(__file__).resolve()), str(tmp_path), cwd=tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each process ran, so the float sums are taken in the same order
    try:
        single = _compute()
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2 and ranks[0]["shard"].tolist() == [0, 7]
    assert ranks[1]["shard"].tolist() == [7, 13]  # each process extracted its own shard
    for got in ranks:
        assert got["importances"].shape == (N_IMAGES, 4 * 4)  # every image, back in order, on every process
        torch.testing.assert_close(got["importances"], single["importances"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["targets"], single["targets"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["trained"], single["trained"], rtol=1e-4, atol=1e-5)
    # the rows every process scores with are rank 0's, bit for bit
    assert torch.equal(ranks[0]["weights"], ranks[1]["weights"])
    torch.testing.assert_close(ranks[0]["weights"], single["weights"], rtol=1e-4, atol=1e-5)


def test_torchrun_writes_one_complete_run_directory_from_rank_0(tmp_path: Path):
    (tmp_path / "c.toml").write_text("seed = 1\n[transfer]\nselect = false\n", encoding="utf-8")
    _torchrun("-m", "niwt.cli", "run", "c.toml", "--quick", "--quiet", "--device", "cpu", "--out", "run",
              cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "run"]  # no staging left, nothing else
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    on_disk = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert {"metrics.json", "config.toml", "model/niwt.safetensors"} <= on_disk
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["runtime"] == {"device": "cpu", "precision": "fp32", "world_size": 2}
    from niwt.runs import load_run

    loaded = load_run(run)
    assert loaded.model.classifier.n_unseen == 3  # the quick world's unseen classes, transferred


def _worker(out: Path) -> None:
    from niwt import distributed

    torch.set_num_threads(1)
    with distributed.process_group("cpu"):
        assert distributed.world_size() == 2, "start with torchrun --nproc-per-node 2"
        result = _compute()
        result["world_size"] = torch.tensor(distributed.world_size())
        result["shard"] = torch.tensor(distributed.shard_bounds(N_IMAGES))
        torch.save(result, out / f"rank{distributed.rank()}.pt")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
