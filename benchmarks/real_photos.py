"""NIWT against the baselines on real photos, with a pretrained network and without one.

Datasets (nothing downloaded; each written as a folder dataset, one sentence per class embedded by
all-MiniLM-L6-v2):

* ``fashion``: Fashion-MNIST (:mod:`fashion`: Debian's ``dataset-fashion-mnist`` idx files, or
  ``--idx DIR``), ``--per-class`` photos of each of the 10 classes at 64 px; unseen: pullover,
  dress, sneaker.
* ``digits``: scikit-learn's handwritten digits (1,797; the first ``--per-class`` of each digit) at 64 px
  (:mod:`balance_real`); unseen 3, 8.

Arms (``configs/real-photos_*.toml``): ``scratch`` (niwt's small VGG trained on the seen classes,
32 px), ``fixed`` (ImageNet EfficientNet-Lite0, only its classifier trained) and ``finetuned`` (the
same, its classifier first, then every layer). Every method (``niwt``, ``niwt-bal``, ALE, DEM,
ESZSL, SAE) is chosen by one rule: its hyper-parameters and its calibrated-stacking constant by the
mean H over the validation problems; the test images are only looked at for the reported figures.
Two designs of those problems (``--validation``):

* ``splits`` (the default): three validation splits of the seen classes (``eval.val_splits = 3``),
  each with as many val classes as the dataset has unseen classes (``data.val_fraction`` set to
  n_unseen / n_seen), so that the validation problem looks like the test problem: as many unseen
  rows compete with the seen ones, and every seen class gets to act as unseen;
* ``single``: the folder format's default, one split with 20 % of the seen classes (one class of
  seven for Fashion-MNIST). ``curve H*`` is the best H anywhere on a method's own
seen-unseen curve: an analysis that looks at the test labels, never used to choose.

Each split's network is the final network with the split's val classes' rows held out
(``eval.validation = "held_out_rows"`` in the configs, since 2026-12-06); ``--set
eval.validation='"networks"' --tag networks`` trains one network per split instead, as the tables
of 2026-12-02 were made (``benchmarks/choose_inside.py`` compares the two).

    python benchmarks/real_photos.py [--seeds 5] [--datasets fashion digits] [--arms scratch fixed finetuned]
                                     [--per-class 100] [--validation splits|single] [--out runs/real_photos]
                                     [--set KEY=VALUE --tag NAME]

Each arm runs in its own process, which reports its wall time and peak memory (resident set);
``--out`` keeps every arm's run directory (``niwt report`` reads them), ``summary.md`` the tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

ARMS = {"scratch": "real-photos_scratch.toml", "fixed": "real-photos_lite0-fixed.toml",
        "finetuned": "real-photos_lite0-finetuned.toml"}
DATASETS = ("fashion", "digits")
METHODS = ("niwt", "niwt-bal", "ale", "dem", "eszsl", "sae")
BASELINES = METHODS[2:]


def write_dataset(name: str, root: Path, per_class: int, idx: Path | None) -> Path:
    """The dataset ``name`` as a folder dataset under ``root`` (written once, then reused)."""
    if (root / "classes.csv").is_file():
        return root
    if name == "fashion":
        from fashion import IDX_DIR, write_fashion

        return write_fashion(root, per_class=per_class, size=64, seed=0, idx_dir=idx or IDX_DIR)
    from balance_real import write_digits

    return write_digits(root, size=64, per_class=per_class)


def class_counts(data_root: Path) -> tuple[int, int]:
    """``(n_seen, n_unseen)`` of a folder dataset, from the split column of its classes.csv."""
    with (data_root / "classes.csv").open(encoding="utf-8") as f:
        splits = [row["split"] for row in csv.DictReader(f)]
    return splits.count("seen"), splits.count("unseen")


def arm_config(arm: str, data_root: Path, seeds: int, validation: str, overrides: list[str] | None = None):
    """The arm's config on ``data_root`` with the asked validation design (see the module docstring)
    and ``overrides`` (``KEY=VALUE``, as ``niwt --set``)."""
    from niwt.config import apply_overrides, load_config, resolve_config

    config = apply_overrides(load_config(ROOT / "configs" / ARMS[arm]),
                             [f'data.root="{data_root.as_posix()}"', *(overrides or [])])
    if validation == "single":
        config = replace(config, eval=replace(config.eval, val_splits=1))
    else:
        n_seen, n_unseen = class_counts(data_root)
        config = replace(config, data=replace(config.data, val_fraction=n_unseen / n_seen))
    return resolve_config(replace(config, compare=replace(config.compare, seeds=seeds)))


def run_arm(arm: str, data_root: Path, out: Path, seeds: int, validation: str,
            overrides: list[str] | None = None) -> None:
    """One arm in this process: ``niwt compare`` into ``out``, then its wall time and peak memory."""
    from niwt.pipeline.experiments import compare

    start = time.perf_counter()
    compare(arm_config(arm, data_root, seeds, validation, overrides), out, force=True, methods=METHODS)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    (out / "bench.json").write_text(json.dumps({"seconds": seconds, "peak_rss_mb": peak}))


def _cell(values: np.ndarray) -> str:
    return f"{values.mean():.3f} ± {values.std():.3f}"


def arm_table(out: Path, title: str) -> tuple[list[str], dict]:
    """The markdown table of one finished arm, and its figures."""
    from niwt.results import Comparison, paired_difference

    comparison = Comparison.from_dict(json.loads((out / "metrics.json").read_text()))
    bench = json.loads((out / "bench.json").read_text())
    rows = {}
    for i, method in enumerate(comparison.methods):
        results = [run.results[i] for run in comparison.runs]
        rows[method] = {
            "S": np.array([r.report.seen_acc for r in results]), "U": np.array([r.report.unseen_acc for r in results]),
            "H": np.array([r.report.H for r in results]), "ZSL": np.array([r.report.zsl_acc for r in results]),
            "AUSUC": np.array([r.report.ausuc for r in results]),
            "S cal": np.array([r.calibrated.seen_acc for r in results]),
            "U cal": np.array([r.calibrated.unseen_acc for r in results]),
            "H cal": np.array([r.calibrated.H for r in results]),
            "curve H*": np.array([r.report.curve_best_H for r in results])}
    n = len(comparison.runs)
    lines = [f"**{title}** ({n} seeds; {bench['seconds'] / 60:.1f} min, peak memory {bench['peak_rss_mb']:.0f} MB)", "",
             "| method | S | U | H | S cal. | U cal. | H cal. | ZSL | AUSUC | curve H* (analysis) | H cal. − H* |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, r in rows.items():
        cells = [_cell(r[k]) for k in ("S", "U", "H", "S cal", "U cal", "H cal", "ZSL", "AUSUC", "curve H*")]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {np.mean(r['H cal'] - r['curve H*']):+.3f} |")
    figures: dict = {"seconds": bench["seconds"], "peak_rss_mb": bench["peak_rss_mb"], "seeds": n,
                     "methods": {m: {k: v.tolist() for k, v in r.items()} for m, r in rows.items()}}
    lines.append("")
    for key, label in (("H cal", "calibrated"), ("H", "plain")):
        best_base = np.max([rows[b][key] for b in BASELINES], axis=0)
        which = [BASELINES[j] for j in np.argmax([rows[b][key] for b in BASELINES], axis=0)]
        for variant in ("niwt", "niwt-bal"):
            diff = paired_difference(variant, "best baseline", rows[variant][key], best_base, key)
            figures[f"{variant} - best baseline ({label})"] = diff.to_dict()
            lines.append(f"- {label}: `{variant}` − the best baseline of each seed ({', '.join(which)}): "
                         f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}], ahead on {diff.wins}/{n} seeds")
    return lines, figures


def write_summary(out: Path) -> None:
    """``summary.md`` and ``summary.json`` of every finished arm under ``out`` (this call's and earlier ones')."""
    summary, figures = [], {}
    order = [f"{d}-{a}" for d in DATASETS for a in ARMS]
    order = [n for base in order for n in [base, *sorted(p.name for p in out.glob(f"{base}-*") if p.is_dir())]]
    for name in order:
        if (out / name / "bench.json").is_file():
            lines, figs = arm_table(out / name, name.replace("-", ", ", 1))
            summary += lines + [""]
            figures[name] = figs
    (out / "summary.md").write_text("\n".join(summary))
    (out / "summary.json").write_text(json.dumps(figures, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds per arm (default: 5)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--per-class", type=int, default=100, help="photos per class of either dataset (default: 100)")
    parser.add_argument("--validation", choices=("splits", "single"), default="splits",
                        help="the validation design (default: splits; see above)")
    parser.add_argument("--idx", type=Path, help="folder of Fashion-MNIST's idx files (default: Debian's)")
    parser.add_argument("--out", type=Path, default=Path("runs/real_photos"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every arm (as niwt --set; repeatable); give it a --tag")
    parser.add_argument("--tag", default="", help="suffix of the arms' run directories (e.g. for --set)")
    parser.add_argument("--one", nargs=2, metavar=("ARM", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    tag = ("" if args.validation == "splits" else f"-{args.validation}") + (f"-{args.tag}" if args.tag else "")
    if args.one:
        arm, dataset = args.one
        run_arm(arm, args.out / "data" / dataset, args.out / f"{dataset}-{arm}{tag}", args.seeds, args.validation,
                args.overrides)
        return 0
    for dataset in args.datasets:
        write_dataset(dataset, args.out / "data" / dataset, args.per_class, args.idx)
        for arm in args.arms:
            cmd = [sys.executable, __file__, "--one", arm, dataset, "--seeds", str(args.seeds), "--out", str(args.out),
                   "--validation", args.validation, *(f"--set={o}" for o in args.overrides),
                   *([f"--tag={args.tag}"] if args.tag else [])]
            print(f"{dataset} / {arm}{tag}: running ({args.seeds} seeds) ...", flush=True)
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            print("\n".join(arm_table(args.out / f"{dataset}-{arm}{tag}", f"{dataset}, {arm}{tag}")[0]) + "\n", flush=True)
    write_summary(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
