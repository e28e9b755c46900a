"""Plots people would rather look at than read: the Λ sweep."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_lambda_sweep"]


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
    fig.savefig(path)
    plt.close(fig)
