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
from niwt.seeding import stage_rng

__all__ = ["FINAL", "Setting", "build_settings", "validation_splits", "POOLS", "pool_indices"]

FINAL = "final"
"""The name of a run's final setting (seen vs unseen classes); its stages' random streams are keyed by it."""

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


def _validation(data: ZSLData, name: str, train_classes: np.ndarray, val_classes: np.ndarray,
                rng: np.random.Generator) -> Setting:
    """The validation setting with ``val_classes`` acting as unseen: the ``train_classes``' training
    images, 20 % of them held out (drawn with ``rng``) to test with the val classes' images."""
    d = data
    tr_idx = rng.permutation(d.trainval_idx[np.isin(d.labels[d.trainval_idx], train_classes)])
    n_hold = max(1, len(tr_idx) // 5)  # 20 %
    hold_idx, fit_idx = np.sort(tr_idx[:n_hold]), np.sort(tr_idx[n_hold:])
    val_idx = d.trainval_idx[np.isin(d.labels[d.trainval_idx], val_classes)]
    return Setting(name, train_classes, val_classes, fit_idx, np.concatenate([hold_idx, val_idx]))


def validation_splits(data: ZSLData, seed: int, n: int) -> tuple[Setting, ...]:
    """``n - 1`` more validation settings after :func:`build_settings`' (named ``"validation 2"``, ...).

    Each draws as many val classes as the dataset's own split has, among the seen classes, from its
    own stream (``seed``, "validation classes", k); the draws cover the seen classes that earlier
    splits left out of validation first, so that with few seen classes every one of them gets to
    act as unseen. Hyper-parameters and the calibration constant are then chosen by their mean H
    over every split: with one val class a split cannot tell grid points apart (its ZSL accuracy is
    1 whatever the point), and one split's constant fits its own classes.
    """
    if n < 1:
        raise DataError(f"`n` (validation splits) must be >= 1, got {n}")
    n_val = len(data.val_classes)
    if n > 1 and not 0 < n_val < len(data.seen_classes):
        raise DataError(f"{n} validation splits need val classes among the seen classes; the dataset has {n_val}")
    used = set(data.val_classes.tolist())
    splits = []
    for k in range(2, n + 1):
        rng = stage_rng(seed, "validation classes", k)
        fresh = np.array(sorted(set(data.seen_classes.tolist()) - used), dtype=np.int64)
        if fresh.size < n_val:  # every class has been a val class: start over, all of them eligible
            take = rng.choice(fresh, fresh.size, replace=False) if fresh.size else fresh
            rest = rng.choice(np.setdiff1d(data.seen_classes, take), n_val - fresh.size, replace=False)
            val = np.concatenate([take, rest])
            used = set(val.tolist())
        else:
            val = rng.choice(fresh, n_val, replace=False)
            used |= set(val.tolist())
        val = np.sort(val).astype(np.int64)
        splits.append(_validation(data, f"validation {k}", np.setdiff1d(data.seen_classes, val), val,
                                  stage_rng(seed, "validation split", k)))
    return tuple(splits)


def build_settings(data: ZSLData, seed: int) -> tuple[Setting, Setting]:
    """The ``(validation, final)`` settings of ``data``; ``seed`` draws the validation hold-out.

    The validation setting is empty of new classes when the dataset has no val classes; callers
    that choose hyper-parameters check for that.
    """
    d = data
    validation = _validation(d, "validation", d.train_classes, d.val_classes, np.random.default_rng(seed))
    final = Setting(FINAL, d.seen_classes, d.unseen_classes, d.trainval_idx,
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
