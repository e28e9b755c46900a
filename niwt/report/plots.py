"""Plots people would rather look at than read: the Λ sweep, seen-unseen curves, per-class accuracy, confusions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from niwt.rundir.about import PNG_SOFTWARE

__all__ = ["plot_lambda_sweep", "plot_lambda_curve", "plot_seen_unseen_curves", "plot_per_class_accuracy",
           "plot_confusion", "mean_curve"]


def _lambda_axis(lams: Sequence[float]) -> tuple[list[float], float, list[float]]:
    positive = sorted(v for v in lams if v > 0)
    zero_at = positive[0] / 10 if positive else 1e-6
    return [v if v > 0 else zero_at for v in lams], zero_at, positive


def plot_lambda_sweep(rows: Sequence[dict[str, float]], path: str | Path, title: str = "") -> None:
    """Seen, unseen accuracy and H against Λ (log axis; Λ = 0 drawn at the left edge).

    Args:
        rows: dicts with ``lam``, ``seen_acc``, ``unseen_acc``, ``H``.
        path: PNG file to write.
    """
    import numpy as np

    columns = {k: np.array([[r[k] for r in rows]]) for k in ("seen_acc", "unseen_acc", "H")}
    plot_lambda_curve_arrays([r["lam"] for r in rows], columns, path, title)


def plot_lambda_curve(curve, path: str | Path, title: str = "") -> None:
    """A :class:`~niwt.results.LambdaCurve`: mean S, U and H over seeds against Λ, with a band of
    ± one standard deviation."""
    plot_lambda_curve_arrays(curve.lams, {"seen_acc": curve.seen, "unseen_acc": curve.unseen, "H": curve.harmonic},
                             path, title)


def plot_lambda_curve_arrays(lams: Sequence[float], columns: dict, path: str | Path, title: str = "") -> None:
    """``columns[key]`` is ``[seeds, len(lams)]`` for key in seen_acc, unseen_acc, H."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, zero_at, positive = _lambda_axis(lams)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for key, label, style in (("seen_acc", "seen (S)", "o-"), ("unseen_acc", "unseen (U)", "s-"), ("H", "H", "^--")):
        values = columns[key]
        mean = values.mean(0)
        (line,) = ax.plot(xs, mean, style, label=label)
        if values.shape[0] > 1:
            ax.fill_between(xs, mean - values.std(0), mean + values.std(0), color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ticks = [zero_at, *positive]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0", *(f"{v:g}" for v in positive)], rotation=30)
    ax.set_xlabel("Λ (L2 pull of unseen rows towards the mean seen row)")
    ax.set_ylabel("per-class accuracy (GZSL)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "NIWT: accuracy against Λ")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": PNG_SOFTWARE})  # niwt's mark
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_at(u: object, s: object, grid: object) -> object:
    """The seen accuracy of one curve (its points joined by straight lines, as AUSUC's trapezoids)
    at each unseen accuracy of ``grid``: the highest of the curve there, 0 past its end."""
    import numpy as np

    u, s, grid = np.asarray(u, float), np.asarray(s, float), np.asarray(grid, float)
    best = np.zeros(grid.size)
    for i in range(u.size):
        best = np.where(np.isclose(grid, u[i]), np.maximum(best, s[i]), best)
        if i + 1 < u.size and u[i + 1] > u[i]:
            inside = (grid >= u[i]) & (grid <= u[i + 1])
            line = s[i] + (s[i + 1] - s[i]) * (grid - u[i]) / (u[i + 1] - u[i])
            best = np.where(inside, np.maximum(best, line), best)
    return best


def mean_curve(curves: Sequence[tuple[object, object]], n: int = 201) -> tuple[object, object]:
    """The mean of several seen-unseen curves (one per seed): seen accuracy averaged at ``n`` evenly
    spaced unseen accuracies from 0 to the largest one reached (a curve counts 0 past its end)."""
    import numpy as np

    top = max(float(np.max(u)) for u, _ in curves)
    grid = np.linspace(0.0, top, n)
    return grid, np.mean([_curve_at(u, s, grid) for u, s in curves], axis=0)


def plot_seen_unseen_curves(curves: dict[str, tuple[object, object]], points: dict[str, Sequence[tuple[float, float, str]]],
                            path: str | Path, title: str = "") -> None:
    """Every method's seen-unseen curve (unseen accuracy on x, seen accuracy on y) with its
    operating points marked.

    Args:
        curves: ``{method: (unseen_acc [P], seen_acc [P])}``.
        points: ``{method: [(unseen_acc, seen_acc, label), ...]}``, e.g. plain and calibrated stacking.
        path: PNG file to write.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    markers = {"plain": "o", "calibrated": "*"}
    for method, (u, s) in curves.items():
        (line,) = ax.plot(u, s, "-", drawstyle="default", label=method, linewidth=1.6)
        for pu, ps, label in points.get(method, ()):
            ax.plot([pu], [ps], markers.get(label, "D"), color=line.get_color(), markersize=9 if label == "calibrated" else 6,
                    markeredgecolor="black", markeredgewidth=0.6)
    ax.plot([], [], "o", color="grey", markeredgecolor="black", label="plain stacking (constant 0)")
    ax.plot([], [], "*", color="grey", markersize=9, markeredgecolor="black", label="calibrated (constant from validation)")
    ax.set_xlabel("unseen accuracy U (per class)")
    ax.set_ylabel("seen accuracy S (per class)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or "Seen-unseen curves of calibrated stacking (area: AUSUC)")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": PNG_SOFTWARE})  # niwt's mark
    plt.close(fig)


def plot_per_class_accuracy(names: Sequence[str], accuracy: Sequence[float], unseen: Sequence[bool],
                            path: str | Path, title: str = "") -> None:
    """Per-class GZSL accuracy as bars, seen classes in one colour and unseen ones in another."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(14.0, max(5.0, 0.3 * len(names) + 2)), 4.2), dpi=110)
    colors = ["tab:orange" if u else "tab:blue" for u in unseen]
    ax.bar(range(len(names)), accuracy, color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (GZSL, over every class)")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="tab:blue", label="seen"), Patch(color="tab:orange", label="unseen")], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "Per-class accuracy")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": PNG_SOFTWARE})  # niwt's mark
    plt.close(fig)


def plot_confusion(matrix: object, rows: Sequence[str], columns: Sequence[str], path: str | Path,
                   title: str = "") -> None:
    """A confusion matrix (rows: true classes, columns: predictions), each row as shares of its images."""
    import numpy as np

    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    shares = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(columns) + 2.5), max(3.5, 0.45 * len(rows) + 1.8)), dpi=120)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{shares[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title or "Confusions of the unseen classes")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": PNG_SOFTWARE})  # niwt's mark
    plt.close(fig)
