"""Seeded split helpers shared by the loaders: validation classes, held-out seen images, class lists.

Every draw has its own stream (:func:`niwt.seeding.stage_rng` of the seed and the draw's name), so a
loader called twice with the same seed returns the same split, no two draws share a stream, and the loaders record each draw in their ``notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from niwt.data.files.text import read_name_list
from niwt.errors import ConfigError, DataError
from niwt.messages import first_names, quote, quote_names, short_name
from niwt.seeding import stage_rng

__all__ = [
    "DEFAULT_TEST_SEEN_FRACTION",
    "DEFAULT_VAL_FRACTION",
    "check_fraction",
    "check_seed",
    "check_draws",
    "draw_val_classes",
    "split_seen_images",
    "class_indices",
    "class_list_split",
    "ClassSplit",
    "ImageSplit",
    "resolve_class_split",
]

DEFAULT_TEST_SEEN_FRACTION = 0.2
"""Share of each seen class's images held out as ``test_seen`` when a format has no image split
(the xlsa17 proposed splits hold out 20 %)."""

DEFAULT_VAL_FRACTION = 0.2
"""Share of the seen classes drawn as validation classes when a format lists none."""


def check_fraction(name: str, value: object) -> float:
    """Return ``value`` as a float in (0, 1).

    Raises:
        ConfigError: for a non-number or a value outside (0, 1).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"`{name}` must be a number in (0, 1), got {value!r}")
    return float(value)


def check_seed(value: object) -> int:
    """Return ``value`` as a non-negative int seed.

    Raises:
        ConfigError: for a non-integer or negative seed.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"`seed` must be a non-negative integer, got {value!r}")
    return int(value)


def check_draws(val_fraction: object, test_seen_fraction: object, seed: object) -> tuple[float, float, int]:
    """The options of an image-folder loader's seeded draws, checked: ``(val_fraction, test_seen_fraction, seed)``.

    Raises:
        ConfigError: for a fraction outside (0, 1) or a seed that is not a non-negative integer.
    """
    val_fraction = check_fraction("val_fraction", val_fraction)
    return val_fraction, check_fraction("test_seen_fraction", test_seen_fraction), check_seed(seed)


def draw_val_classes(seen: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the seen classes into ``(train, val)`` at random.

    ``round(fraction * n_seen)`` validation classes are drawn, at least one and at most
    ``n_seen - 1`` (none when there is a single seen class).

    Returns:
        Sorted ``int64`` arrays ``(train_classes, val_classes)``.
    """
    seen = np.sort(np.asarray(seen, dtype=np.int64))
    if seen.size < 2:
        return seen, np.zeros(0, np.int64)
    n_val = min(max(1, int(round(fraction * seen.size))), seen.size - 1)
    val = np.sort(stage_rng(seed, "validation classes").choice(seen, size=n_val, replace=False))
    return np.setdiff1d(seen, val), val


def split_seen_images(
    labels: np.ndarray, seen: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of every seen class's images as ``test_seen`` (stratified, seeded).

    A class with a single image keeps it for training; otherwise each side keeps at least one.

    Returns:
        Sorted ``int64`` arrays ``(trainval_idx, test_seen_idx)``.
    """
    rng = stage_rng(seed, "test_seen images")
    labels = np.asarray(labels, dtype=np.int64)
    trainval, test = [], []
    for c in np.sort(np.asarray(seen, dtype=np.int64)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = 0 if idx.size < 2 else min(max(1, int(round(fraction * idx.size))), idx.size - 1)
        test.append(idx[:n_test])
        trainval.append(idx[n_test:])
    cat = (lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64))
    return cat(trainval), cat(test)


def class_indices(
    names: Sequence[tuple[str, int]], class_names: Sequence[str], source: Path | str, *, fix: str = ""
) -> np.ndarray:
    """Map ``(name, line)`` pairs read from ``source`` to positions in ``class_names``.

    Raises:
        DataError: naming the file and line of the first name that is not a class.
    """
    lookup = {name: i for i, name in enumerate(class_names)}
    out = []
    for name, line in names:
        if name not in lookup:
            raise DataError(
                f"{source}, line {line}: {quote(name)} is not a class of the dataset"
                + (f"; {fix}" if fix else "; the class lists and the class names must come from the same release")
            )
        out.append(lookup[name])
    return np.asarray(sorted(out), dtype=np.int64)


def class_list_split(folder: Path, class_names: Sequence[str], val_split: int = 1) -> dict[str, np.ndarray]:
    """The xlsa17 class-list files present in ``folder`` as class-index arrays.

    Keys present: ``seen`` / ``unseen`` (``trainvalclasses.txt`` / ``testclasses.txt``, both or
    neither) and ``train`` / ``val`` (``trainclasses<k>.txt`` / ``valclasses<k>.txt``).

    Raises:
        DataError: for a name that is not a class, or only one file of a pair.
    """
    out: dict[str, np.ndarray] = {}
    folder = Path(folder)
    for keys, names in ((("seen", "unseen"), ("trainvalclasses.txt", "testclasses.txt")),
                        (("train", "val"), (f"trainclasses{val_split}.txt", f"valclasses{val_split}.txt"))):
        files = [folder / n for n in names]
        present = [f.is_file() for f in files]
        if any(present) and not all(present):
            have, lack = (files[0], files[1]) if present[0] else (files[1], files[0])
            raise DataError(f"{have} is there but {lack.name} is not; the class lists come in pairs, copy both")
        if all(present):
            for key, f in zip(keys, files):
                out[key] = class_indices(read_name_list(f), class_names, f)
    return out


@dataclass(frozen=True)
class ClassSplit:
    """Seen / unseen classes and the train / val partition of the seen ones, with how they were chosen.

    Attributes:
        seen, unseen, train, val: sorted ``int64`` class indices.
        notes: one line per decision (which file, which seeded draw).
    """

    seen: np.ndarray
    unseen: np.ndarray
    train: np.ndarray
    val: np.ndarray
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"seen": self.seen.tolist(), "unseen": self.unseen.tolist(), "train": self.train.tolist(),
                "val": self.val.tolist(), "notes": list(self.notes)}


@dataclass(frozen=True)
class ImageSplit:
    """A published image split (xlsa17's) mapped onto a loader's image list.

    Attributes:
        classes: the class split it implies.
        trainval, test_seen, test_unseen: sorted ``int64`` rows of the loader's image list.
        origin: the files it was read from, for the record (``ZSLData.split_origin``).
        notes: one line per decision (files read, images of the folder the split leaves out).
    """

    classes: ClassSplit
    trainval: np.ndarray
    test_seen: np.ndarray
    test_unseen: np.ndarray
    origin: str
    notes: tuple[str, ...] = ()


def _names(indices: np.ndarray, class_names: Sequence[str], k: int = 8) -> str:
    """The first ``k`` class names of ``indices`` (a name too long for a message is cut), and how many more."""
    return first_names([class_names[i] for i in indices], k, show=short_name)


def resolve_class_split(
    class_names: Sequence[str],
    folders: Sequence[Path],
    *,
    unseen: Sequence[str] | None = None,
    default_unseen: Sequence[str] | None = None,
    default_label: str = "",
    val_split: int = 1,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    fix: str = "",
) -> ClassSplit:
    """Choose seen / unseen and train / val classes for a format whose files carry no GZSL split.

    Order of sources for seen / unseen: the xlsa17 class lists in the first of ``folders`` that has
    them, then the ``unseen`` names given, then ``default_unseen``. Validation classes come from
    ``trainclasses<k>.txt`` / ``valclasses<k>.txt`` in the same folder, else a seeded draw.

    Raises:
        DataError: when no source is available (``fix`` says what to provide), a name is unknown,
            or the lists do not partition the classes.
    """
    notes: list[str] = []
    lists: dict[str, np.ndarray] = {}
    where: Path | None = None
    for folder in folders:
        if folder is not None and (Path(folder) / "trainvalclasses.txt").is_file():
            lists, where = class_list_split(Path(folder), class_names, val_split), Path(folder)
            break
    all_classes = np.arange(len(class_names))
    if "seen" in lists:
        seen_c, unseen_c = lists["seen"], lists["unseen"]
        notes.append(f"seen / unseen classes from {where / 'trainvalclasses.txt'} and testclasses.txt")
        rest = np.setdiff1d(all_classes, np.union1d(seen_c, unseen_c))
        if np.intersect1d(seen_c, unseen_c).size or rest.size:
            raise DataError(
                f"{where}: trainvalclasses.txt and testclasses.txt must split all {len(class_names)} classes into "
                f"two disjoint lists (overlap {_names(np.intersect1d(seen_c, unseen_c), class_names)!r}, "
                f"unlisted {_names(rest, class_names)!r})"
            )
    else:
        given = unseen if unseen is not None else default_unseen
        if given is None:
            raise DataError(f"no seen / unseen split for these classes; {fix}")
        source = "the `unseen_classes` argument" if unseen is not None else default_label
        unknown = [n for n in given if n not in set(class_names)]
        if unseen is None and unknown:
            raise DataError(
                f"no class lists (trainvalclasses.txt / testclasses.txt) found in {[str(f) for f in folders]}, and "
                f"{default_label} are not all classes here (missing {quote_names(unknown, 3)}); {fix}"
            )
        unseen_c = class_indices([(n, i + 1) for i, n in enumerate(given)], class_names, source)
        seen_c = np.setdiff1d(all_classes, unseen_c)
        notes.append(f"unseen classes from {source}: {_names(unseen_c, class_names)}")
    if not seen_c.size or not unseen_c.size:
        raise DataError(f"the split must have seen and unseen classes, got {seen_c.size} seen and {unseen_c.size} unseen")
    if "val" in lists:
        train_c, val_c = lists["train"], lists["val"]
        if np.intersect1d(train_c, val_c).size or not np.array_equal(np.union1d(train_c, val_c), seen_c):
            raise DataError(f"{where}: trainclasses{val_split}.txt and valclasses{val_split}.txt must partition the "
                            f"{seen_c.size} seen classes of trainvalclasses.txt")
        notes.append(f"validation classes from {where / f'valclasses{val_split}.txt'}")
    else:
        train_c, val_c = draw_val_classes(seen_c, val_fraction, seed)
        notes.append(f"validation classes drawn among the {seen_c.size} seen classes (seed {seed}, fraction "
                     f"{val_fraction}): {_names(val_c, class_names)}")
    return ClassSplit(seen_c, unseen_c, train_c, val_c, tuple(notes))
