"""Datasets: the ``ZSLData`` record, the dataset kinds and their formats, and opening a run's dataset.

* :mod:`~niwt.data.record` — :class:`ZSLData` and :func:`data_key`; :mod:`~niwt.data.loaded`,
  :mod:`~niwt.data.settings`, :mod:`~niwt.data.source` — a loaded dataset, the two GZSL settings,
  images read batch by batch; :mod:`~niwt.data.shapes` — the embedded shapes world;
* :mod:`~niwt.data.registry` — the dataset kinds (config class, loader, detection), with
  :mod:`~niwt.data.dataconfig` the ``[data]`` tables of the file formats;
* :mod:`~niwt.data.formats` — one loader per file format; :mod:`~niwt.data.files` — the file
  helpers they share;
* :mod:`~niwt.data.inspect`, :mod:`~niwt.data.example` — tools (a run's features as xlsa17 files: :mod:`niwt.runs.export`).

:func:`open_dataset` opens a run's dataset from its resolved ``[data]`` config.
"""

from niwt.data.opening import open_dataset
from niwt.data.record import ZSLData, data_key

__all__ = ["ZSLData", "data_key", "open_dataset"]
