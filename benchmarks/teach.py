"""Teaching a finished run a class it never saw, against the same class as one of its own unseen classes.

For each kind of knowledge (``attributes``; ``text``, TF-IDF of the class descriptions) and each
withheld class c (``--classes``; default: the first two and the last unseen class of the demo's
shapes world; same seed throughout):

* run A: ``niwt run`` with the demo's config: c is one of the run's unseen classes;
* run B: the same with ``data.withhold = [c]``: the run never hears of c (its name, knowledge and images
  are left out of the dataset);
* B + c: run B taught c (``LoadedRun.teach``) from its attribute values, or from its descriptions;
* A - c + c: run A made to forget c and taught it again the same way: the teach alone, with every
  other row of the run as it was (in B + c the other unseen rows come from B's own transfer, which
  differs from A's by its random path and stopping step, so that comparison holds that difference too).

GZSL per-class accuracy on the full dataset's test images (every class's images; each run's own
calibration applied, as ``predict`` applies it): c in B + c against c in A, and every other class,
in B (before teaching: what leaving c out of the run's transfer moved) and in B + c.
The noise floor: run A's own transfer redrawn on three other random streams (the same classes, Λ,
learning rate and pool), and how far that alone moves each class's accuracy.
Timing: a full ``niwt run`` (A), ``load_run``, ``teach`` after the run is loaded, and ``predict`` per
image (one PNG at a time, and 64 at once), with their ratios to the full run, all in this process.

    python benchmarks/teach.py [--seed 0] [--classes NAME ...] [--kinds attributes text] [--quick] [--out runs/teach]
                               [--set KEY=VALUE]   # e.g. --set transfer.per_class=true
    python benchmarks/teach.py --floor RUN    # only the noise floor of a finished run, default and converged

``--quick`` runs a tiny world (a smoke test of the script, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

KINDS = ("attributes", "text")


OVERRIDES: list[str] = []
"""``--set KEY=VALUE`` overrides of every run's config (as ``niwt --set``)."""


def kind_config(kind: str, seed: int, quick: bool, withhold: tuple[str, ...] = ()):
    """The demo's config (or the tiny one) with ``kind`` knowledge, ``withhold`` left out and ``--set``."""
    from niwt.config import apply_overrides
    from niwt.pipeline.presets import demo_config, quick_config

    config = demo_config(seed)
    if quick:
        config = quick_config(config)
    config = apply_overrides(config, OVERRIDES)
    return replace(config, knowledge=replace(config.knowledge, source=kind),
                   data=replace(config.data, withhold=withhold))


def class_accuracy(run, data, images) -> dict[str, float]:
    """Per-class GZSL accuracy of ``run`` on ``data``'s test images of the classes it scores, with its
    calibration (subtracted from the seen rows' scores, as ``LoadedRun.predict`` does)."""
    idx = np.concatenate([data.test_seen_idx, data.test_unseen_idx])
    names = [data.class_names[c] for c in data.labels[idx]]
    rows = set(run.row_names)
    idx = np.array([i for i, n in zip(idx, names) if n in rows])
    with torch.no_grad():
        scores = torch.cat([run.model.eval()(images[idx[i : i + 256]]) for i in range(0, idx.size, 256)]).double()
    scores[:, : len(run.fit_classes)] -= run.calibration
    predicted = np.array(run.row_names)[scores.argmax(1).numpy()]
    truth = np.array([data.class_names[c] for c in data.labels[idx]])
    return {name: float(np.mean(predicted[truth == name] == name)) for name in sorted(set(truth))}


def harmonic(run, accuracy: dict[str, float]) -> tuple[float, float, float]:
    seen = [accuracy[run.class_names[c]] for c in run.fit_classes if run.class_names[c] in accuracy]
    unseen = [accuracy[run.class_names[c]] for c in run.new_classes if run.class_names[c] in accuracy]
    s, u = float(np.mean(seen)), float(np.mean(unseen))
    return s, u, 0.0 if s + u == 0 else 2 * s * u / (s + u)


def lesson(kind: str, data, name: str):
    from niwt.runs import Lesson

    c = data.class_names.index(name)
    if kind == "text":
        return Lesson(name, description=tuple(data.descriptions[c]))
    return Lesson(name, attributes=dict(zip(data.knowledge_names, data.knowledge[c].tolist())))


CONVERGED = {"patience": 300, "tol": 0.001, "max_steps": 3000}
"""A transfer run close to convergence: the noise floor's second variant (``--floor``)."""


def redrawn(run, stream: int, overrides: dict | None = None):
    """``run`` with its unseen rows learned again by its own transfer (same classes, Λ, lr, pool cache)
    on another random stream: how much the transfer alone moves the figures (the noise floor)."""
    import copy

    from niwt.config import to_dict
    from niwt.rundir.layout import POOL_CACHE
    from niwt.runs.teach import learn_rows
    from niwt.transfer import PoolCache

    record = json.loads((run.path / "transfer" / "history.json").read_text())
    rows = learn_rows(run.model, run.mapper, np.zeros((0, run.knowledge.shape[1])), run.knowledge[run.new_classes],
                      PoolCache.load(run.path / POOL_CACHE), lam=record["lam"], lr=record["lr"],
                      transfer={**to_dict(run.config.transfer), **(overrides or {})},
                      reduction=run.config.importance.reduction, seed=stream, names=list(run.row_names[len(run.fit_classes):]))
    model = copy.deepcopy(run.model)
    model.classifier.set_unseen(rows.weights)
    return replace(run, model=model.eval())


def noise_floor(run, data, images, streams: list[int], overrides: dict | None = None) -> dict:
    """How far the run's own transfer, redrawn on each of ``streams`` (seeds of its stream), moves each
    class's accuracy from the run's, and the H of each redraw."""
    base = class_accuracy(run, data, images)
    accs, hs = [], []
    for stream in streams:
        again = redrawn(run, stream, overrides)
        accs.append(class_accuracy(again, data, images))
        hs.append(harmonic(again, accs[-1])[2])
    table = np.array([[a[n] for n in base] for a in accs])
    moves = np.abs(table - np.array([base[n] for n in base]))
    spread = table.max(0) - table.min(0)  # per class, over the redraws
    return {"median_abs_move": float(np.median(moves)), "max_abs_move": float(moves.max()),
            "max_abs_move_per_stream": moves.max(1).tolist(), "max_spread": float(spread.max()),
            "median_spread": float(np.median(spread)), "H": hs, "overrides": overrides or {}}


def predict_seconds(run, data, images, folder: Path) -> tuple[float, float]:
    """Seconds per image of ``run.predict`` on PNG files: one file per call (16 calls), and 64 per call."""
    idx = data.test_unseen_idx[:64]
    paths = []
    for i, j in enumerate(idx):
        path = folder / f"{i:02d}.png"
        pixels = (images[j].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    run.predict(paths[:1])  # warm
    t0 = time.perf_counter()
    for p in paths[:16]:
        run.predict([p])
    one = (time.perf_counter() - t0) / 16
    t0 = time.perf_counter()
    run.predict(paths)
    return one, (time.perf_counter() - t0) / len(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", nargs="+", help="unseen classes withheld, one run each (default: the first two "
                        "and the last unseen class)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--quick", action="store_true", help="a tiny world: a smoke test, not a measurement")
    parser.add_argument("--out", type=Path, default=Path("runs/teach"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override of every run (as niwt --set; repeatable), e.g. transfer.per_class=true")
    parser.add_argument("--floor", type=Path, metavar="RUN",
                        help="only the noise floor of a finished run, on the run's own stream and three others, with "
                             "the run's transfer settings and run close to convergence (patience 300, tol 0.001)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    OVERRIDES[:] = args.overrides
    if args.floor:
        from niwt.runs import load_run

        run = load_run(args.floor)
        data, images = run.dataset()
        streams = [run.config.seed, *(10_000 + run.config.seed * 10 + k for k in range(1, 4))]
        floors = {name: noise_floor(run, data, images, streams, o) for name, o in (("run's", None), ("converged", CONVERGED))}
        for name, f in floors.items():
            print(f"{name} transfer on 4 streams: a class's accuracy spreads over {f['max_spread']:.3f} at most "
                  f"(max - min over the streams; median class {f['median_spread']:.3f}); H "
                  + ", ".join(f"{h:.3f}" for h in f["H"]))
        print(json.dumps(floors))
        return 0

    from niwt.config import resolve_config
    from niwt.data import open_dataset
    from niwt.pipeline.commands import run_to_dir
    from niwt.runs import load_run

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"seed": args.seed, "quick": args.quick, "overrides": args.overrides, "kinds": {}}
    lines = []
    for kind in args.kinds:
        full = resolve_config(kind_config(kind, args.seed, args.quick))
        data, images = open_dataset(full.data, feature_mode=False)
        t0 = time.perf_counter()
        run_to_dir(full, args.out / f"{kind}-A", force=True)
        run_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_a = load_run(args.out / f"{kind}-A")
        load_seconds = time.perf_counter() - t0
        acc_a = class_accuracy(run_a, data, images)
        with tempfile.TemporaryDirectory() as tmp:
            one, batched = predict_seconds(run_a, data, images, Path(tmp))
        record_floor = noise_floor(run_a, data, images, [10_000 + args.seed * 10 + k for k in range(1, 4)])
        record = {"noise_floor": record_floor, "run_seconds": run_seconds, "load_seconds": load_seconds, "predict_seconds_one": one,
                  "predict_seconds_per_image_of_64": batched, "A": dict(zip("SUH", harmonic(run_a, acc_a))),
                  "classes": {}}
        lines += [f"## {kind} knowledge (seed {args.seed})", "",
                  f"full `niwt run` {run_seconds:.1f} s; `load_run` {load_seconds:.2f} s; `predict` {one * 1000:.1f} ms "
                  f"per image one at a time ({one / run_seconds:.1e} of the run), {batched * 1000:.1f} ms per image "
                  f"64 at a time", "",
                  f"the run's own transfer redrawn on 3 other random streams (same classes, Λ, lr, pool): a class's "
                  f"accuracy moves by {record_floor['median_abs_move']:.3f} (median over classes and streams), at most "
                  f"{record_floor['max_abs_move']:.3f} (the largest per stream: "
                  + ", ".join(f"{m:.3f}" for m in record_floor["max_abs_move_per_stream"]) + ")", "",
                  "| withheld class c | teach (s) | teach / full run | acc. of c in A | acc. of c in B + c | "
                  "largest move of another class: B | B + c | S, U, H of A | S, U, H of B + c |",
                  "|---|---|---|---|---|---|---|---|---|"]
        again_lines = ["", "A - c + c (forgotten and taught again; every other row as in A):", "",
                       "| class c | acc. of c in A | acc. of c in A - c + c | largest move of another class | "
                       "S, U, H of A - c + c |", "|---|---|---|---|---|"]
        unseen = [data.class_names[c] for c in data.unseen_classes]
        for name in args.classes or list(dict.fromkeys([*unseen[:2], unseen[-1]])):
            out_b = args.out / f"{kind}-B-{name}"
            run_to_dir(resolve_config(kind_config(kind, args.seed, args.quick, (name,))), out_b, force=True)
            run_b = load_run(out_b)
            acc_before = class_accuracy(run_b, data, images)
            moved = {n: acc_before[n] - acc_a[n] for n in acc_before}
            worst_before = max(moved, key=lambda n: abs(moved[n]))
            t0 = time.perf_counter()
            taught = run_b.teach(lesson(kind, data, name))
            teach_seconds = time.perf_counter() - t0
            taught.save(args.out / f"{kind}-B-{name}-taught", force=True)
            acc_b = class_accuracy(taught, data, images)
            others = {n: acc_b[n] - acc_a[n] for n in acc_a if n != name}
            worst = max(others, key=lambda n: abs(others[n]))
            sa, sb = harmonic(run_a, acc_a), harmonic(taught, acc_b)
            record["classes"][name] = {"teach_seconds": teach_seconds, "steps": taught.events[-1].steps,
                                       "accuracy_A": acc_a[name], "accuracy_taught": acc_b[name],
                                       "other_classes_change": others, "taught": dict(zip("SUH", sb)),
                                       "other_classes_change_before_teaching": moved, "lam": taught.events[-1].lam}
            again = run_a.forget(name).teach(lesson(kind, data, name))
            acc_again = class_accuracy(again, data, images)
            others_again = {n: acc_again[n] - acc_a[n] for n in acc_a if n != name}
            worst_again = max(others_again, key=lambda n: abs(others_again[n]))
            record["classes"][name].update(accuracy_retaught=acc_again[name], other_classes_change_retaught=others_again,
                                           retaught=dict(zip("SUH", harmonic(again, acc_again))))
            again_lines.append(f"| {name} | {acc_a[name]:.3f} | {acc_again[name]:.3f} ({acc_again[name] - acc_a[name]:+.3f}) "
                               f"| {worst_again} {others_again[worst_again]:+.3f} | "
                               + ", ".join(f"{v:.3f}" for v in harmonic(again, acc_again)) + " |")
            lines.append(f"| {name} | {teach_seconds:.2f} ({taught.events[-1].steps} steps) | "
                         f"{teach_seconds / run_seconds:.1e} | {acc_a[name]:.3f} | {acc_b[name]:.3f} "
                         f"({acc_b[name] - acc_a[name]:+.3f}) | {worst_before} {moved[worst_before]:+.3f} | "
                         f"{worst} {others[worst]:+.3f} | "
                         + ", ".join(f"{v:.3f}" for v in sa) + " | " + ", ".join(f"{v:.3f}" for v in sb) + " |")
        lines += again_lines + [""]
        results["kinds"][kind] = record
        print("\n".join(lines), flush=True)
    (args.out / "teach.md").write_text("\n".join(lines) + "\n")
    (args.out / "teach.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out / 'teach.md'} and teach.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
