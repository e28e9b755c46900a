"""Plots from run results (matplotlib, headless)."""

from niwt.report.plots import plot_lambda_sweep

__all__ = ["plot_lambda_sweep"]
