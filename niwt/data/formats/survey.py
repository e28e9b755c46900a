"""What ``inspect`` collects about a dataset folder, and the steps of it the formats share.

Each format has a survey beside its loader (``survey_awa2`` ...) that reads the files with the
loader's own functions and defaults (:func:`~niwt.data.formats.loader_defaults`); a fault becomes a problem of the
:class:`Survey` instead of an exception, and what the files cannot tell stays unset.
:mod:`niwt.data.inspect` turns the survey into its report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from niwt.data.files.images import check_images
from niwt.data.formats.assemble import split_image_rows
from niwt.data.formats.splits import ClassSplit, ImageSplit
from niwt.errors import DataError
from niwt.messages import first_names, short_name

__all__ = ["Survey", "first"]


def first(names: Sequence[str], k: int = 5) -> str:
    """The first ``k`` names (a name too long for a message is cut), and how many more."""
    return first_names(names, k, show=short_name)


@dataclass
class Survey:
    """Mutable collector used while inspecting; ``niwt.data.inspect`` freezes it into its report.

    Attributes:
        values: the counts found (``n_classes``, ``n_seen``, ``has_images``...).
        problems: faults found, each naming what and where.
        notes: what is unknown and why, and how split counts were obtained.
    """

    values: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def attempt(self, func, *args, **kwargs):
        """Call ``func``; a :class:`DataError` becomes a problem and ``None`` is returned."""
        try:
            return func(*args, **kwargs)
        except DataError as exc:
            self.problems.append(str(exc))
            return None

    def class_split(self, split: ClassSplit) -> None:
        """Record the class counts of ``split`` and its notes."""
        self.values.update(n_seen=int(split.seen.size), n_unseen=int(split.unseen.size),
                           n_train_classes=int(split.train.size), n_val_classes=int(split.val.size))
        self.notes.extend(split.notes)

    def split(
        self, rule: Callable[[], tuple[ClassSplit, ImageSplit | None, tuple[str, ...]]]
    ) -> tuple[ClassSplit | None, ImageSplit | None]:
        """Run a format's split rule (``awa2_split`` ...): its notes and class counts are recorded.

        Returns:
            ``(class split, image split)``; ``(None, None)`` when the rule raises (a problem then).
        """
        chosen = self.attempt(rule)
        if chosen is None:
            return None, None
        split, image_split, notes = chosen
        self.notes.extend(notes)
        self.class_split(split)
        return split, image_split

    def image_files(
        self, root: Path, class_names: Sequence[str], paths: Sequence[str], labels: np.ndarray,
        split: ClassSplit | None, *, check: bool, listed_in: str, test_seen_fraction: float, seed: int,
        image_split: ImageSplit | None = None,
    ) -> None:
        """Counts and problems of an image-file dataset (missing / unreadable files, empty classes).

        The split counts are those of the loader: :func:`~niwt.data.formats.assemble.split_image_rows`
        over the readable images, with the loader's ``test_seen_fraction`` and ``seed``.
        """
        self.values["has_images"] = bool(paths)
        labels = np.asarray(labels, dtype=np.int64)
        keep = np.ones(len(paths), dtype=bool)
        if check and paths:
            found = check_images(root, paths)
            if found.missing:
                self.problems.append(f"missing images: {len(found.missing)} of {len(paths)} files listed in "
                                     f"{listed_in} are not under {root} (first: {first(found.missing)})")
            if found.unreadable:
                self.problems.append(f"unreadable images: {len(found.unreadable)} of {len(paths)} files under "
                                     f"{root} cannot be decoded (first: {first([p for p, _ in found.unreadable])})")
            bad = set(found.missing) | {p for p, _ in found.unreadable}
            keep = np.asarray([p not in bad for p in paths], dtype=bool)
        kept = labels[keep]
        self.values["n_images"] = int(kept.size)
        counts = np.bincount(kept, minlength=len(class_names))
        empty = [class_names[c] for c in range(len(class_names)) if counts[c] == 0]
        if empty:
            self.problems.append(f"classes without images: {len(empty)} ({first(empty)})")
        if split is None:
            return
        rows = split_image_rows(labels, keep, split, test_seen_fraction=test_seen_fraction, seed=seed,
                                image_split=image_split)
        self.values.update(n_trainval=int(rows.trainval.size), n_test_seen=int(rows.test_seen.size),
                           n_test_unseen=int(rows.test_unseen.size))
        if image_split is not None:
            self.notes.extend(image_split.notes)
        else:
            self.notes.append(f"per-image split as the loader draws it by default: {test_seen_fraction:g} of each "
                              f"seen class's images held out for test_seen (seed {seed})")
