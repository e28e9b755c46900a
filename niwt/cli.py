"""The ``niwt`` command line: argument parsing only; the work is in :mod:`niwt.pipeline` (a new
run), :mod:`niwt.runs` (a finished run) and :mod:`niwt.report`.

Nothing heavy is imported before a command runs: ``niwt --help`` and every ``niwt COMMAND --help``
read only the standard library and a few of niwt's modules that import no torch (the choice lists
they show come from those, or are checked against their declarations by the tests).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from niwt.baselines import BASELINE_NAMES
from niwt.device import DEVICES
from niwt.errors import ConfigError, NIWTError
from niwt.rundir import layout

__all__ = ["get_args_parser", "main"]

_METHODS_HELP = f"niwt, niwt-bal, {', '.join(BASELINE_NAMES)}"
"""The methods of ``compare`` (``niwt.config.METHOD_NAMES``; a test holds the two equal)."""

_FORMATS_HELP = "xlsa17, awa2, cub or folder"
"""The file formats of ``data inspect`` (``niwt.data.registry.FORMATS``; a test holds the two equal)."""

_TRAINING = ("demo", "run", "compare", "sweep-lambda", "reproduce", "ablate")
"""The commands that make a new run (the others read a finished one, or a dataset)."""

_SWEEP_HELP = "0,1e-05,0.0001,0.0003,0.001,0.003,0.01"
"""The Λ values of ``sweep-lambda`` (``niwt.pipeline.experiments.DEFAULT_SWEEP``; a test holds the two equal)."""


def _debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` after the command too (the top-level flag's value stands when it is not given here)."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the traceback of an error")


def _common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help=f"run directory to write (default: {default_out})")
    parser.add_argument("--force", action="store_true", help="replace the output directory if it holds a complete niwt run (never anything else)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("--device", choices=DEVICES, help="where to compute: auto (a CUDA GPU when torch sees "
                        "one, else the CPU), cpu or cuda; sets runtime.device (default: the config's, auto)")


def _resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run aimed at --out from its last finished step (stages whose "
                        "config or inputs changed are recomputed), or rerun only the changed stages of the "
                        "complete run there")


def _config_args(parser: argparse.ArgumentParser, optional: bool, default: str = "the demo's settings") -> None:
    if optional:
        parser.add_argument("config", type=Path, nargs="?", help=f"TOML config file (default: {default})")
    else:
        parser.add_argument("config", type=Path, help="TOML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field by its dotted name (repeatable), value parsed as TOML, "
                        "e.g. --set transfer.lam=1e-4")
    parser.add_argument("--quick", action="store_true", help="a tiny world and short training (a smoke run)")


def get_args_parser() -> argparse.ArgumentParser:
    """The parser of the ``niwt`` command (returned so that scripts can extend it)."""
    parser = argparse.ArgumentParser(
        prog="niwt",
        description="NIWT: teach a trained image classifier classes it has never seen a picture of, "
        "from their descriptions (generalized zero-shot learning), compare it with baselines, and evaluate it.",
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="NIWT and the baselines end to end on the embedded shapes world",
                          description="Generate the shapes world, pre-train and train a backbone, choose every "
                          "method's hyper-parameters (NIWT's Λ included) on validation classes, transfer the unseen "
                          f"classes, and print the GZSL table (S, U, H, ZSL, AUSUC). Writes {layout.METRICS}, "
                          f"{layout.CONFIG}, {layout.VERSIONS} and the weights to --out.")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the whole run (default: 0)")
    _common(demo, "runs/demo")
    _resume(demo)
    run = sub.add_parser("run", help="the NIWT pipeline from a TOML config file",
                         description="Run NIWT from CONFIG (TOML; every key optional, unknown keys and wrong types "
                         "rejected). --set overrides any field by its dotted name, e.g. --set transfer.lam=1e-4 "
                         "--set model.arch=resnet.")
    _config_args(run, optional=False)
    _common(run, "runs/run")
    _resume(run)
    comp = sub.add_parser("compare", help="NIWT, ALE, DEM, ESZSL and SAE side by side over several seeds",
                          description="All methods on the same backbone features and splits, hyper-parameters "
                          "chosen on validation classes, mean ± std over seeds, and every pair's difference in H "
                          f"paired over seeds with a bootstrap 95% interval; writes {layout.METRICS} with "
                          "methods.<name>.{seen_acc, unseen_acc, H, zsl_acc, ausuc} and <key>_std, and the "
                          "per-seed values. Without CONFIG: the comparison world (more images than the demo's).")
    _config_args(comp, optional=True, default="the comparison world")
    comp.add_argument("--seeds", type=int, help="number of seeds (default: compare.seeds of the config)")
    comp.add_argument("--methods", help=f"comma-separated subset of: {_METHODS_HELP}")
    _common(comp, "runs/compare")
    _resume(comp)
    sweep = sub.add_parser("sweep-lambda", help="seen / unseen accuracy against Λ (table and PNG plot)",
                           description="The paper's regularisation study on the test images of the shapes world: "
                           f"S, U and H against Λ on a log scale, written as a table and {layout.LAMBDA_SWEEP}. "
                           "An analysis only: the pipeline itself chooses Λ on validation classes.")
    _config_args(sweep, optional=True)
    sweep.add_argument("--lams", help=f"comma-separated Λ values (default: {_SWEEP_HELP})")
    _common(sweep, "runs/sweep-lambda")
    repro = sub.add_parser("reproduce", help="the paper's claims tested over seeds, with a verdict each",
                           description="NIWT against ALE and DEM, finetuned against fixed, attributes against text "
                           "and the Λ trade-off, each as a paired difference over seeds with a bootstrap 95% "
                           "interval and a verdict (holds / does not hold / inconclusive), the paper's finding "
                           f"beside; writes the claims table to {layout.METRICS} and {layout.LAMBDA_CURVE}. Without "
                           "CONFIG: the comparison world.")
    _config_args(repro, optional=True, default="the comparison world")
    repro.add_argument("--seeds", type=int, help="number of seeds (default: 4)")
    _common(repro, "runs/reproduce")
    _resume(repro)
    abl = sub.add_parser("ablate", help="NIWT with one design choice changed at a time, over seeds",
                         description="The transfer pool, the importance layer, sum vs mean reduction, linear vs "
                         "MLP knowledge map and the start of the unseen rows, each changed alone and compared with "
                         "the paper's choice in H, paired over seeds with a bootstrap 95% interval, on the same "
                         "trained backbones. Without CONFIG: the demo's world.")
    _config_args(abl, optional=True)
    abl.add_argument("--seeds", type=int, help="number of seeds (default: compare.seeds of the config)")
    _common(abl, "runs/ablate")
    _resume(abl)
    adop = sub.add_parser("adopt", help="a classifier you trained, head included, as a niwt run: nothing retrained",
                          description="Take a trained torchvision or timm classifier as it is (ARCH a torchvision "
                          "name such as resnet50, or timm/<name>; --weights its state dict or safetensors file, "
                          "classifier included) with a folder dataset of its classes (--data: classes.csv and one "
                          "image folder per class; its seen classes are the classifier's outputs, in the table's "
                          "order or as an `index` column says; unseen classes are described only). Nothing is "
                          "trained: the importances, the maps and the unseen rows are computed, Λ and the "
                          "calibration constant chosen inside the network by holding out seen rows, and the run "
                          f"written to --out for predict, teach, explain, report and serve. Writes {layout.METRICS}.")
    adop.add_argument("arch", help="the classifier's architecture: a torchvision name (resnet18 ... resnet152, "
                      "vgg11 ... vgg19_bn) or timm/<name>")
    adop.add_argument("--weights", required=True, type=Path, help="its weights file, classifier included "
                      "(safetensors, or torch.save(model.state_dict(), FILE))")
    adop.add_argument("--data", required=True, type=Path, help="folder dataset of its classes (classes.csv with "
                      "class, split, [index,] attributes and/or description; one image folder per class)")
    adop.add_argument("--layer", default="", help="importance layer (default: the architecture's)")
    adop.add_argument("--methods", default="niwt", help=f"comma-separated subset of: {_METHODS_HELP} "
                      "(baselines fitted on the adopted network's features; default: niwt)")
    adop.add_argument("--seeds", type=int, default=1, help="seeds (each draws its own validation classes; default: 1)")
    adop.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field (repeatable), e.g. --set data.crop=64")
    _common(adop, "runs/adopted")
    expl = sub.add_parser("explain", help="why the run's model called an image what it did: overlay and words",
                          description="For each IMAGE (PNG or JPEG, prepared as the run's images were) or, with no "
                          "image, a sample of the run's unseen test images: the prediction, a Grad-CAM overlay "
                          "(PNG) and the top knowledge dimensions behind it (through the inverse map); "
                          f"{layout.EXPLANATIONS} beside the PNGs.")
    expl.add_argument("run", type=Path, help="a run directory of niwt run / demo / compare")
    expl.add_argument("images", type=Path, nargs="*", help="image files (default: a sample of test images)")
    expl.add_argument("--class", dest="class_name", help="explain this class instead of the prediction")
    expl.add_argument("--top-k", type=int, default=5, help="knowledge dimensions per explanation (default: 5)")
    expl.add_argument("--n", type=int, default=8, help="test images explained when no image is given (default: 8)")
    expl.add_argument("--out", type=Path, help="where to write (default: RUN/explain; earlier explanations there "
                      "are kept, an image explained again for the same class is replaced)")
    expl.add_argument("--quiet", action="store_true", help="warnings only")
    pred = sub.add_parser("predict", help="the classes a run's model gives your images, with probabilities",
                          description="For each IMAGE (PNG or JPEG of any size and mode, prepared as the run's "
                          "images were): the top-K classes over every class the run knows, unseen ones included, "
                          "with their probabilities (after the run's calibration, when it has one).")
    pred.add_argument("run", type=Path, help="a run directory of niwt run / demo / compare")
    pred.add_argument("images", type=Path, nargs="+", help="image files")
    pred.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")
    pred.add_argument("--explain", action="store_true",
                      help="also the Grad-CAM overlay and the words behind the top class (as niwt explain)")
    pred.add_argument("--out", type=Path, help="where --explain writes (default: RUN/explain)")
    pred.add_argument("--json", action="store_true", help="print JSON instead of lines")
    pred.add_argument("--quiet", action="store_true", help="warnings only")
    teach = sub.add_parser("teach", help="teach a finished run new classes from a description, in seconds",
                           description="Add each class NAME to RUN from its description (a run with text "
                           "knowledge) or its attribute values (a run with attribute knowledge), encoded as the "
                           "run's own classes were; its classifier row is learned from the transfer pool's cache "
                           "the run kept, at the run's chosen lambda and learning rate (no dataset, no training). "
                           "Several classes: repeat --name with one --description (or --attributes) each, in the "
                           "same order. Writes a new run (RUN-taught beside RUN, or --out) unless --in-place.")
    teach.add_argument("run", type=Path, help="a run directory of niwt run / demo / compare")
    teach.add_argument("--name", action="append", required=True, help="the new class's name (repeatable)")
    told = teach.add_mutually_exclusive_group(required=True)
    told.add_argument("--description", action="append", help="its description, in words (repeatable)")
    told.add_argument("--attributes", action="append", metavar="NAME=VALUE,...",
                      help="its attribute values; attributes not named are 0 (repeatable)")
    _rewrite_args(teach)
    forget = sub.add_parser("forget", help="take classes out of a run: taught ones, or its own unseen ones",
                            description="Remove the classifier row of each class NAME (a taught class, or one of "
                            "the run's unseen classes; seen classes were trained on their images and stay). Writes "
                            "a new run (RUN-taught beside RUN, or --out) unless --in-place.")
    forget.add_argument("run", type=Path, help="a run directory")
    forget.add_argument("--name", action="append", required=True, help="the class to forget (repeatable)")
    _rewrite_args(forget)
    names = sub.add_parser("names", help="the neuron-name table of a run",
                           description="For each channel of the importance layer, the knowledge dimensions its "
                           "one-hot importance maps to through the inverse map (the paper's neuron names).")
    names.add_argument("run", type=Path, help="a run directory")
    names.add_argument("--top-k", type=int, default=3, help="names per neuron (default: 3)")
    names.add_argument("--quiet", action="store_true", help="warnings only")
    rep = sub.add_parser("report", help=f"RUN/{layout.REPORT}: tables, plots, explained images, neuron names",
                         description="Write one self-contained HTML page into the run directory: the GZSL table, "
                         "the run's plots, a gallery of unseen test images with prediction, overlay and "
                         "explanation, what each unseen class was told, the neuron names and, on the shapes "
                         "world, the fidelity of the explanations against the truth and random baselines.")
    rep.add_argument("run", type=Path, help="a run directory")
    rep.add_argument("--quiet", action="store_true", help="warnings only")
    srv = sub.add_parser("serve", help="a local page on a run: drop photos, see what it says and why, teach it a class",
                         description="Start a local web server on RUN and print the page's URL. On the page: drop "
                         "or choose images (PNG or JPEG) to see their top classes (seen, unseen and taught marked "
                         "apart), the Grad-CAM map of any of them, the words behind it and the most important "
                         "neurons; teach a class from a description (or attribute values) and forget one, as niwt "
                         "teach and niwt forget do; each change is saved as a run directory (a new run beside RUN "
                         "unless --in-place). The URL holds a secret token made at each start: every request "
                         "without it is refused. Nothing is loaded from the internet.")
    srv.add_argument("run", type=Path, help="a run directory of niwt run / demo / compare")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                     "only; another one is warned about)")
    srv.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0: any free port)")
    srv.add_argument("--open", action="store_true", help="open the page in the default browser")
    srv.add_argument("--in-place", action="store_true", help="save each change into RUN itself (default: a new run "
                     "beside it, RUN-taught, which later changes of the session replace)")
    srv.add_argument("--quiet", action="store_true", help="warnings only")
    exp = sub.add_parser("export-features", help="a run's backbone features as xlsa17 res101.mat + att_splits.mat",
                         description="Write the penultimate features of RUN's trained model for every image of its "
                         "dataset as an xlsa17-style res101.mat and att_splits.mat in OUT (the same fields and "
                         "1-based index conventions), so other GZSL codebases can use fine-tuned features.")
    exp.add_argument("run", type=Path, help="a run directory of niwt run / demo / compare")
    exp.add_argument("out", type=Path, help="folder for the two files (new, or holding only a previous export)")
    exp.add_argument("--quiet", action="store_true", help="warnings only")
    data = sub.add_parser("data", help="datasets: inspect a folder in one of the supported formats",
                          description="Tools for datasets on disk.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    insp = data_sub.add_parser("inspect", help="detect the format and report classes, splits and problems",
                               description=f"Detect the dataset format of PATH ({_FORMATS_HELP}), print "
                               "its classes, knowledge dimensions and split sizes, and every problem found "
                               "(missing or unreadable images, classes without knowledge rows, unseen classes "
                               "with training images). Counts the files cannot tell are shown as ?/null. Exits "
                               "with 1 when it finds a problem.")
    insp.add_argument("path", type=Path, help="the dataset folder")
    insp.add_argument("--format", help=f"skip detection: {_FORMATS_HELP}")
    insp.add_argument("--split-dir", type=Path, help="folder with the xlsa17 split files (for awa2 / cub)")
    insp.add_argument("--no-image-check", action="store_true", help="do not open the images (faster)")
    insp.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    ex = data_sub.add_parser("example", help="write a small dataset in the own-classes folder format",
                             description="Render a few shapes-world classes as PNG files, one sub-folder per class, "
                             "with the classes.csv the folder format needs (split, attribute columns, "
                             "description): a layout to copy, and a dataset to try configs/folder_example.toml on.")
    ex.add_argument("out", type=Path, help="a new (or empty) folder")
    conf = sub.add_parser("config", help="every config key with its value and help",
                          description="Print every key of a run config, grouped by section, with its value (the "
                          "defaults, or CONFIG's with --set applied) and what it does. The output is valid TOML.")
    _config_args(conf, optional=True)
    for command in sub.choices.values():
        _debug(command)
    for command in data_sub.choices.values():
        _debug(command)
    return parser


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def _env_rank() -> int:
    """This process's rank under torchrun (0 otherwise): only rank 0 reports and shows progress."""
    from niwt.distributed import env_rank

    return env_rank()


def _report(command: str, result: object, out: str, seconds: float) -> None:
    if _env_rank() > 0:
        return
    from niwt.results import (
        Ablation,
        Comparison,
        Reproduction,
        Sweep,
        format_ablation,
        format_reproduction,
        format_sweep,
        format_table,
    )

    if isinstance(result, Ablation):
        sys.stdout.write(format_ablation(result) + "\n")
    elif isinstance(result, Sweep):
        sys.stdout.write(format_sweep(result) + "\n" + f"Plot: {out}/{layout.LAMBDA_SWEEP}\n")
    elif isinstance(result, Reproduction):
        sys.stdout.write(format_reproduction(result) + "\n" + f"Plot: {out}/{layout.LAMBDA_CURVE}\n")
    elif isinstance(result, Comparison):
        sys.stdout.write(format_table(result) + "\n")
    sys.stdout.write(f"Wrote {out}/{layout.METRICS} in {seconds:.0f} s.\n")


def _parse_floats(text: str, name: str) -> tuple[float, ...]:
    values = []
    for item in text.split(","):
        try:
            values.append(float(item))
            if not math.isfinite(values[-1]):
                raise ValueError(item)
        except ValueError:
            raise ConfigError(f"`{name}` must be comma-separated numbers, got {item.strip()!r} in {text!r}") from None
    return tuple(values)


def _load(args: argparse.Namespace):
    from niwt.config import RunConfig, apply_overrides, load_config
    from niwt.pipeline.presets import comparison_config, demo_config, quick_config

    if args.config is not None:
        config = load_config(args.config, RunConfig)
    elif args.command in ("compare", "reproduce"):
        config = comparison_config()
    else:
        config = demo_config()
    if getattr(args, "quick", False):
        config = quick_config(config)
    return _with_device(apply_overrides(config, args.overrides), args)


def _with_device(config, args: argparse.Namespace):
    """``config`` with ``--device`` (when given) as its ``runtime.device``."""
    from dataclasses import replace

    device = getattr(args, "device", None)
    return config if device is None else replace(config, runtime=replace(config.runtime, device=device))


def _process_group(args: argparse.Namespace):
    """Under torchrun, the process group of the run commands (:mod:`niwt.distributed`); else nothing."""
    import contextlib

    if args.command not in _TRAINING:
        return contextlib.nullcontext()
    from niwt import distributed

    if distributed.env_world_size() <= 1:
        return contextlib.nullcontext()
    from niwt.device import resolve_device
    from niwt.pipeline.presets import demo_config

    config = _with_device(demo_config(), args) if args.command == "demo" else _load(args)
    return distributed.process_group(resolve_device(config.runtime.device))


def _run(args: argparse.Namespace) -> int:
    if args.command == "config":
        from niwt.config import describe_config

        sys.stdout.write(describe_config(_load(args)))
        return 0
    handler = {"explain": _explain, "names": _names, "report": _report_command, "predict": _predict,
               "teach": _teach, "forget": _teach, "export-features": _export, "data": _data,
               "serve": _serve, "adopt": _adopt}.get(args.command)
    if handler is not None:
        return handler(args)
    return _train(args)


def _train(args: argparse.Namespace) -> int:
    """``demo``, ``run``, ``compare``, ``sweep-lambda``, ``reproduce``, ``ablate``: a new run."""
    from dataclasses import replace

    from niwt.pipeline import commands, experiments, presets

    progress = not args.quiet and _env_rank() == 0
    resume = getattr(args, "resume", False)
    start = time.perf_counter()
    if args.command == "demo":
        config = _with_device(replace(presets.demo_config(), seed=args.seed), args)
        result = experiments.compare(config, args.out, force=args.force, progress=progress, seeds=1,
                                     command="demo", resume=resume)
    elif args.command == "run":
        result = commands.run_to_dir(_load(args), args.out, force=args.force, progress=progress, resume=resume)
    elif args.command == "compare":
        methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods else None
        if methods is not None:
            experiments.check_methods(methods)
        result = experiments.compare(_load(args), args.out, force=args.force, progress=progress,
                                     seeds=args.seeds, methods=methods, resume=resume)
    elif args.command == "sweep-lambda":
        lams = _parse_floats(args.lams, "--lams") if args.lams is not None else experiments.DEFAULT_SWEEP
        result = experiments.sweep_lambda(_load(args), args.out, force=args.force, progress=progress, lams=lams)
    elif args.command == "ablate":
        result = experiments.ablate(_load(args), args.out, force=args.force, progress=progress, seeds=args.seeds,
                                    resume=resume)
    else:
        result = experiments.reproduce(_load(args), args.out, force=args.force, progress=progress, seeds=args.seeds,
                                       resume=resume)
    _report(args.command, result, args.out, time.perf_counter() - start)
    return 0


def _adopt(args: argparse.Namespace) -> int:
    from niwt.pipeline.adoption import adopt

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    overrides = list(args.overrides)
    if args.device is not None:
        overrides.append(f'runtime.device="{args.device}"')
    start = time.perf_counter()
    result = adopt(args.arch, args.data, args.out, weights=args.weights, layer=args.layer, methods=methods,
                   seeds=_at_least_one(args.seeds, "--seeds"), overrides=overrides, force=args.force,
                   progress=not args.quiet)
    _report(args.command, result, args.out, time.perf_counter() - start)
    return 0


def _at_least_one(value: int, flag: str) -> int:
    if value < 1:
        raise ConfigError(f"{flag} must be an integer >= 1, got {value}")
    return value


def _shown(name: str) -> str:
    """A class name as the lines of ``predict`` show it: quoted when it holds blanks, commas or quotes."""
    return name if name and not any(c.isspace() or c in ",'\"" for c in name) else repr(name)


def _predict(args: argparse.Namespace) -> int:
    from niwt.report import run_report
    from niwt.runs import load_run

    _at_least_one(args.top_k, "--top-k")
    if args.out is not None and not args.explain:
        raise ConfigError("--out says where --explain writes its overlays: give --explain too, or leave --out out")
    run = load_run(args.run)
    out = args.out if args.out is not None else run.path / layout.EXPLAIN
    if args.explain:
        run_report.check_explain_dir(out, run)  # before any work
    predictions = run.predict(list(args.images), top_k=args.top_k)
    explained = []
    if args.explain:
        images = run.load_images(list(args.images))
        for i, (path, p) in enumerate(zip(args.images, predictions)):  # each image's top class, calibrated
            explained += run_report.explain_images_of_run(run, images[i : i + 1], [str(path)], out,
                                                          class_name=p.classes[0], command="predict")
    if args.json:
        rows = [p.to_dict() for p in predictions]
        for row, record in zip(rows, explained):
            row["explanation"] = record.to_dict()
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    for i, p in enumerate(predictions):
        ranked = ", ".join(f"{_shown(c)} {q:.3f}" for c, q in zip(p.classes, p.probabilities))
        sys.stdout.write(f"{p.source}: {ranked}\n")
        if i < len(explained):
            r = explained[i]
            terms = ", ".join(t.name for t in r.explanation.terms)
            sys.stdout.write(f"  {_shown(r.predicted)} because of {terms}; overlay {out / r.overlay}\n")
    return 0


def _rewrite_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="the new run directory (default: RUN-taught beside RUN)")
    where.add_argument("--in-place", action="store_true", help="replace RUN itself (what was written about it, "
                       "its report and explanations, is kept)")
    parser.add_argument("--force", action="store_true", help="replace a niwt run at --out")
    parser.add_argument("--quiet", action="store_true", help="warnings only")


def _lessons(args: argparse.Namespace, run) -> list:
    """The classes ``teach`` was given, checked before any work."""
    from niwt.runs import Lesson
    from niwt.runs.teach import parse_attributes

    told = args.description if args.description is not None else args.attributes
    flag = "--description" if args.description is not None else "--attributes"
    if len(told) != len(args.name):
        raise ConfigError(f"{len(args.name)} --name but {len(told)} {flag}: give one {flag} per --name, in the "
                          "same order")
    names = run.encoder.names if run.encoder is not None and run.encoder.source == "attributes" else ()
    return [Lesson(name, description=text) if args.description is not None
            else Lesson(name, attributes=parse_attributes(text, names)) for name, text in zip(args.name, told)]


def _teach(args: argparse.Namespace) -> int:
    """``teach`` and ``forget``: every input and the output folder checked before any work."""
    from niwt.rundir import owned_outputs
    from niwt.runs import load_run

    run = load_run(args.run)
    lessons = _lessons(args, run) if args.command == "teach" else []
    target = run.save_target(args.out, in_place=args.in_place, force=args.force)
    kept = sorted(owned_outputs(run.path) - {layout.OUTPUTS}) if args.in_place else []
    start = time.perf_counter()
    changed = run.teach(lessons) if args.command == "teach" else run.forget(args.name)
    seconds = time.perf_counter() - start
    saved = changed.save(None if args.in_place else target, in_place=args.in_place, force=args.force)
    event = saved.events[-1]
    if args.command == "teach":
        sys.stdout.write(f"Taught {', '.join(event.classes)} in {seconds:.2f} s ({event.steps} transfer steps, "
                         f"{event.seconds:.2f} s; Λ = {event.lam:g}, lr = {event.lr:g}).\n")
    else:
        sys.stdout.write(f"Forgot {', '.join(event.classes)}.\n")
    sys.stdout.write(f"Wrote {saved.path}: {len(saved.row_names)} classes ({len(saved.fit_classes)} seen, "
                     f"{len(saved.new_classes)} unseen, {len(saved.taught_classes)} of them taught).\n")
    if kept:
        sys.stdout.write(f"Kept the {len(kept)} file(s) written about the run ({_about_summary(kept)}); they describe "
                         f"it as it was before this change: `niwt report {args.run}` writes the report anew.\n")
    return 0


def _about_summary(names: list[str]) -> str:
    """``report.html, plots/ (3), explain/ (5)``: the places of files written about a run."""
    top: dict[str, int] = {}
    for name in names:
        key = name.split("/", 1)[0] + ("/" if "/" in name else "")
        top[key] = top.get(key, 0) + 1
    return ", ".join(k if n == 1 and not k.endswith("/") else f"{k} ({n})" for k, n in top.items())


def _explain(args: argparse.Namespace) -> int:
    from niwt.report import run_report
    from niwt.runs import load_run

    _at_least_one(args.top_k, "--top-k")
    _at_least_one(args.n, "--n")
    run = load_run(args.run)
    out = args.out if args.out is not None else run.path / layout.EXPLAIN
    run_report.check_explain_dir(out, run)  # before any work
    records = run_report.explain_run(run, list(args.images), out, class_name=args.class_name, top_k=args.top_k,
                                     n=args.n)
    for r in records:
        terms = ", ".join(f"{t['name']} ({t['score']:.2f})" for t in r.to_dict()["terms"])
        truth = f" (true: {r.true_class})" if r.true_class else ""
        sys.stdout.write(f"{r.source}{truth}: predicted {r.predicted}; {r.explained} because of {terms}\n")
    sys.stdout.write(f"Overlays and {layout.EXPLANATIONS} in {out}\n")
    return 0


def _names(args: argparse.Namespace) -> int:
    from niwt.explain.names import format_neuron_names
    from niwt.report import run_report
    from niwt.runs import load_run

    _at_least_one(args.top_k, "--top-k")
    run = load_run(args.run)
    sys.stdout.write(format_neuron_names(run_report.neuron_names(run, args.top_k)) + "\n")
    return 0


def _report_command(args: argparse.Namespace) -> int:
    from niwt.report import run_report
    from niwt.runs import load_run

    path = run_report.write_report(load_run(args.run))
    sys.stdout.write(f"Report: {path}\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from niwt.serve.server import ServeOptions, serve

    return serve(args.run, ServeOptions(host=args.host, port=args.port, in_place=args.in_place,
                                        open_browser=args.open))


def _export(args: argparse.Namespace) -> int:
    from niwt.runs.export import export_main

    sys.stdout.write(export_main(args.run, args.out) + "\n")
    return 0


def _data(args: argparse.Namespace) -> int:
    if args.data_command == "example":
        from niwt.data.example import write_example_folder

        out = write_example_folder(args.out)
        sys.stdout.write(f"Wrote an example folder dataset to {out} (classes.csv and one folder of PNGs per class)\n")
        return 0
    from niwt.data.inspect import inspect_dataset

    report = inspect_dataset(args.path, format=args.format, check_images=not args.no_image_check,
                             split_dir=args.split_dir)
    sys.stdout.write((json.dumps(report.to_dict(), indent=2) if args.json else report.format_text()) + "\n")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``niwt`` console script.

    Exit status: 0 on success, 2 for an input error (bad config, data or arguments: the message
    names the file or field), 1 for an internal error, 130 when interrupted. No traceback is
    printed unless ``--debug`` is given.
    """
    args = get_args_parser().parse_args(argv)
    _setup_logging(getattr(args, "quiet", False) or getattr(args, "json", False) or _env_rank() > 0)
    if _env_rank() > 0:  # under torchrun rank 0 reports; the others would repeat its warnings
        import warnings

        warnings.simplefilter("ignore")
    try:
        with _process_group(args):
            return _run(args)
    except NIWTError as err:
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"niwt: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("niwt: interrupted\n")
        return 130
    except Exception as err:  # noqa: BLE001 - the command line's last resort: one line, not a traceback
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"niwt: internal error: {type(err).__name__}: {err}\n"
                         "niwt: this is a bug in niwt, not in your input; rerun with --debug for the traceback "
                         "and report it\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
