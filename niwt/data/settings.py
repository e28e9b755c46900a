"""The two GZSL problems every run solves, built once from a dataset.

* **validation**: the model is trained on the seen *train* classes (80 % of their training images);
  the seen *val* classes act as unseen. Hyper-parameters (NIWT's Λ, the baselines' grids, the
  calibration constant) are chosen on it: the held-out 20 % of the train classes' images and the
  val classes' training images form its test. No unseen-class image is looked at.
* **final**: the model is trained on every seen class; the unseen classes are learned from
  knowledge; the test images give the reported numbers.

A :class:`Setting` maps global class ids to classifier rows (``fit_classes`` are the model's seen
rows in order, ``new_classes`` its unseen rows after them), so no caller does that by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from niwt.data.record import ZSLData
from niwt.errors import DataError

__all__ = ["Setting", "build_settings", "POOLS", "pool_indices"]

POOLS = ("source", "seen", "noise")
"""Where transfer's unlabeled images come from: source-class images, the setting's training
images, or uniform noise images."""

@dataclass(frozen=True, eq=False)
class Setting:
    """One GZSL problem over a dataset's images.

    Attributes:
        name: ``"validation"`` or ``"final"``.
        fit_classes: global ids of the classes the model is trained on, in classifier-row order.
        new_classes: global ids of the classes learned from knowledge (rows after ``fit_classes``).
        train_idx: labelled training images (all of ``fit_classes``).
        test_idx: images the setting is evaluated on (of ``fit_classes`` and ``new_classes``).
    """

    name: str
    fit_classes: np.ndarray
    new_classes: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def classes(self) -> np.ndarray:
        """Global ids in classifier-row order: ``fit_classes`` then ``new_classes``."""
        return np.concatenate([self.fit_classes, self.new_classes])

    def rows(self, labels: np.ndarray) -> np.ndarray:
        """Classifier rows of global class ids ``labels`` (each must be a class of this setting)."""
        order = self.classes
        lookup = np.full(int(max(order.max(), np.max(labels, initial=0))) + 1, -1, np.int64)
        lookup[order] = np.arange(order.size)
        labels = np.asarray(labels, dtype=np.int64)
        rows = lookup[labels] if labels.size else labels
        if labels.size and (rows < 0).any():
            bad = sorted(set(labels[rows < 0].tolist()))[:5]
            raise DataError(f"class ids {bad} are not classes of the {self.name} setting")
        return rows

    def class_ids(self, rows: np.ndarray) -> np.ndarray:
        """Global class ids of classifier rows ``rows``."""
        return self.classes[np.asarray(rows, dtype=np.int64)]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "fit_classes": self.fit_classes.tolist(), "new_classes": self.new_classes.tolist(),
                "n_train_images": int(self.train_idx.size), "n_test_images": int(self.test_idx.size)}


def build_settings(data: ZSLData, seed: int) -> tuple[Setting, Setting]:
    """The ``(validation, final)`` settings of ``data``; ``seed`` draws the validation hold-out.

    The validation setting is empty of new classes when the dataset has no val classes; callers
    that choose hyper-parameters check for that.
    """
    d = data
    rng = np.random.default_rng(seed)
    tr_idx = rng.permutation(d.trainval_idx[np.isin(d.labels[d.trainval_idx], d.train_classes)])
    n_hold = max(1, len(tr_idx) // 5)  # 20 %
    hold_idx, fit_idx = np.sort(tr_idx[:n_hold]), np.sort(tr_idx[n_hold:])
    val_idx = d.trainval_idx[np.isin(d.labels[d.trainval_idx], d.val_classes)]
    validation = Setting("validation", d.train_classes, d.val_classes, fit_idx, np.concatenate([hold_idx, val_idx]))
    final = Setting("final", d.seen_classes, d.unseen_classes, d.trainval_idx,
                    np.concatenate([d.test_seen_idx, d.test_unseen_idx]))
    return validation, final


def pool_indices(data: ZSLData, setting: Setting, pool: str) -> np.ndarray | None:
    """Image indices of transfer's pool (``None`` for ``"noise"``, which has no dataset images)."""
    if pool not in POOLS:
        raise DataError(f"`pool` must be one of {list(POOLS)}, got {pool!r}")
    if pool == "source":
        if not len(data.source_idx):
            raise DataError('`transfer.pool = "source"` needs source images; this dataset has none, use "seen"')
        return data.source_idx
    if pool == "seen":
        return setting.train_idx
    return None
