"""The seen/unseen balance on real images: scikit-learn's handwritten digits as a folder dataset.

The shapes world is synthetic; this checks on real scans (the 1,797 8 x 8 handwritten digits that
ship with scikit-learn, nothing downloaded) whether what balances NIWT's unseen rows on shapes
holds on real images too: `niwt` (the paper's rows), `niwt-bal` (rows rescaled to the mean seen
norm, given the mean seen bias) and, for every method, calibrated stacking with its constant
chosen on validation classes. Each digit's knowledge is a hand-written attribute row (loops,
strokes, curves; written from the digits' shapes, not from the images) and a one-line description.

    python benchmarks/balance_real.py [--seeds 3] [--out runs/digits]

Digits 3 and 8 are unseen: every attribute they have is held by some seen digit.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

ATTRIBUTES = ("loops", "loop_top", "loop_bottom", "vertical_stroke", "top_bar", "middle_bar", "bottom_bar",
              "curve_top", "curve_bottom", "diagonal", "open_left", "symmetric")
KNOWLEDGE = {
    # digit: (attribute values in ATTRIBUTES order, description)
    "0": ((1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1), "an oval: one closed loop, round at the top and the bottom"),
    "1": ((0, 0, 0, 1, 0, 0, 0.3, 0, 0, 0.3, 0, 0.5), "a single straight vertical stroke"),
    "2": ((0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0.5, 0), "a curve at the top, a diagonal down to the left, a flat bar at the bottom"),
    "3": ((0, 0, 0, 0, 0, 0.5, 0, 1, 1, 0, 1, 0.5), "two curves stacked, open to the left, meeting in the middle"),
    "4": ((0.5, 0, 0, 1, 0, 1, 0, 0, 0, 0.5, 0, 0), "a vertical stroke crossed by a middle bar, a diagonal on the left"),
    "5": ((0, 0, 0, 0.5, 1, 0, 0, 0, 1, 0, 0.5, 0), "a flat bar at the top, a short vertical, a curve at the bottom open to the left"),
    "6": ((1, 0, 1, 0, 0, 0, 0, 0.5, 1, 0, 0, 0), "a curve down from the top into a closed loop at the bottom"),
    "7": ((0, 0, 0, 0.5, 1, 0, 0, 0, 0, 1, 1, 0), "a flat bar at the top and a diagonal stroke down to the left"),
    "8": ((2, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1), "two closed loops stacked, round at the top and the bottom"),
    "9": ((1, 1, 0, 0.5, 0, 0, 0, 1, 0, 0, 0, 0), "a closed loop at the top with a stroke down from it"),
}
UNSEEN = ("3", "8")


def write_digits(root: Path, size: int = 32, per_class: int | None = None) -> Path:
    """The digits as a folder dataset under ``root``: one folder of PNGs per digit and classes.csv.

    ``per_class``: keep only the first that many images of each digit (in the dataset's order); all by default.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    root.mkdir(parents=True, exist_ok=True)
    kept: dict[int, int] = {}
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        kept[label] = kept.get(label, 0) + 1
        if per_class is not None and kept[label] > per_class:
            continue
        folder = root / str(label)
        folder.mkdir(exist_ok=True)
        gray = (image / 16.0 * 255).astype(np.uint8)
        Image.fromarray(gray).resize((size, size), Image.BILINEAR).convert("RGB").save(folder / f"{i:04d}.png")
    with (root / "classes.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "split", *ATTRIBUTES, "description"])
        for name, (values, text) in KNOWLEDGE.items():
            writer.writerow([name, "unseen" if name in UNSEEN else "seen", *values, text])
    return root


def digits_config(root: Path, seed: int = 0):
    """The run config: a small VGG trained from scratch (no source classes), seen images as the pool."""
    from niwt.config import RunConfig, apply_overrides, resolve_config

    config = apply_overrides(RunConfig(), [
        "data.kind=\"folder\"", f"data.root=\"{root.as_posix()}\"", "data.resize=32", "data.crop=32",
        "data.normalize=false", "model.arch=\"vgg\"", "model.width=16", "train.pretrain_epochs=0", "train.epochs=15",
        "transfer.pool=\"seen\"",
    ])
    return resolve_config(replace(config, seed=seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds (default: 3)")
    parser.add_argument("--out", type=Path, default=Path("runs/digits"), help="run directory (replaced if a niwt run)")
    parser.add_argument("--data", type=Path, help="where to write the digits folder (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from niwt.pipeline.experiments import compare
    from niwt.results import format_table

    with tempfile.TemporaryDirectory() as tmp:
        root = write_digits(args.data if args.data is not None else Path(tmp) / "digits")
        start = time.perf_counter()
        comparison = compare(digits_config(root), args.out, force=True, seeds=args.seeds,
                             methods=("niwt", "niwt-bal", "ale", "dem", "eszsl", "sae"))
        seconds = time.perf_counter() - start
    print(f"handwritten digits (scikit-learn), unseen {', '.join(UNSEEN)}; {args.seeds} seeds; {seconds:.0f} s")
    print(format_table(comparison))
    return 0


if __name__ == "__main__":
    sys.exit(main())
