"""The one record every loader returns: classes, their knowledge, images and the GZSL splits.

Class indices are positions in ``class_names``. Image indices are rows of ``images``. Splits are
stored as sorted ``int64`` index arrays and checked once, at construction, so every later stage can
rely on them. :func:`data_key` is a hash of a record's content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from niwt.checks import as_matrix
from niwt.errors import DataError

__all__ = ["ZSLData", "data_key"]


def _index_array(name: str, value: object, upper: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise DataError(f"`{name}` must be a 1-d index array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"`{name}` must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise DataError(
            f"`{name}` holds indices outside [0, {upper}): min {arr.min()}, max {arr.max()}"
        )
    if np.unique(arr).size != arr.size:
        raise DataError(f"`{name}` holds duplicate indices")
    return np.sort(arr)


def _check_class_names(names: object) -> None:
    """Class names must be distinct strings: a class is looked up by its name (class lists, folders, tables).

    Raises:
        DataError: listing the repeated names and their positions, or naming a name that is not a string.
    """
    if isinstance(names, str) or not isinstance(names, (tuple, list)):
        raise DataError(f"`class_names` must be a tuple of strings, got {type(names).__name__}")
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise DataError(f"`class_names` must hold strings, got {type(name).__name__} {name!r} at position {i}")
        positions.setdefault(name, []).append(i)
    repeated = {name: where for name, where in positions.items() if len(where) > 1}
    if repeated:
        shown = "; ".join(f"{name[:80]!r} at positions {where[:5]}" for name, where in list(repeated.items())[:5])
        raise DataError(f"`class_names` holds {len(repeated)} repeated name(s): {shown}; every class needs its own "
                        f"name (rename or merge the repeated classes)")


@dataclass(frozen=True, eq=False)
class ZSLData:
    """A generalized zero-shot learning dataset.

    Attributes:
        name: short dataset name (``"shapes"``, ``"AWA2"``...).
        class_names: the C class names; a class index is a position in this tuple.
        knowledge: ``[C, d]`` float domain knowledge per class (attributes), no NaN.
        knowledge_names: the d names of the knowledge dimensions (attribute names).
        images: ``[N, H, W, 3]`` uint8 RGB images, or ``None`` for feature-only datasets.
        labels: ``[N]`` int64 class index of every image.
        source_classes: classes for pre-training and the transfer pool (may be empty).
        seen_classes: classes whose labelled images train the classifier.
        unseen_classes: classes never seen as images before the test.
        train_classes / val_classes: a partition of ``seen_classes`` for hyper-parameter choice
            (val classes act as unseen during validation).
        trainval_idx: images of seen classes used for training.
        test_seen_idx: held-out images of seen classes.
        test_unseen_idx: images of unseen classes (test only).
        source_idx: images of source classes (pre-training and transfer pool).
        descriptions: per class, natural-language descriptions (may be empty tuples).
        image_attributes: optional ``[N, G]`` int value index per attribute group for each image.
        attribute_groups: optional names of the G groups and, per group, the names of its values.
        masks: optional ``[N, H, W]`` bool object masks.
        features: optional ``[N, D]`` pre-extracted features (xlsa17 style).
        split_origin: where the image split comes from (the published files, or a seeded draw),
            for the run's record; empty when the dataset was made with its split.
    """

    name: str
    class_names: tuple[str, ...]
    knowledge: np.ndarray
    knowledge_names: tuple[str, ...]
    labels: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    train_classes: np.ndarray
    val_classes: np.ndarray
    trainval_idx: np.ndarray
    test_seen_idx: np.ndarray
    test_unseen_idx: np.ndarray
    source_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    source_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    images: np.ndarray | None = None
    descriptions: tuple[tuple[str, ...], ...] = ()
    image_attributes: np.ndarray | None = None
    attribute_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    masks: np.ndarray | None = None
    features: np.ndarray | None = None
    split_origin: str = ""

    def __post_init__(self) -> None:
        _check_class_names(self.class_names)
        n_classes = len(self.class_names)
        knowledge = as_matrix("knowledge", self.knowledge, finite=False)
        if knowledge.shape[0] != n_classes:
            raise DataError(
                f"`knowledge` must have one row per class: expected shape ({n_classes}, d), "
                f"got {knowledge.shape}"
            )
        bad = np.argwhere(~np.isfinite(knowledge))
        if bad.size:
            c, j = bad[0]
            raise DataError(
                f"`knowledge` holds {len(bad)} non-finite value(s), first at class "
                f"{self.class_names[c]!r} (row {c}), dimension {j}; replace missing values first"
            )
        if len(self.knowledge_names) != knowledge.shape[1]:
            raise DataError(
                f"`knowledge_names` must name the {knowledge.shape[1]} knowledge dimensions, "
                f"got {len(self.knowledge_names)} names"
            )
        object.__setattr__(self, "knowledge", knowledge)
        labels = np.asarray(self.labels)
        if labels.ndim != 1:
            raise DataError(f"`labels` must be 1-d, got shape {labels.shape}")
        n = labels.shape[0]
        if n and (labels.min() < 0 or labels.max() >= n_classes):
            raise DataError(f"`labels` must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]")
        object.__setattr__(self, "labels", labels.astype(np.int64))
        for key in ("seen_classes", "unseen_classes", "train_classes", "val_classes", "source_classes"):
            object.__setattr__(self, key, _index_array(key, getattr(self, key), n_classes))
        for key in ("trainval_idx", "test_seen_idx", "test_unseen_idx", "source_idx"):
            object.__setattr__(self, key, _index_array(key, getattr(self, key), max(n, 1)))
        seen, unseen = set(self.seen_classes.tolist()), set(self.unseen_classes.tolist())
        if not seen or not unseen:
            raise DataError("`seen_classes` and `unseen_classes` must both be non-empty")
        if seen & unseen:
            raise DataError(f"seen and unseen classes overlap: {sorted(seen & unseen)}")
        if set(self.source_classes.tolist()) & (seen | unseen):
            raise DataError("`source_classes` must be disjoint from seen and unseen classes")
        train, val = set(self.train_classes.tolist()), set(self.val_classes.tolist())
        if train & val or (train | val) != seen:
            raise DataError(
                "`train_classes` and `val_classes` must partition `seen_classes`: "
                f"{len(train)} train + {len(val)} val classes for {len(seen)} seen classes"
            )
        for key, allowed in (("trainval_idx", seen), ("test_seen_idx", seen),
                             ("test_unseen_idx", unseen), ("source_idx", set(self.source_classes.tolist()))):
            idx = getattr(self, key)
            wrong = set(self.labels[idx].tolist()) - allowed
            if wrong:
                raise DataError(f"`{key}` holds images of classes outside its split: {sorted(wrong)[:5]}")
        if self.images is not None:
            images = np.asarray(self.images)
            if images.ndim != 4 or images.shape[0] != n or images.shape[-1] != 3:
                raise DataError(f"`images` must be [N={n}, H, W, 3], got {images.shape}")
        if self.features is not None and np.asarray(self.features).shape[0] != n:
            raise DataError(f"`features` must have N={n} rows, got {np.asarray(self.features).shape}")
        if self.descriptions and len(self.descriptions) != n_classes:
            raise DataError(f"`descriptions` must have one entry per class ({n_classes}), got {len(self.descriptions)}")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        """One line: name, class counts, knowledge shape, images and split sizes (no array contents)."""
        classes = (
            f"{self.n_classes} classes (seen {self.seen_classes.size} = {self.train_classes.size} train + "
            f"{self.val_classes.size} val, unseen {self.unseen_classes.size}, source {self.source_classes.size})"
        )
        n = self.labels.shape[0]
        if self.images is not None:
            images = f"{n} images {np.shape(self.images)[1]}x{np.shape(self.images)[2]} px"
        elif self.features is not None:
            images = f"{n} feature rows of width {np.asarray(self.features).shape[1]}, no images"
        else:
            images = f"{n} labels, no images"
        splits = ", ".join(f"{key} {getattr(self, key).size}"
                           for key in ("trainval_idx", "test_seen_idx", "test_unseen_idx", "source_idx"))
        knowledge = list(self.knowledge.shape)
        return f"ZSLData({self.name!r}: {classes}, knowledge {knowledge}, {images}, splits: {splits})"

    def images_tensor(self, idx: np.ndarray):  # -> torch.Tensor, imported lazily
        """Return images ``idx`` as a float32 tensor ``[n, 3, H, W]`` in [0, 1]."""
        import torch

        if self.images is None:
            raise DataError(f"dataset {self.name!r} holds no images (feature-only)")
        arr = self.images[np.asarray(idx)]
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)


def data_key(data: ZSLData) -> str:
    """A hash of a dataset's content (classes, knowledge, labels, splits, pixels): stages made from
    other data are never reused."""
    h = hashlib.sha256()
    h.update(json.dumps([data.name, list(data.class_names), list(data.knowledge_names)]).encode("utf-8"))
    for arr in (data.knowledge, data.labels, data.seen_classes, data.unseen_classes, data.train_classes,
                data.val_classes, data.source_classes, data.trainval_idx, data.test_seen_idx, data.test_unseen_idx,
                data.source_idx, data.images, data.features):
        if arr is not None:
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:20]
