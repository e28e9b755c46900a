"""Training the backbone on labelled classes, and the optimisation loop every stage shares.

* :mod:`~niwt.training.loop`: :func:`optimize` (the loop), :class:`EarlyStopping`, the callbacks' records;
* :mod:`~niwt.training.classifier`: :func:`train_classifier`, cross-entropy training of a backbone
  on seen (or source) classes, ``finetuned`` or ``fixed``;
* :mod:`~niwt.training.checkpoints`: the state a killed training continues from.
"""

from niwt.training.classifier import TRAIN_MODES, train_classifier
from niwt.training.loop import STOP_REASONS, EarlyStopping, EpochEnd, OptimizeResult, StepEnd, batches, optimize

__all__ = ["TRAIN_MODES", "STOP_REASONS", "EarlyStopping", "StepEnd", "EpochEnd", "OptimizeResult", "optimize",
           "batches", "train_classifier"]
