"""``niwt adopt``: a classifier trained elsewhere, head included, becomes a niwt run without
training anything.

The classifier's outputs are the seen classes of a folder dataset (``classes.csv``: its ``index``
column says which output each seen class is; without it, the outputs are the seen classes in the
table's order). The run then computes what any run computes (importances, the forward and
inverse maps, the pool cache), transfers the folder's unseen classes and evaluates them where
they have images, with Λ, the learning rate and the calibration constant chosen inside the
adopted network (``eval.validation = "held_out_rows"``). ``predict``, ``teach``, ``forget``,
``explain``, ``names``, ``report`` and ``serve`` read it as any run.

Every input is checked before any work (the weights, the architecture, the head against the
seen classes, the index column, the images), and nothing is written when one is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch import nn

from niwt.config import RunConfig, apply_overrides, from_dict
from niwt.data.files.text import is_dir
from niwt.data.formats.folder import ClassTable, find_class_csv, read_class_table
from niwt.errors import ConfigError, DataError
from niwt.messages import quote
from niwt.models.adopted import (
    adoptable,
    adopted_backbone,
    check_adoptable,
    head_size,
    input_convention,
    module_arch,
    module_backbone,
    order_rows,
)
from niwt.models.weights import read_state_dict
from niwt.pipeline.commands import run_seeds
from niwt.pipeline.inputs import open_run
from niwt.results import Comparison
from niwt.training.validation import ADOPTED, HELD_OUT_ROWS

__all__ = ["adopt", "adopt_config", "classifier_outputs", "ADOPT_VAL_SPLITS"]

log = logging.getLogger(__name__)

ADOPT_VAL_SPLITS = 3
"""Validation splits of an adopted run: held-out rows cost no training, and with few seen classes
one split's held-out classes cannot tell the choices apart."""


def classifier_outputs(table: ClassTable, n_outputs: int) -> np.ndarray:
    """Which classifier output each seen class of ``table`` is, in the table's order of seen classes.

    Raises:
        DataError: the classifier has another number of outputs than the table seen classes, or
            an index names an output it does not have (the line is named).
    """
    seen = [i for i, split in enumerate(table.splits) if split == "seen"]
    if n_outputs != len(seen):
        raise DataError(f"the classifier has {n_outputs} outputs and {table.path} lists {len(seen)} seen classes; "
                        "its seen classes must be the classifier's classes, one per output (the others are unseen, "
                        "learned from their descriptions)")
    if table.indices is None:
        return np.arange(n_outputs, dtype=np.int64)
    outputs = np.array([table.indices[i] for i in seen], dtype=np.int64)
    for i, output in zip(seen, outputs):
        if output >= n_outputs:
            raise DataError(f"{table.path}, line {table.lines[i]} (class {quote(table.class_names[i])}): index "
                            f"{output} names no output; the classifier's outputs are 0 to {n_outputs - 1}")
    return outputs


def adopt_config(arch: str, data: Path, table: ClassTable, *, weights: str | None = None, layer: str = "",
                 overrides: tuple[str, ...] | list[str] = ()) -> RunConfig:
    """The run config of an adopted classifier, ``overrides`` (``KEY=VALUE``) applied last.

    Images are prepared as ``arch``'s weights expect (:func:`~niwt.models.adopted.input_convention`;
    ``data.resize`` / ``data.crop`` override it); knowledge is the table's attributes, else its
    descriptions embedded by all-MiniLM-L6-v2; each validation split holds out as many seen
    classes as there are unseen ones (at most half), ``ADOPT_VAL_SPLITS`` splits.
    """
    n_seen = sum(s == "seen" for s in table.splits)
    n_unseen = len(table.splits) - n_seen
    values: dict = {"data": {"kind": "folder", "root": str(data), "val_fraction": min(n_unseen / n_seen, 0.5)},
                    "knowledge": ({"source": "attributes"} if table.attribute_names
                                  else {"source": "text", "text_encoder": "sentence-transformers"}),
                    "model": {"arch": arch},
                    "train": {"mode": ADOPTED},
                    "importance": {"layer": layer},
                    "transfer": {"pool": "seen"},
                    "eval": {"validation": HELD_OUT_ROWS, "val_splits": ADOPT_VAL_SPLITS}}
    if adoptable(arch):
        resize, crop, normalize = input_convention(arch)
        values["data"].update(resize=resize, crop=crop, normalize=normalize)
        values["model"]["weights"] = str(weights)
    config = apply_overrides(from_dict(RunConfig, values), list(overrides))
    if config.train.mode != ADOPTED or config.eval.validation != HELD_OUT_ROWS:
        raise ConfigError(f'an adopted classifier is taken as it is: train.mode stays "{ADOPTED}" and '
                          f'eval.validation "{HELD_OUT_ROWS}" (nothing can be retrained)')
    return config


def adopt(model: str | nn.Module, data: str | Path, out: str | Path, *, weights: str | Path | None = None,
          layer: str = "", methods: tuple[str, ...] = ("niwt",), seeds: int = 1,
          overrides: tuple[str, ...] | list[str] = (), force: bool = False, progress: bool = False) -> Comparison:
    """Adopt a trained classifier into a niwt run directory at ``out``; returns what its
    ``metrics.json`` holds.

    Args:
        model: a torchvision name (``"resnet50"``) or ``"timm/<name>"``, read from ``weights``;
            or an ``nn.Module`` whose last layer is an ``nn.Linear`` (copied, never changed), split
            at ``layer`` (read the run back with ``load_run(out, model=<the same network>)``).
        data: a folder dataset (:mod:`niwt.data.formats.folder`) whose seen classes are the
            classifier's outputs.
        out: the run directory to write.
        weights: the weights file of ``model`` (a name): safetensors or a state dict, classifier
            included.
        layer: the importance layer (empty: the architecture's default; required for a module).
        methods: ``niwt`` and any baselines (``ale``, ``dem``, ``eszsl``, ``sae``), all fitted on the
            adopted network.
        seeds: seeds (each draws its validation classes and transfer streams; the network is the same).
        overrides: ``KEY=VALUE`` config changes (as ``--set``).
        force: replace ``out`` if it holds a complete niwt run.
        progress: show progress bars.

    Raises:
        ConfigError: an architecture that cannot be adopted, a missing weights file argument, a
            setting that would retrain the classifier.
        DataError: weights that cannot be read or are a pickled model, weights of another
            architecture, a head whose size is not the number of seen classes, a bad index
            column, a seen class without images.
    """
    from niwt.pipeline.experiments import check_methods

    methods = check_methods(tuple(methods))
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"`seeds` must be an integer >= 1, got {seeds!r}")
    root = Path(data)
    if not is_dir(root):
        raise DataError(f"dataset folder not found: {root}; give a folder with classes.csv and one image folder per class")
    state = None
    if isinstance(model, str):
        check_adoptable(model)
        if weights is None:
            raise ConfigError(f"adopting {model} needs its weights file, classifier included: --weights FILE "
                              "(safetensors, or a state dict saved with torch.save(model.state_dict(), FILE))")
        state = read_state_dict(weights)
        source = repr(str(weights))
        n_outputs = head_size(model, state, source)
        arch = model
    elif isinstance(model, nn.Module):
        backbone = module_backbone(model, layer)
        n_outputs, arch = backbone.classifier.n_seen, module_arch(model)
    else:
        raise ConfigError(f"`model` must be an architecture name or a torch nn.Module, got {type(model).__name__}")
    table = read_class_table(find_class_csv(root))
    outputs = classifier_outputs(table, n_outputs)
    config = adopt_config(arch, root, table, weights=None if weights is None else str(weights), layer=layer,
                          overrides=overrides)
    inputs = open_run(config)  # the images are read (a seen class without images is refused here)
    config = inputs.config  # fitted to the dataset
    if state is not None:
        backbone = adopted_backbone(arch, state, source=source, layer=config.importance.layer,
                                    image_size=config.data.image_size)
    order_rows(backbone, outputs)
    log.info("adopted %s: %d seen classes (its outputs), %d unseen classes to learn", arch, n_outputs,
             len(inputs.data.unseen_classes))
    return run_seeds(config, out, methods=methods, seeds=seeds, command="adopt", force=force, progress=progress,
                     inputs=inputs, base=backbone)

