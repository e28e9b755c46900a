"""The ``niwt`` command line: argument parsing only; the work is in :mod:`niwt.pipeline`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from niwt.errors import NIWTError

__all__ = ["get_args_parser", "main", "format_table"]

COLUMNS = (("seen_acc", "S"), ("unseen_acc", "U"), ("H", "H"), ("zsl_acc", "ZSL"), ("ausuc", "AUSUC"))


def format_table(methods: dict[str, dict[str, float]]) -> str:
    """A plain-text table of methods x (S, U, H, ZSL, AUSUC), with ``+-`` std where present."""
    header = f"{'method':<10}" + "".join(f"{name:>16}" for _, name in COLUMNS)
    lines = [header, "-" * len(header)]
    for method, m in methods.items():
        cells = []
        for key, _ in COLUMNS:
            if key not in m:
                cells.append(f"{'-':>16}")
            elif f"{key}_std" in m:
                cells.append(f"{m[key]:>9.3f} ±{m[key + '_std']:.3f}")
            else:
                cells.append(f"{m[key]:>16.3f}")
        lines.append(f"{method:<10}" + "".join(cells))
    return "\n".join(lines)


def _common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help=f"run directory to write (default: {default_out})")
    parser.add_argument("--force", action="store_true", help="replace the output directory if it already holds a run")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def get_args_parser() -> argparse.ArgumentParser:
    """The parser of the ``niwt`` command (returned so that scripts can extend it)."""
    parser = argparse.ArgumentParser(
        prog="niwt",
        description="NIWT: teach a trained image classifier classes it has never seen a picture of, "
        "from their descriptions (generalized zero-shot learning), and evaluate it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run NIWT end to end on the embedded shapes world",
                          description="Generate the shapes world, pre-train and train a backbone, choose Λ on "
                          "validation classes, transfer the unseen classes, and print the GZSL table. Writes "
                          "metrics.json, config.toml, versions.json and the weights to --out.")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the whole run (default: 0)")
    _common(demo, "runs/demo")
    run = sub.add_parser("run", help="run the NIWT pipeline from a TOML config file",
                         description="Run the pipeline from CONFIG (TOML; every key optional, unknown keys and "
                         "wrong types rejected). --set overrides any field by its dotted name, e.g. "
                         "--set transfer.lam=1e-4 --set model.arch=resnet.")
    run.add_argument("config", type=Path, help="TOML config file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field (repeatable), value parsed as TOML")
    _common(run, "runs/run")
    return parser


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def _report(result: dict[str, Any], out: str, seconds: float) -> None:
    sys.stdout.write(format_table(result["methods"]) + "\n")
    sel = result.get("selection", {})
    if sel.get("validated"):
        sys.stdout.write(f"Λ = {sel['lam']:g}, lr = {sel['lr']:g} chosen on validation classes "
                         f"(grid of {len(sel['grid'])}).\n")
    sys.stdout.write(f"Wrote {out}/metrics.json in {seconds:.0f} s.\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``niwt`` console script."""
    args = get_args_parser().parse_args(argv)
    _setup_logging(args.quiet)
    try:
        from dataclasses import replace

        from niwt import pipeline
        from niwt.config import RunConfig, apply_overrides, load_config

        start = time.perf_counter()
        if args.command == "demo":
            config = replace(pipeline.demo_config(), seed=args.seed)
        else:
            config = apply_overrides(load_config(args.config, RunConfig), args.overrides)
        result = pipeline.run_to_dir(config, args.out, force=args.force, progress=not args.quiet)
        _report(result, args.out, time.perf_counter() - start)
    except NIWTError as err:
        sys.stderr.write(f"niwt: error: {err}\n")
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
