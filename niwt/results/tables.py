"""The tables the command line prints: one formatter per result record (it never inspects dicts)."""

from __future__ import annotations

from niwt.results.paired import PairedDifference
from niwt.results.published import format_published
from niwt.results.records import _KEYS, METRICS, Ablation, Arm, Comparison, Reproduction, Sweep, _metrics

__all__ = ["format_table", "format_paired", "format_sweep", "format_reproduction", "format_ablation"]


def _rows(comparison: Comparison, calibrated: bool) -> list[str]:
    header = f"{'method':<10}" + "".join(f"{name:>16}" for _, name in METRICS)
    lines = [header, "-" * len(header)]
    show_std = len(comparison.runs) > 1
    for method, m in comparison.summary(calibrated).items():
        cells = [f"{m[k]:>9.3f} ±{m[k + '_std']:.3f}" if show_std else f"{m[k]:>16.3f}" for k in _KEYS]
        lines.append(f"{method:<10}" + "".join(cells))
    return lines


def format_paired(pairs: tuple[PairedDifference, ...], focus: tuple[str, ...] = ("niwt", "niwt-bal")) -> str:
    """The paired differences in H that involve a NIWT variant (all pairs when none is there)."""
    chosen = [p for p in pairs if p.method_a in focus or p.method_b in focus] or list(pairs)
    lines = [f"{'paired H difference':<22}{'mean':>8}{'95% CI (bootstrap over seeds)':>32}{'ahead':>8}  verdict"]
    for p in chosen:
        lines.append(f"{p.method_a + ' - ' + p.method_b:<22}{p.mean:>+8.3f}{f'[{p.low:+.3f}, {p.high:+.3f}]':>32}"
                     f"{f'{p.wins}/{p.seeds}':>8}  {p.verdict}")
    return "\n".join(lines)


def format_table(comparison: Comparison) -> str:
    """Methods x (S, U, H, ZSL, AUSUC); ``mean ±std`` when there is more than one seed; then, when
    every method has one, the same with calibrated stacking, and the paired differences in H."""
    lines = _rows(comparison, calibrated=False)
    sel = comparison.niwt_selection()
    if sel is not None and sel.validated:
        lines.append(f"NIWT: Λ = {sel.params['lam']:g}, lr = {sel.params['lr']:g} chosen on validation classes "
                     f"(grid of {len(sel.grid)}); every method's hyper-parameters were chosen there.")
    if len(comparison.runs) > 1:
        lines += ["", format_paired(comparison.paired())]
    if comparison.has_calibrated:
        lines += ["", "with calibrated stacking for every method (its constant chosen on validation classes):"]
        lines += _rows(comparison, calibrated=True)
        if len(comparison.runs) > 1:
            lines += ["", format_paired(comparison.paired(calibrated=True))]
    published = format_published(comparison.dataset, comparison.methods)
    if published:
        lines.append(published)
    return "\n".join(lines)


def format_sweep(sweep: Sweep) -> str:
    """Λ sweep as a table, then its finding."""
    lines = [f"{'Λ':>8}{'S':>8}{'U':>8}{'H':>8}{'ZSL':>8}{'|Wu|/|Ws|':>11}"]
    for r in sweep.rows:
        m = _metrics(r.report)
        lines.append(f"{r.lam:>8g}{m['seen_acc']:>8.3f}{m['unseen_acc']:>8.3f}{m['H']:>8.3f}{m['zsl_acc']:>8.3f}"
                     f"{r.unseen_norm_ratio:>11.2f}")
    lines.append(sweep.finding)
    return "\n".join(lines)


def _difference_line(label: str, d: PairedDifference, verdict_text: str, width: int) -> str:
    return (f"{label:<{width}}{d.mean:>+8.3f}{f'[{d.low:+.3f}, {d.high:+.3f}]':>20}{f'{d.wins}/{d.seeds}':>7}  "
            f"{verdict_text}")


def _arm_lines(arms: tuple[Arm, ...]) -> list[str]:
    width = max(len(a.name) for a in arms) + 2
    lines = [f"{'arm':<{width}}{'S':>16}{'U':>16}{'H':>16}"]
    for a in arms:
        cells = [f"{v.mean():>9.3f} ±{v.std():.3f}" for v in (a.values(k) for k in ("seen_acc", "unseen_acc", "H"))]
        lines.append(f"{a.name:<{width}}" + "".join(cells))
    return lines


def format_reproduction(rep: Reproduction) -> str:
    """The claims table (difference, interval, seeds ahead, verdict), the paper's findings, the
    arms' H and the Λ curve's means."""
    width = max(len(c.statement) for c in rep.claims) + 2
    head = f"{'claim':<{width}}{'mean':>8}{'95% CI':>20}{'ahead':>7}  verdict"
    lines = [f"claims on {rep.world or 'this world'}, {len(rep.seeds)} seeds (paired over seeds, bootstrap 95% CI):",
             head, "-" * len(head)]
    lines += [_difference_line(c.statement, c.difference, c.verdict, width) for c in rep.claims]
    lines += ["", "the paper's findings beside them:"]
    lines += [f"  {c.statement}: {c.paper}" for c in rep.claims]
    lines += ["", *_arm_lines(rep.arms)]
    c = rep.curve
    lines += ["", "Λ curve on the test images (mean over seeds; an analysis, as the paper's figure):",
              f"{'Λ':>8}{'S':>8}{'U':>8}{'H':>8}"]
    lines += [f"{lam:>8g}{c.seen[:, j].mean():>8.3f}{c.unseen[:, j].mean():>8.3f}{c.harmonic[:, j].mean():>8.3f}"
              for j, lam in enumerate(c.lams)]
    lines.append("Λ of highest validation U per seed: " + ", ".join(f"{v:g}" for v in c.validation_peak))
    return "\n".join(lines)


def format_ablation(ablation: Ablation) -> str:
    """Each alternative minus the paper's choice in NIWT's H, with its interval and verdict."""
    labels = [f"{r.factor}: {r.alternative} vs {r.default}" for r in ablation.rows]
    title = "ablation (alternative - paper)"
    width = max(len(title), *(len(label) for label in labels)) + 2
    head = f"{title:<{width}}{'mean':>8}{'95% CI':>20}{'ahead':>7}  verdict"
    lines = [f"NIWT ablations on {ablation.world or 'this world'}, {len(ablation.seeds)} seeds (H, paired over seeds):",
             head, "-" * len(head)]
    lines += [_difference_line(label, r.difference, r.verdict, width) for label, r in zip(labels, ablation.rows)]
    lines += ["", *_arm_lines(ablation.arms)]
    return "\n".join(lines)

