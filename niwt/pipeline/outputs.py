"""What a run writes at the top of its directory: the config, versions and metrics, and NIWT's weights, maps and records copied from its stage."""

from __future__ import annotations

import shutil
from pathlib import Path

from niwt.config import RunConfig, save_config, to_dict
from niwt.device import run_device, runtime_record
from niwt.results import Ablation, Comparison, Reproduction, RunMetrics, Sweep
from niwt.rundir import StageStore, layout, write_json
from niwt.version import versions

__all__ = ["write_run", "publish_niwt_outputs"]


def write_run(staging: Path, config: RunConfig, result: Comparison | Sweep | Reproduction | Ablation) -> None:
    """``config.toml``, ``versions.json`` and ``metrics.json`` (:class:`~niwt.results.RunMetrics`:
    ``result``, the config, and where the run computed: device, precision, processes) of a run."""
    save_config(config, staging / layout.CONFIG)
    write_json(staging / layout.VERSIONS, versions())
    runtime = runtime_record(run_device(config.runtime.device, config.runtime.precision), config.runtime.precision)
    write_json(staging / layout.METRICS, RunMetrics(result, to_dict(config), runtime).to_dict())


def publish_niwt_outputs(store: StageStore, staging: Path) -> None:
    """Copy the NIWT stage's weights, maps and records (``model/``, ``mapping/``, ``transfer/``)
    from ``store`` to the top of the run directory."""
    stage = store.path("niwt")
    for part in layout.NIWT_PARTS:
        if (stage / part).is_dir():
            shutil.copytree(stage / part, staging / part, dirs_exist_ok=True)
