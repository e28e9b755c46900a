"""Plots people would rather look at than read: the Λ sweep."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_lambda_sweep"]


def plot_lambda_sweep(rows: Sequence[dict[str, float]], path: str | Path, title: str = "") -> None:
    """Seen, unseen accuracy and H against Λ (log axis; Λ = 0 drawn at the left edge).

    Args:
        rows: dicts with ``lam``, ``seen_acc``, ``unseen_acc``, ``H``.
        path: PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positive = sorted(r["lam"] for r in rows if r["lam"] > 0)
    zero_at = positive[0] / 10 if positive else 1e-6
    xs = [r["lam"] if r["lam"] > 0 else zero_at for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for key, label, style in (("seen_acc", "seen (S)", "o-"), ("unseen_acc", "unseen (U)", "s-"), ("H", "H", "^--")):
        ax.plot(xs, [r[key] for r in rows], style, label=label)
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
