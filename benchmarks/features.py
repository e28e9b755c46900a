"""Feature mode at AWA2's true size: NIWT and the baselines on a stand-in `res101.mat` (37,322 x 2,048
float32) beside the real `att_splits.mat` of the proposed split.

The stand-in's labels follow the real index arrays (seen classes at `train_loc` / `val_loc`, unseen
classes at `test_unseen_loc`, counts as published: 27 + 13 seen, 10 unseen); its features are class
means plus noise (the real features cannot be shipped), so the accuracies say nothing about AWA2 and
the run measures time and memory only.

    python benchmarks/features.py [--split ../shared/data/xlsa17/AWA2/att_splits.mat] [--work /tmp/awa2]

Runs `niwt compare configs/awa2_xlsa17.toml --seeds 1` on it in a child process and prints its wall
time and peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"AWA2": (27, 13, 10)}


def make_standin(split_file: Path, out: Path, dim: int = 2048, seed: int = 0) -> Path:
    """``out/att_splits.mat`` (a link to ``split_file``) and a stand-in ``out/res101.mat``."""
    out.mkdir(parents=True, exist_ok=True)
    link = out / "att_splits.mat"
    if not link.exists():
        link.symlink_to(split_file.resolve())
    mat = scipy.io.loadmat(split_file, variable_names=["train_loc", "val_loc", "test_unseen_loc", "trainval_loc",
                                                        "test_seen_loc", "allclasses_names"])
    n_train, n_val, n_unseen = COUNTS["AWA2"]
    n = int(max(mat[k].max() for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc")))
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_train + n_val + n_unseen)
    labels = np.zeros(n, np.int64)
    for loc, ids in (("train_loc", order[:n_train]), ("val_loc", order[n_train:n_train + n_val]),
                     ("test_unseen_loc", order[n_train + n_val:])):
        rows = np.sort(mat[loc].ravel() - 1)
        labels[rows] = ids[np.arange(rows.size) * len(ids) // rows.size]  # contiguous runs, one per class
    # test_seen images: the classes of the trainval images around them
    seen_rows = np.sort(np.concatenate([mat["train_loc"].ravel(), mat["val_loc"].ravel()]) - 1)
    test_seen = mat["test_seen_loc"].ravel() - 1
    nearest = np.searchsorted(seen_rows, test_seen).clip(0, seen_rows.size - 1)
    labels[test_seen] = labels[seen_rows[nearest]]
    means = rng.normal(size=(n_train + n_val + n_unseen, dim)).astype(np.float32)
    features = means[labels] + 2.0 * rng.normal(size=(n, dim)).astype(np.float32)
    scipy.io.savemat(out / "res101.mat", {"features": features.T, "labels": (labels + 1)[:, None].astype(np.uint8)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, default=ROOT.parent / "shared/data/xlsa17/AWA2/att_splits.mat")
    parser.add_argument("--work", type=Path, default=Path("/tmp/niwt-awa2-standin"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    folder = make_standin(args.split, args.work / "AWA2")
    print(f"stand-in res101.mat written in {time.perf_counter() - t0:.0f} s")
    cmd = [sys.executable, "-m", "niwt.cli", "compare", str(ROOT / "configs/awa2_xlsa17.toml"), "--seeds", "1",
           "--set", f"data.root={folder}", "--out", str(args.work / "run"), "--force", "--quiet"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, text=True, capture_output=True)
    seconds = time.perf_counter() - t0
    print(done.stdout)
    if done.returncode:
        print(done.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"niwt compare (feature mode, 37,322 x 2,048): {seconds:.0f} s wall, peak resident memory {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
