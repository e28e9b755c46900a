"""Two ways of choosing Λ, the learning rate and the calibration constant, measured on every arm of
the real-photo benchmark: validation networks trained without the val classes (``eval.validation
= "networks"``, the default) against the final network with the val classes' rows held out and
rebuilt from their descriptions (``"held_out_rows"``, nothing trained).

For each arm and method: the distance of the chosen (calibrated) point to the best H on the
method's own seen-unseen curve, ``H* − H cal``, mean over seeds (smaller is better; ``H*`` looks
at the test labels and is never used to choose), and the same for the plain point. Then the goal
on the Lite0 fixed arm: NIWT's calibrated H at least its plain H, and ahead of every baseline's
calibrated H on every seed, with the paired bootstrap interval.

    python benchmarks/real_photos.py --out runs/real_photos                     # networks (default)
    python benchmarks/real_photos.py --out runs/real_photos \\
        --set 'eval.validation="held_out_rows"' --tag rows                       # held-out rows
    python benchmarks/choose_inside.py --networks runs/real_photos/summary.json \\
        --rows runs/real_photos/summary.json [--out benchmarks/results/DATE]

Both files are ``real_photos.py``'s ``summary.json`` (one file may hold both designs: the rows
design's arms end in ``-rows``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

ARMS = tuple(f"{d}-{a}" for d in ("fashion", "digits") for a in ("scratch", "fixed", "finetuned"))
METHODS = ("niwt", "niwt-bal", "ale", "dem", "eszsl", "sae")
BASELINES = METHODS[2:]
GOAL_ARM = "fashion-fixed"


def _arms(path: Path, suffix: str) -> dict[str, dict]:
    figures = json.loads(path.read_text())
    return {arm: figures[arm + suffix] for arm in ARMS if arm + suffix in figures}


def distances(arm: dict) -> dict[str, dict[str, float]]:
    """Per method: mean over seeds of ``H* − H cal`` and ``H* − H``, and the mean calibrated H."""
    out = {}
    for method, r in arm["methods"].items():
        star, cal, plain = (np.asarray(r[k]) for k in ("curve H*", "H cal", "H"))
        out[method] = {"H* - H cal": float(np.mean(star - cal)), "H* - H": float(np.mean(star - plain)),
                       "H cal": float(np.mean(cal)), "H": float(np.mean(plain))}
    return out


def goal(arm: dict) -> dict:
    """NIWT on one arm: calibrated H against its plain H and against every baseline's calibrated H,
    per seed and paired over seeds."""
    from niwt.results import paired_difference

    m = arm["methods"]
    cal, plain = np.asarray(m["niwt"]["H cal"]), np.asarray(m["niwt"]["H"])
    out = {"niwt H cal >= niwt H on seeds": int((cal >= plain).sum()), "seeds": int(cal.size),
           "niwt H cal - niwt H": paired_difference("niwt cal", "niwt plain", cal, plain, "H").to_dict()}
    ahead_everywhere = True
    for b in BASELINES:
        other = np.asarray(m[b]["H cal"])
        diff = paired_difference("niwt", b, cal, other, "H", calibrated=True)
        out[f"niwt - {b} (calibrated)"] = diff.to_dict()
        ahead_everywhere &= bool((cal > other).all())
    out["reached"] = bool((cal >= plain).all() and ahead_everywhere)
    return out


def report(networks: dict[str, dict], rows: dict[str, dict]) -> tuple[list[str], dict]:
    lines = ["| arm | method | H* − H cal, networks | H* − H cal, held-out rows | nearer | H cal, networks | "
             "H cal, held-out rows |", "|---|---|---|---|---|---|---|"]
    figures: dict = {"arms": {}}
    tally = {"networks": 0, "held_out_rows": 0, "tie": 0}
    per_method = {m: [] for m in METHODS}
    for arm in ARMS:
        if arm not in networks or arm not in rows:
            continue
        a, b = distances(networks[arm]), distances(rows[arm])
        figures["arms"][arm] = {"networks": a, "held_out_rows": b}
        for method in METHODS:
            if method not in a or method not in b:
                continue
            da, db = a[method]["H* - H cal"], b[method]["H* - H cal"]
            nearer = "tie" if abs(da - db) < 5e-4 else ("held_out_rows" if db < da else "networks")
            tally[nearer] += 1
            per_method[method].append(db - da)
            lines.append(f"| {arm} | {method} | {da:.3f} | {db:.3f} | {nearer.replace('_', ' ')} | "
                         f"{a[method]['H cal']:.3f} | {b[method]['H cal']:.3f} |")
    lines += ["", f"Held-out rows nearer on {tally['held_out_rows']} of {sum(tally.values())} arm-method pairs, "
              f"validation networks on {tally['networks']}, ties {tally['tie']}.", "",
              "Mean change of H* − H cal from networks to held-out rows, per method (negative: held-out rows nearer): "
              + ", ".join(f"{m} {np.mean(v):+.3f}" for m, v in per_method.items() if v), ""]
    figures["tally"] = tally
    figures["per_method_change"] = {m: float(np.mean(v)) for m, v in per_method.items() if v}
    for design, source in (("networks", networks), ("held_out_rows", rows)):
        if GOAL_ARM not in source:
            continue
        g = goal(source[GOAL_ARM])
        figures[f"goal ({design})"] = g
        lines.append(f"**Goal on {GOAL_ARM}, {design.replace('_', ' ')}**: NIWT calibrated H ≥ plain H on "
                     f"{g['niwt H cal >= niwt H on seeds']}/{g['seeds']} seeds "
                     f"(paired {g['niwt H cal - niwt H']['mean_difference']:+.3f} "
                     f"[{g['niwt H cal - niwt H']['ci95'][0]:+.3f}, {g['niwt H cal - niwt H']['ci95'][1]:+.3f}]); "
                     "against each baseline's calibrated H: "
                     + "; ".join(f"{b} {g[f'niwt - {b} (calibrated)']['mean_difference']:+.3f} "
                                 f"[{g[f'niwt - {b} (calibrated)']['ci95'][0]:+.3f}, "
                                 f"{g[f'niwt - {b} (calibrated)']['ci95'][1]:+.3f}], ahead on "
                                 f"{g[f'niwt - {b} (calibrated)']['a_ahead_on_seeds']}/{g['seeds']}"
                                 for b in BASELINES)
                     + f". Reached: {'yes' if g['reached'] else 'no'}.")
        lines.append("")
    return lines, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=Path, required=True, help="summary.json of the networks design")
    parser.add_argument("--rows", type=Path, required=True, help="summary.json holding the held-out-rows arms")
    parser.add_argument("--rows-suffix", default="-rows", help="suffix of the held-out-rows arms (default: -rows)")
    parser.add_argument("--out", type=Path, help="folder for choose_inside.md and .json (default: print only)")
    args = parser.parse_args(argv)
    lines, figures = report(_arms(args.networks, ""), _arms(args.rows, args.rows_suffix))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "choose_inside.md").write_text(text + "\n")
        (args.out / "choose_inside.json").write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
