"""One NIWT run on a full-size torchvision network at 224 px: wall time and peak memory per stage.

A tiny shapes world rendered at 224 px (a few images per class), random weights
(``model.weights = "none"``: nothing is downloaded), one training epoch, then importance, mapping,
transfer and evaluation as ``niwt run`` does them. The figures are the cost of the network, not of
a real dataset: multiply the training and importance rows by the number of images of yours.

    python benchmarks/tv_pipeline.py --arch vgg16 --mode finetuned
    python benchmarks/tv_pipeline.py --arch resnet101 --mode fixed

Run each network in its own process (peak memory is per process). Stages:

* ``data``: rendering the world; ``model``: building the network;
* ``train``: training on the seen classes (``train_final``; in finetuned mode the classifier's own
  epoch first);
* ``niwt``: importance of the seen training images, the knowledge -> importance map, the transfer
  and the GZSL evaluation (the run records ``final`` = importance + map + transfer, and ``inverse``).

Each stage's time is also given in units of one reference training step (forward and backward of
one batch through the whole network) measured at the start of the same process, so figures taken
on different machines can be compared by their ratios. Peak memory is the resident set's
high-water mark inside the stage, above what was resident when it began (``PeakMemory``).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from _common import PeakMemory, emit, environment, fmt_table, log

from niwt.config import RunConfig, from_dict, resolve_config
from niwt.data.shapes import make_shapes
from niwt.models import create_model
from niwt.pipeline import fit_niwt, open_run, seed_context
from niwt.seeding import seed_everything


def _config(arch: str, mode: str, side: int, images: int, batch: int) -> RunConfig:
    train = {"mode": mode, "pretrain_epochs": 0, "epochs": 1, "batch_size": batch, "lr": 1e-5, "augment": False}
    if mode == "finetuned":
        train.update(head_epochs=1, head_lr=1e-3)
    return from_dict(RunConfig, {
        "seed": 0,
        "data": {"kind": "shapes", "image_size": side, "n_source": 0, "n_seen": 5, "n_unseen": 2, "n_val": 2,
                 "n_source_images": 1, "n_trainval_images": images, "n_test_seen_images": 2,
                 "n_test_unseen_images": 2},
        "model": {"arch": arch, "weights": "none"},
        "train": train,
        "importance": {"batch_size": batch},
        "mapping": {"epochs": 5, "n_holdout": 1},
        "explain": {"epochs": 5},
        "transfer": {"select": False, "max_steps": 20, "batch_size": batch, "pool": "seen"},
    })


def _reference_step(model: torch.nn.Module, side: int, batch: int) -> float:
    """Seconds of one forward and backward pass of ``batch`` images through a copy of ``model``."""
    net = copy.deepcopy(model).train()
    x = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    params = [p for p in net.parameters() if p.requires_grad]
    torch.autograd.grad(net(x[:1]).sum(), params)  # warm-up
    start = time.perf_counter()
    torch.autograd.grad(net(x).sum(), params)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg16", help="a registered torchvision network (default: vgg16)")
    parser.add_argument("--mode", default="finetuned", choices=("finetuned", "fixed"))
    parser.add_argument("--side", type=int, default=224, help="image side in pixels (default: 224)")
    parser.add_argument("--images", type=int, default=4, help="training images per seen class (default: 4)")
    parser.add_argument("--batch", type=int, default=8, help="batch size of every stage (default: 8)")
    args = parser.parse_args()
    seed_everything(0)
    config = resolve_config(_config(args.arch, args.mode, args.side, args.images, args.batch))
    stages: dict[str, dict[str, float]] = {}

    def measure(name: str, work):
        start = time.perf_counter()
        with PeakMemory() as mem:
            value = work()
        stages[name] = {"seconds": time.perf_counter() - start, "peak_extra_mib": mem.extra_mib,
                        "peak_mib": mem.peak_mib}
        log(f"{name}: {stages[name]['seconds']:.1f} s, peak +{mem.extra_mib:.0f} MiB")
        return value

    data = measure("data", lambda: make_shapes(config.data))
    base = measure("model", lambda: create_model(args.arch, 1, weights="none"))
    reference = _reference_step(base, args.side, args.batch)
    log(f"reference training step ({args.batch} images): {reference:.2f} s")
    inputs = open_run(config, data)
    ctx = measure("train", lambda: seed_context(inputs, validation=False, base=base))
    run = measure("niwt", lambda: fit_niwt(ctx))
    recorded = {k: round(v, 2) for k, v in run.result.seconds.items()}
    rows = [[name, s["seconds"], s["seconds"] / reference, s["peak_extra_mib"], s["peak_mib"]]
            for name, s in stages.items()]
    log(fmt_table(["stage", "seconds", "x reference step", "peak above start (MiB)", "peak RSS (MiB)"], rows))
    log(f"stage seconds the run recorded: {recorded}")
    n_train = len(ctx.final.train_idx)
    emit({"benchmark": "tv_pipeline", "arch": args.arch, "mode": args.mode, "side": args.side,
          "train_images": n_train, "batch": args.batch, "reference_step_s": reference,
          "stages": stages, "recorded_seconds": recorded,
          "report": {"S": run.report.seen_acc, "U": run.report.unseen_acc, "H": run.report.H},
          "environment": environment()})


if __name__ == "__main__":
    main()
