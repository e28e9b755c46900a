"""``model/run.json``: what a later command needs to read a run's model back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from niwt.errors import RunDirectoryError
from niwt.rundir.layout import RUN_INFO

__all__ = ["RunInfo"]


@dataclass(frozen=True)
class RunInfo:
    """What ``model/run.json`` holds: what a later command needs to read a run's model back.

    Attributes:
        class_names: every class of the dataset; a class id is a position here.
        fit_classes, new_classes: class ids of the model's seen rows and of its unseen rows, in order.
        knowledge_names: the names of the class vectors' dimensions.
        data_key: the dataset's fingerprint (:func:`niwt.data.data_key`).
        dataset: the dataset's name; split_origin: where its split came from.
        image_size: the side of the images the model saw; transform: how files were prepared
            (``resize``, ``crop``, ``normalize``).
        importance_layer: where importance is taken; in_features: the width of a features dataset.
        arch: the backbone; n_seen, n_unseen: its classifier rows.
    """

    class_names: tuple[str, ...]
    fit_classes: tuple[int, ...]
    new_classes: tuple[int, ...]
    knowledge_names: tuple[str, ...]
    data_key: str
    dataset: str
    split_origin: str
    image_size: int
    transform: dict[str, Any]
    importance_layer: str
    in_features: int | None
    arch: str
    n_seen: int
    n_unseen: int

    def to_dict(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names), "fit_classes": list(self.fit_classes),
                "new_classes": list(self.new_classes), "knowledge_names": list(self.knowledge_names),
                "data_key": self.data_key, "dataset": self.dataset, "split_origin": self.split_origin,
                "image_size": self.image_size, "transform": dict(self.transform),
                "importance_layer": self.importance_layer, "in_features": self.in_features, "arch": self.arch,
                "n_seen": self.n_seen, "n_unseen": self.n_unseen}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = RUN_INFO) -> RunInfo:
        """The record :meth:`to_dict` wrote.

        Raises:
            RunDirectoryError: naming ``source`` and the missing or unknown keys.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        missing, unknown = sorted(set(names) - set(d)), sorted(set(d) - set(names))
        if missing or unknown:
            raise RunDirectoryError(f"{source} is not a niwt run record: missing key(s) {missing}, unknown key(s) "
                                    f"{unknown}; rerun the run that wrote it")
        return cls(tuple(d["class_names"]), tuple(int(c) for c in d["fit_classes"]),
                   tuple(int(c) for c in d["new_classes"]), tuple(d["knowledge_names"]), str(d["data_key"]),
                   str(d["dataset"]), str(d["split_origin"]), int(d["image_size"]), dict(d["transform"]),
                   str(d["importance_layer"]), None if d["in_features"] is None else int(d["in_features"]),
                   str(d["arch"]), int(d["n_seen"]), int(d["n_unseen"]))
