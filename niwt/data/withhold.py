"""Leaving unseen classes out of a run: ``data.withhold``.

A withheld class is taken out of the dataset before anything sees it: its name, its knowledge,
its description and its images are gone, and the remaining classes and images are renumbered in
their order. The run never hears of it, so it can later be taught to the finished run
(``niwt teach``) and compared with the same class when it was one of the run's own unseen classes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from niwt.data.record import ZSLData
from niwt.errors import ConfigError, DataError
from niwt.messages import close_names, first_names

__all__ = ["check_withhold", "withhold_classes"]


def check_withhold(section: str, config: Any) -> None:
    """``config.withhold`` must be a list of distinct class names (it is made a tuple).

    Raises:
        ConfigError: naming ``section.withhold`` and the bad value.
    """
    value = config.withhold
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{section}.withhold must be a list of class names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{section}.withhold names a class twice: {list(value)!r}")
    object.__setattr__(config, "withhold", tuple(value))


def withhold_classes(data: ZSLData, images: Any, names: tuple[str, ...]) -> tuple[ZSLData, Any]:
    """``data`` and its ``images`` (a tensor or an image source, one per label) without the unseen
    classes ``names`` and their images.

    Raises:
        DataError: a name that is not an unseen class of ``data`` (the unseen classes listed, or
            close names), or one that would leave no unseen class.
    """
    if not names:
        return data, images
    index = {name: i for i, name in enumerate(data.class_names)}
    unseen = [data.class_names[c] for c in data.unseen_classes]
    for name in names:
        if name not in index:
            near = close_names(name, data.class_names)
            hint = f"close names: {', '.join(near)}" if near else f"its unseen classes: {first_names(unseen, 10)}"
            raise DataError(f"data.withhold: {name!r} is not a class of dataset {data.name!r}; {hint}")
        if name not in unseen:
            raise DataError(f"data.withhold: {name!r} is not an unseen class of dataset {data.name!r} (only unseen "
                            f"classes can be left out); its unseen classes: {first_names(unseen, 10)}")
    if len(names) >= len(unseen):
        raise DataError(f"data.withhold leaves no unseen class of dataset {data.name!r}; keep at least one of "
                        f"{first_names(unseen, 10)}")
    drop = np.array(sorted(index[n] for n in names), np.int64)
    keep_classes = np.setdiff1d(np.arange(len(data.class_names)), drop)
    class_map = np.full(len(data.class_names), -1, np.int64)
    class_map[keep_classes] = np.arange(keep_classes.size)
    keep_images = np.flatnonzero(~np.isin(data.labels, drop))
    image_map = np.full(data.labels.size, -1, np.int64)
    image_map[keep_images] = np.arange(keep_images.size)

    def classes(ids: np.ndarray) -> np.ndarray:
        return class_map[ids[~np.isin(ids, drop)]]

    def positions(idx: np.ndarray) -> np.ndarray:
        return image_map[idx[image_map[idx] >= 0]]

    def rows(arr: np.ndarray | None) -> np.ndarray | None:
        return None if arr is None else arr[keep_images]

    out = replace(
        data,
        class_names=tuple(data.class_names[c] for c in keep_classes),
        knowledge=data.knowledge[keep_classes],
        labels=class_map[data.labels[keep_images]],
        seen_classes=classes(data.seen_classes), unseen_classes=classes(data.unseen_classes),
        train_classes=classes(data.train_classes), val_classes=classes(data.val_classes),
        source_classes=classes(data.source_classes),
        trainval_idx=positions(data.trainval_idx), test_seen_idx=positions(data.test_seen_idx),
        test_unseen_idx=positions(data.test_unseen_idx), source_idx=positions(data.source_idx),
        images=rows(data.images), image_attributes=rows(data.image_attributes), masks=rows(data.masks),
        features=rows(data.features),
        descriptions=tuple(data.descriptions[c] for c in keep_classes) if data.descriptions else (),
    )
    if hasattr(images, "subset"):
        return out, images.subset(keep_images)
    return out, images[keep_images]
