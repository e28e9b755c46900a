"""The layout of a run directory: the name of every file niwt writes in one, declared once.

Every writer and reader of a run directory names its files through these constants; no other
module of the package spells a run file's name (``tests/rundir/test_layout.py`` holds it).

What a run *is*, guarded by its manifest (a checksum of every file)::

    manifest.json                what the run holds, written last (MANIFEST)
    config.toml                  the resolved config (CONFIG)
    versions.json                library versions (VERSIONS)
    metrics.json                 the result (METRICS)
    model/niwt.safetensors       the extended model: seen rows, then unseen rows (MODEL_WEIGHTS)
    model/run.json               its classes, rows, dataset fingerprint, image preparation (RUN_INFO)
    model/knowledge.safetensors  the class vectors the run used (KNOWLEDGE)
    model/knowledge_encoder.json what they were made with (KNOWLEDGE_ENCODER)
    mapping/mapper.safetensors   the forward map, knowledge -> importance (FORWARD_MAP)
    mapping/selection.json       how the forward map was chosen (MAP_SELECTION)
    mapping/inverse.safetensors  the inverse map, importance -> knowledge (INVERSE_MAP)
    transfer/history.json        the final transfer: its Λ, learning rate and losses (TRANSFER_HISTORY)
    transfer/pool_cache.safetensors  what teaching a class reads (POOL_CACHE)
    taught.json                  classes taught and forgotten since the run (TAUGHT)
    stages/<seed>.<stage>/       finished stages (STAGES; STAGE_RECORD, STAGE_RESULT, STAGE_MODEL, TEST_SCORES)

    plots/lambda_sweep.png       the plot of ``sweep-lambda`` (LAMBDA_SWEEP)
    plots/lambda_curve.png       the plot of ``reproduce`` (LAMBDA_CURVE)

What commands write *about* a run (``report``, ``explain``, ``predict --explain``), never in its
manifest (:mod:`niwt.rundir.about`)::

    outputs.json                 what they wrote, file by file (OUTPUTS)
    report.html                  the report page (REPORT)
    plots/gzsl_curves.png ...    the report's plots (GZSL_CURVES, PER_CLASS_ACCURACY, UNSEEN_CONFUSIONS)
    explain/                     overlays and what they show (EXPLAIN, EXPLANATIONS)
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "MANIFEST", "CONFIG", "VERSIONS", "METRICS", "MODEL", "MAPPING", "TRANSFER", "NIWT_PARTS", "MODEL_WEIGHTS",
    "RUN_INFO", "KNOWLEDGE", "KNOWLEDGE_ENCODER", "FORWARD_MAP", "MAP_SELECTION", "INVERSE_MAP",
    "TRANSFER_HISTORY", "POOL_CACHE", "TAUGHT", "STAGES", "STAGE_RECORD", "STAGE_RESULT", "STAGE_MODEL",
    "TEST_SCORES", "CHECKPOINT", "LOCK", "OUTPUTS", "REPORT", "PLOTS", "EXPLAIN", "EXPLANATIONS", "GZSL_CURVES",
    "PER_CLASS_ACCURACY", "UNSEEN_CONFUSIONS", "REPORT_PLOTS", "LAMBDA_SWEEP", "LAMBDA_CURVE", "RUN_FILES",
    "STAGE_FILES", "ABOUT_FILES", "FOLDERS", "stage_dir", "is_about",
]

# --- what a run is --------------------------------------------------------------------------------

MANIFEST = "manifest.json"
CONFIG = "config.toml"
VERSIONS = "versions.json"
METRICS = "metrics.json"

MODEL = "model"
MAPPING = "mapping"
TRANSFER = "transfer"
NIWT_PARTS: tuple[str, ...] = (MODEL, MAPPING, TRANSFER)
"""The folders NIWT's stage keeps its model, maps and transfer records in, copied to the top of the run."""

MODEL_WEIGHTS = f"{MODEL}/niwt.safetensors"
RUN_INFO = f"{MODEL}/run.json"
KNOWLEDGE = f"{MODEL}/knowledge.safetensors"
KNOWLEDGE_ENCODER = f"{MODEL}/knowledge_encoder.json"
FORWARD_MAP = f"{MAPPING}/mapper.safetensors"
MAP_SELECTION = f"{MAPPING}/selection.json"
INVERSE_MAP = f"{MAPPING}/inverse.safetensors"
TRANSFER_HISTORY = f"{TRANSFER}/history.json"
POOL_CACHE = f"{TRANSFER}/pool_cache.safetensors"
TAUGHT = "taught.json"

STAGES = "stages"
STAGE_RECORD = "stage.json"
"""In a stage's folder: its name, key, finish time and the checksum of every file (written last)."""
STAGE_RESULT = "result.json"
"""In a stage's folder: its typed record (``to_dict``)."""
STAGE_MODEL = "model.safetensors"
"""In a training stage's folder: the trained backbone."""
TEST_SCORES = "test_scores.npy"
"""In a method stage's folder: its scores ``[N, C]`` (float32) of the final setting's test images, in
its ``test_idx`` order (test-seen images, then test-unseen ones), one column per global class
(``-inf`` outside the setting): what the report's seen-unseen curves, per-class accuracies and
confusions are drawn from."""
CHECKPOINT = "checkpoint.pt"
"""In an unfinished training stage's scratch folder: the state to continue from after a kill."""
LOCK = ".niwt-lock.json"
"""In a staging directory: the process writing it (a killed run's is taken over by ``--resume``)."""

# --- what commands write about a run ---------------------------------------------------------------

OUTPUTS = "outputs.json"
"""At a run's top: every file commands wrote about the run, with the command and when."""
REPORT = "report.html"
PLOTS = "plots"
EXPLAIN = "explain"
EXPLANATIONS = "explanations.json"
"""In an explanation folder: what each overlay shows (written by ``explain`` and ``predict --explain``)."""
GZSL_CURVES = f"{PLOTS}/gzsl_curves.png"
PER_CLASS_ACCURACY = f"{PLOTS}/per_class_accuracy.png"
UNSEEN_CONFUSIONS = f"{PLOTS}/unseen_confusions.png"
REPORT_PLOTS: tuple[str, ...] = (GZSL_CURVES, PER_CLASS_ACCURACY, UNSEEN_CONFUSIONS)
"""The plots ``niwt report`` draws."""
LAMBDA_SWEEP = f"{PLOTS}/lambda_sweep.png"
LAMBDA_CURVE = f"{PLOTS}/lambda_curve.png"

RUN_FILES: tuple[str, ...] = (MANIFEST, CONFIG, VERSIONS, METRICS, MODEL_WEIGHTS, RUN_INFO, KNOWLEDGE,
                              KNOWLEDGE_ENCODER, FORWARD_MAP, MAP_SELECTION, INVERSE_MAP, TRANSFER_HISTORY,
                              POOL_CACHE, TAUGHT)
"""Every file at a fixed place of a run directory (not every run has all of them)."""
STAGE_FILES: tuple[str, ...] = (STAGE_RECORD, STAGE_RESULT, STAGE_MODEL, TEST_SCORES, CHECKPOINT, LOCK)
"""The files of a stage's folder, and of a staging directory."""
ABOUT_FILES: tuple[str, ...] = (OUTPUTS, REPORT, EXPLANATIONS, *REPORT_PLOTS, LAMBDA_SWEEP, LAMBDA_CURVE)
"""The files commands write about a run, and the plots some runs draw of themselves."""
FOLDERS: tuple[str, ...] = (MODEL, MAPPING, TRANSFER, STAGES, PLOTS, EXPLAIN)
"""The folders of a run directory."""


def stage_dir(run: str | Path, seed: int, name: str) -> Path:
    """Where the finished stage ``name`` of seed ``seed`` lies in run directory ``run``."""
    return Path(run) / STAGES / f"seed{seed}.{name}"


def is_about(name: str) -> bool:
    """Whether the run-relative path ``name`` is where commands write *about* a run (the report,
    its plots, explanations, the record of them): never part of what the run is."""
    return name in (OUTPUTS, REPORT, *REPORT_PLOTS) or name.startswith(f"{EXPLAIN}/")
