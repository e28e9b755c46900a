"""A finished run read back (:mod:`niwt.runs.loaded`: ``load_run``, ``predict``), and taught new
classes or made to forget some (:mod:`niwt.runs.teach`), without its dataset or any retraining."""

from niwt.runs.loaded import LoadedRun, Prediction, RunFormatError, load_run
from niwt.runs.teach import Lesson, TeachEvent

__all__ = ["RunFormatError", "LoadedRun", "Prediction", "load_run", "Lesson", "TeachEvent"]
