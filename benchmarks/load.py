"""Load: importance extraction and GZSL evaluation over a streamed shapes world of N images.

Images are rendered on demand (``niwt.data.source.ShapesStream``), one batch at a time, so memory
should not grow with N beyond the outputs themselves (the importances ``[N, K]`` and the scores
``[N, C]``); held as float tensors the images alone would take N x 12 KiB (1.2 GB at N = 100,000).

    python benchmarks/load.py --images 10000
    python benchmarks/load.py --images 100000

Run each size in its own process (peak memory is per process). Prints wall time, throughput and
peak resident memory; progress (with the time left) goes to the log.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import numpy as np
import torch

from niwt import create_model, evaluate_gzsl, make_shapes, neuron_importance, seed_everything
from niwt.data.settings import build_settings
from niwt.data.source import ShapesStream
from niwt.progress import StageProgress
from niwt.scores import score_images


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="images in the streamed world")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seed_everything(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    world = make_shapes()  # the demo world's classes and their attribute structure
    _, final = build_settings(world, seed=0)
    stream = ShapesStream(world, final.classes, args.images, seed=1)
    labels = stream.labels
    model = create_model("vgg", len(final.fit_classes))
    model.classifier.set_unseen(0.01 * torch.randn(len(final.new_classes), model.num_features))
    rows = torch.from_numpy(final.rows(labels))
    before = _peak_mib()

    t0 = time.perf_counter()
    with StageProgress("importance", len(stream), unit="image") as bar:
        alpha = neuron_importance(model, model.importance_layer, stream, rows, batch_size=args.batch_size,
                                  progress=bar.update_to)
    t_importance = time.perf_counter() - t0
    after_importance = _peak_mib()

    t0 = time.perf_counter()
    scores = score_images(model, stream, final, world.n_classes)
    report = evaluate_gzsl(scores, labels, final.fit_classes, final.new_classes)
    t_eval = time.perf_counter() - t0
    peak = _peak_mib()

    held = len(stream) * int(np.prod(stream.shape[1:])) * 4 / 2**20
    print(f"images: {len(stream):,} of {stream.shape[2]}x{stream.shape[3]} px (as float tensors they would "
          f"take {held:,.0f} MiB)")
    print(f"importance: {t_importance:.1f} s ({len(stream) / t_importance:,.0f} images/s), output "
          f"{alpha.numel() * 4 / 2**20:.1f} MiB")
    print(f"evaluation: {t_eval:.1f} s, H = {report.H:.3f} (untrained model: a load test, not a result)")
    print(f"peak resident memory: {before:,.0f} MiB before, {after_importance:,.0f} MiB after importance, "
          f"{peak:,.0f} MiB at the end")


if __name__ == "__main__":
    main()
