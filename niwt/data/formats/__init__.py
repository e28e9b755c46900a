"""The dataset file formats, one loader each, and what they share to build a record.

* :mod:`~niwt.data.formats.xlsa17` — the "proposed splits" package (``res101.mat`` + ``att_splits.mat``);
* :mod:`~niwt.data.formats.awa2` — the Animals with Attributes 2 release;
* :mod:`~niwt.data.formats.cub` — Caltech-UCSD Birds-200-2011, with its captions;
* :mod:`~niwt.data.formats.folder` — a folder of one's own classes and one CSV;
* :mod:`~niwt.data.formats.splits` — the seeded class and image splits the loaders draw;
* :mod:`~niwt.data.formats.assemble` — an image list, its classes and a split into a ``LoadedDataset``;
* :mod:`~niwt.data.formats.survey` — what ``inspect`` collects; each format's survey sits beside its loader.

:mod:`niwt.data.registry` names them and picks one for a folder. :func:`loader_defaults` is where
the configs and the surveys take a loader's defaults from.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

__all__ = ["loader_defaults"]


def loader_defaults(loader: Callable[..., object]) -> dict[str, object]:
    """The keyword arguments of ``loader`` that have a default, with it (``seed``, ``val_fraction``...)."""
    params = inspect.signature(loader).parameters
    return {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}
