"""How long the ``niwt`` command line takes to start, and how much memory: ``niwt --help`` and a
command's ``--help``, each in a fresh interpreter, against the interpreter alone and against
importing torch (what every command cost to start when the command line imported it first),
measured in the same run.

    python benchmarks/cli_start.py [--repeat 7] [--checkout DIR]

``--checkout DIR`` also measures the ``niwt`` of another checkout of the repository (its own
``niwt`` package put first on the path), e.g. an earlier commit, for a before / after table.
This script imports nothing heavy itself: a child's peak memory would count its parent's pages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _once(argv: list[str], pythonpath: Path | None) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one fresh process running ``argv`` (in the checkout's
    folder, with it first on the path, so ``-m niwt.cli`` is that checkout's)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=pythonpath or ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise SystemExit(f"{' '.join(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss / 1024.0


def measure(argv: list[str], repeat: int, pythonpath: Path | None = None) -> tuple[float, float]:
    """Median wall seconds and peak MiB over ``repeat`` runs (after one warm-up for the file cache)."""
    _once(argv, pythonpath)
    runs = [_once(argv, pythonpath) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command (default: 7)")
    parser.add_argument("--checkout", type=Path, help="another checkout of the repository to measure beside this one")
    args = parser.parse_args()
    py = sys.executable
    cases = [("python -c pass (the interpreter alone)", [py, "-c", "pass"], None),
             ("python -c 'import torch' (reference)", [py, "-c", "import torch"], None)]
    sources = [("this checkout", ROOT)] + ([("--checkout", args.checkout.resolve())] if args.checkout else [])
    for label, path in sources:
        cases += [(f"niwt --help ({label})", [py, "-m", "niwt.cli", "--help"], path),
                  (f"niwt teach --help ({label})", [py, "-m", "niwt.cli", "teach", "--help"], path),
                  (f"niwt compare --help ({label})", [py, "-m", "niwt.cli", "compare", "--help"], path)]
    results = {name: measure(argv, args.repeat, path) for name, argv, path in cases}
    torch_s = results["python -c 'import torch' (reference)"][0]
    width = max(len(name) for name in results)
    lines = [f"{'command':<{width}}  {'median s':>8}  {'x import torch':>14}  {'peak MiB':>8}"]
    lines += [f"{name:<{width}}  {s:8.3f}  {s / torch_s:14.3f}  {mib:8.1f}" for name, (s, mib) in results.items()]
    sys.stderr.write("\n".join(lines) + "\n")
    print(json.dumps({"benchmark": "cli_start", "repeat": args.repeat, "python": platform.python_version(),
                      "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                      "results": {name: {"seconds": s, "peak_mib": mib} for name, (s, mib) in results.items()}}))


if __name__ == "__main__":
    main()
