"""The results of the commands: typed, frozen records (:mod:`~niwt.results.records`), paired
differences over seeds (:mod:`~niwt.results.paired`), numbers quoted from elsewhere
(:mod:`~niwt.results.published`) and the tables printed from them (:mod:`~niwt.results.tables`)."""

from niwt.results.paired import PairedDifference, paired_difference, verdict
from niwt.results.published import PAPER_H, PUBLISHED_GZSL, format_published
from niwt.results.records import (
    METRICS,
    Ablation,
    AblationRow,
    Arm,
    Claim,
    Comparison,
    GridPoint,
    LambdaCurve,
    MethodResult,
    Reproduction,
    RunMetrics,
    SeedRun,
    Selection,
    Sweep,
    SweepRow,
)
from niwt.results.tables import format_ablation, format_paired, format_reproduction, format_sweep, format_table

__all__ = ["METRICS", "GridPoint", "Selection", "MethodResult", "SeedRun", "RunMetrics", "Comparison", "SweepRow",
           "Sweep", "Arm", "Claim", "LambdaCurve", "Reproduction", "AblationRow", "Ablation", "verdict",
           "paired_difference", "PairedDifference", "format_table", "format_sweep", "format_reproduction",
           "format_ablation", "format_paired", "format_published", "PUBLISHED_GZSL", "PAPER_H"]
