"""A finished run read back (:mod:`niwt.runs.loaded`: ``load_run``, ``predict``), taught new
classes or made to forget some (:mod:`niwt.runs.teach`), without its dataset or any retraining,
and its features written for other codebases (:mod:`niwt.runs.export`)."""

from niwt.runs.loaded import LoadedRun, Prediction, RunFormatError, load_run, write_model
from niwt.runs.teach import Lesson, TeachEvent

__all__ = ["RunFormatError", "LoadedRun", "Prediction", "load_run", "write_model", "Lesson", "TeachEvent"]
