"""Method dispatch: NIWT's variants and the baselines run on one context, in the order asked."""

from __future__ import annotations

import logging

from niwt.config import RunConfig
from niwt.pipeline.context import RunContext
from niwt.pipeline.method_baselines import baseline_method, baseline_points
from niwt.pipeline.method_niwt import NIWT_VARIANTS, niwt_methods, transfer_grid
from niwt.results import MethodResult

__all__ = ["needs_validation", "run_methods"]

log = logging.getLogger(__name__)


def needs_validation(config: RunConfig, methods: tuple[str, ...]) -> bool:
    """Whether any of ``methods`` chooses something on the validation setting."""
    if config.eval.calibrate:
        return True
    return any(len(transfer_grid(config)) > 1 if m in NIWT_VARIANTS else len(baseline_points(config, m)) > 1
               for m in methods)


def run_methods(ctx: RunContext, methods: tuple[str, ...], *, final_transfer=None,
                explain: bool = True) -> tuple[MethodResult, ...]:
    """Each of ``methods`` on ``ctx``, in order. The NIWT variants share their transfers
    (:func:`~niwt.pipeline.method_niwt.niwt_methods`); with a stage store, NIWT's model and maps are kept in
    its stage's directory."""
    variants = tuple(m for m in methods if m in NIWT_VARIANTS)
    niwt_results = (dict(zip(variants, niwt_methods(ctx, variants, final_transfer=final_transfer, explain=explain)))
                    if variants else {})
    results = []
    for method in methods:
        result = niwt_results[method] if method in NIWT_VARIANTS else baseline_method(ctx, method)
        results.append(result)
        log.info("%s: S=%.3f U=%.3f H=%.3f", method, result.report.seen_acc, result.report.unseen_acc,
                 result.report.H)
    return tuple(results)
