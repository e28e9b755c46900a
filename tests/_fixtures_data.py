"""Builders of format-exact miniature datasets in a folder: AwA2 release, CUB-200-2011, xlsa17, own folder.

Each builder writes the files with the published names, field names, dtypes and 1-based ids, a few
classes and a few tiny images per class, and returns the folder a loader is pointed at. The
stand-in ``res101.mat`` for the real split files uses a small feature width (the published files
have 2048) so that a test stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

AWA2_CLASSES = ("antelope", "grizzly+bear", "killer+whale", "beaver", "dalmatian", "horse", "bat", "seal")
AWA2_UNSEEN = ("horse", "bat", "seal")
PREDICATES = ("black", "white", "blue", "brown", "stripes")

CUB_CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross",
               "004.Groove_billed_Ani", "005.Crested_Auklet", "006.Least_Auklet", "007.Parakeet_Auklet")
CUB_UNSEEN = ("004.Groove_billed_Ani", "006.Least_Auklet")
CUB_ATTRIBUTES = ("has_bill_shape::curved_(up_or_down)", "has_bill_shape::dagger", "has_wing_color::blue",
                  "has_wing_color::brown")

REAL_XLSA17_COUNTS = {
    # dataset: (train classes, val classes, unseen classes) of the proposed split
    "AWA2": (27, 13, 10),
    "CUB": (100, 50, 50),
    "SUN": (580, 65, 72),
}


PUBLISHED_XLSA17 = Path(__file__).resolve().parent / "published" / "xlsa17"
"""The published xlsa17 split files kept in the repository (``tests/data/README.md``): ``AWA2/att_splits.mat``,
``CUB/sent_splits.mat``, ``SUN/att_splits.mat``."""


def published_xlsa17() -> Path:
    """The folder of the published xlsa17 split files, checked to hold all three (a clone always has them)."""
    files = [PUBLISHED_XLSA17 / "AWA2" / "att_splits.mat", PUBLISHED_XLSA17 / "CUB" / "sent_splits.mat",
             PUBLISHED_XLSA17 / "SUN" / "att_splits.mat"]
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, f"the repository's published split files are missing: {missing} (see tests/data/README.md)"
    return PUBLISHED_XLSA17


def write_image(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (12, 10)) -> Path:
    """A tiny random image; the format follows the file ending (JPEG for .jpg, PNG for .png)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    if path.suffix.lower() in (".jpg", ".jpeg") and mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(path)
    return path


def corrupt(path: Path) -> Path:
    """Overwrite a file with bytes no image decoder accepts."""
    path.write_bytes(b"this is not an image file\n" * 4)
    return path


def _write(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _id_lines(names: Sequence[str]) -> list[str]:
    """``"     1\\tname"``: right-aligned 1-based id, a tab, the name (AwA2 style)."""
    return [f"{i + 1:>6}\t{name}" for i, name in enumerate(names)]


def awa2_matrix(n_classes: int = len(AWA2_CLASSES), n_attributes: int = len(PREDICATES)) -> np.ndarray:
    """The continuous matrix the AwA2 builder writes: 0-100 with two decimals, ``-1`` at (0, 0) and (0, 1)."""
    values = np.round(np.random.default_rng(1).uniform(0, 100, size=(n_classes, n_attributes)), 2)
    values[0, :2] = -1.0
    return values


def make_awa2(
    base: Path, *, images_per_class: int = 3, xlsa17_lists: bool = True, val_lists: bool = True,
    classes: Sequence[str] = AWA2_CLASSES,
) -> Path:
    """``base/Animals_with_Attributes2`` with class/predicate files, both matrices and JPEG images.

    With ``xlsa17_lists``, ``base/xlsa17_AWA2`` holds the proposed-split class lists.

    Returns:
        The release folder.
    """
    root = base / "Animals_with_Attributes2"
    _write(root / "classes.txt", _id_lines(classes))
    _write(root / "predicates.txt", _id_lines(PREDICATES))
    values = awa2_matrix(len(classes))
    _write(root / "predicate-matrix-continuous.txt", [" ".join(f"{v:>7.2f}" for v in row) for row in values])
    binary = (values >= values.mean()).astype(int)
    _write(root / "predicate-matrix-binary.txt", [" ".join(str(v) for v in row) for row in binary])
    # The release's own standard split (different from the proposed one).
    _write(root / "trainclasses.txt", [c for c in classes if c not in ("beaver", "dalmatian")])
    _write(root / "testclasses.txt", ["beaver", "dalmatian"])
    for c, name in enumerate(classes):
        for k in range(images_per_class):
            write_image(root / "JPEGImages" / name / f"{name}_{10001 + k}.jpg", seed=100 * c + k)
    if xlsa17_lists:
        lists = base / "xlsa17_AWA2"
        seen = [c for c in classes if c not in AWA2_UNSEEN]
        _write(lists / "trainvalclasses.txt", seen)
        _write(lists / "testclasses.txt", AWA2_UNSEEN)
        if val_lists:
            _write(lists / "trainclasses1.txt", seen[:3])
            _write(lists / "valclasses1.txt", seen[3:])
    return root


def make_cub(base: Path, *, images_per_class: int = 3, captions: bool = True, class_lists: bool = True) -> Path:
    """``base/CUB_200_2011`` with the id files, attribute files, images and (beside it) captions.

    ``attributes.txt`` is written at the top level beside ``CUB_200_2011/``, as the archive ships it.

    Returns:
        The dataset folder.
    """
    root = base / "CUB_200_2011"
    _write(root / "classes.txt", [f"{i + 1} {name}" for i, name in enumerate(CUB_CLASSES)])
    images, labels, split = [], [], []
    ident = 0
    for c, name in enumerate(CUB_CLASSES):
        for k in range(images_per_class):
            ident += 1
            stem = f"{name.split('.', 1)[1]}_{k + 1:04d}_{ident}"
            images.append(f"{ident} {name}/{stem}.jpg")
            labels.append(f"{ident} {c + 1}")
            split.append(f"{ident} {k % 2}")
            write_image(root / "images" / name / f"{stem}.jpg", seed=1000 + ident)
            if captions:
                _write(base / "text_c10" / name / f"{stem}.txt",
                       [f"a small bird of class {c + 1} with a pointed bill", f"this bird number {k} has brown wings"])
    _write(root / "images.txt", images)
    _write(root / "image_class_labels.txt", labels)
    _write(root / "train_test_split.txt", split)
    _write(base / "attributes.txt", [f"{j + 1} {name}" for j, name in enumerate(CUB_ATTRIBUTES)])
    values = cub_matrix()
    _write(root / "attributes" / "class_attribute_labels_continuous.txt",
           [" ".join(f"{v:.6f}" for v in row) for row in values])
    if class_lists:
        seen = [c for c in CUB_CLASSES if c not in CUB_UNSEEN]
        _write(root / "trainvalclasses.txt", seen)
        _write(root / "testclasses.txt", CUB_UNSEEN)
    return root


def cub_matrix() -> np.ndarray:
    """The class-attribute percentages the CUB builder writes."""
    return np.random.default_rng(2).uniform(0, 100, size=(len(CUB_CLASSES), len(CUB_ATTRIBUTES)))


def make_folder(
    base: Path, *, classes: Sequence[tuple[str, str]] | None = None, images_per_class: int = 4,
    description: bool = True, attributes: bool = True, header: str | None = None, rows: Sequence[str] | None = None,
) -> Path:
    """A folder dataset: ``classes.csv`` and one image folder per class (JPEG and PNG, RGB/grey/RGBA).

    Args:
        base: where ``my_classes/`` is created.
        classes: ``(name, split)`` pairs (five classes, two unseen, by default).
        images_per_class: images written per class.
        description: write a description column.
        attributes: write two numeric attribute columns.
        header / rows: write these CSV lines verbatim instead (folders still follow ``classes``).

    Returns:
        The dataset folder.
    """
    root = base / "my_classes"
    classes = classes or [("zebra", "seen"), ("horse", "seen"), ("tiger", "seen"), ("okapi", "unseen"),
                          ("donkey", "unseen")]
    if header is None:
        cols = ["class", "split"] + (["stripes", "legs"] if attributes else []) + (["description"] if description else [])
        header = ",".join(cols)
        rows = []
        for i, (name, split) in enumerate(classes):
            cells = [name, split] + ([f"{i * 10.5:.1f}", "4"] if attributes else [])
            if description:
                cells.append(f'"a {name}, an animal with four legs"')
            rows.append(",".join(cells))
    _write(root / "classes.csv", [header, *(rows or [])])
    modes = ("RGB", "L", "RGBA", "RGB")
    for c, (name, _) in enumerate(classes):
        for k in range(images_per_class):
            mode = modes[k % len(modes)]
            suffix = ".png" if mode in ("RGBA", "LA") else ".jpg"
            write_image(root / name / f"img_{k}{suffix}", seed=50 * c + k, mode=mode)
    return root


def _cell(names: Sequence[str]) -> np.ndarray:
    cells = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cells[i, 0] = np.array([name])
    return cells


def _column(values: np.ndarray, dtype: type = np.uint16) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(-1, 1)


def make_xlsa17(
    base: Path, *, n_classes: int = 6, n_unseen: int = 2, n_val: int = 1, per_class: int = 5,
    feature_dim: int = 3, val_locs: bool = True, features: bool = True, image_files: bool = False,
    zero_based: bool = False, drop: Sequence[str] = (), semantic: str = "att",
) -> Path:
    """``base/TOY`` with ``<semantic>_splits.mat`` and ``res101.mat`` in the published layout.

    Images are sorted by class; of each seen class's ``per_class`` images the last one is in
    ``test_seen_loc``. Labels are uint8, locs uint16, both 1-based (0-based with ``zero_based``).
    ``drop`` removes fields from the split file. With ``image_files``, absolute MPI-style paths
    are stored and JPEGs written under ``base/TOY_images/JPEGImages``.

    Returns:
        The dataset folder.
    """
    import scipy.io

    folder = base / "TOY"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"class_{c:02d}" for c in range(n_classes)]
    unseen = list(range(n_classes - n_unseen, n_classes))
    seen = [c for c in range(n_classes) if c not in unseen]
    val = seen[-n_val:] if n_val else []
    labels = np.repeat(np.arange(n_classes), per_class)
    rows = np.arange(labels.size)
    is_last = (rows % per_class) == per_class - 1
    in_seen = np.isin(labels, seen)
    trainval = rows[in_seen & ~is_last]
    test_seen = rows[in_seen & is_last]
    test_unseen = rows[~in_seen]
    offset = 0 if zero_based else 1
    rng = np.random.default_rng(4)
    original = np.round(rng.uniform(0, 100, size=(4, n_classes)), 2)
    original[0, 0] = -1.0
    att = original / np.linalg.norm(original, axis=0, keepdims=True)
    split = {
        "allclasses_names": _cell(names),
        "att": att,
        "original_att": original,
        "trainval_loc": _column(trainval + offset),
        "test_seen_loc": _column(test_seen + offset),
        "test_unseen_loc": _column(test_unseen + offset),
    }
    if val_locs:
        split["train_loc"] = _column(rows[np.isin(labels, [c for c in seen if c not in val])] + offset)
        split["val_loc"] = _column(rows[np.isin(labels, val)] + offset)
    for name in drop:
        split.pop(name)
    scipy.io.savemat(folder / f"{semantic}_splits.mat", split)
    if features:
        res = {
            "features": rng.normal(size=(feature_dim, labels.size)).astype(np.float32),
            "labels": _column(labels + offset, np.uint8),
        }
        if image_files:
            paths = [f"/BS/xian/work/data/TOY//JPEGImages/{names[c]}/{names[c]}_{10001 + i}.jpg"
                     for i, c in enumerate(labels)]
            res["image_files"] = _cell(paths)
            for i, c in enumerate(labels):
                write_image(base / "TOY_images" / "JPEGImages" / names[c] / f"{names[c]}_{10001 + i}.jpg", seed=i)
        scipy.io.savemat(folder / "res101.mat", res)
    return folder


def standin_res101(split_file: Path, out_dir: Path, dataset: str, feature_dim: int = 2) -> Path:
    """A stand-in ``res101.mat`` beside a link to a real xlsa17 split file, labels consistent with its index arrays.

    Seen rows of ``train_loc`` are cut into contiguous runs of the train classes, rows of
    ``val_loc`` into runs of the val classes, rows of ``test_unseen_loc`` into runs of the unseen
    classes (counts of :data:`REAL_XLSA17_COUNTS`); class ids are a seeded permutation. Features
    are ``feature_dim`` wide (2048 in the published files).

    Returns:
        The folder holding the link and the stand-in.
    """
    import scipy.io

    out_dir.mkdir(parents=True, exist_ok=True)
    link = out_dir / split_file.name
    if not link.exists():
        link.symlink_to(split_file)
    mat = scipy.io.loadmat(split_file, variable_names=["train_loc", "val_loc", "test_unseen_loc",
                                                        "trainval_loc", "test_seen_loc", "allclasses_names"])
    n_classes = mat["allclasses_names"].shape[0]
    n_train, n_val, n_unseen = REAL_XLSA17_COUNTS[dataset]
    assert n_train + n_val + n_unseen == n_classes
    n = int(max(mat[k].max() for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc")))
    order = np.random.default_rng(7).permutation(n_classes)
    train_ids, val_ids, unseen_ids = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    labels = np.zeros(n, dtype=np.int64)
    for key, ids in (("train_loc", train_ids), ("val_loc", val_ids), ("test_unseen_loc", unseen_ids)):
        rows = np.sort(mat[key].reshape(-1).astype(np.int64) - 1)
        for chunk, c in zip(np.array_split(rows, len(ids)), ids):
            labels[chunk] = c + 1
    assert labels.min() >= 1
    dtype = np.uint8 if n_classes < 256 else np.uint16
    features = np.random.default_rng(8).normal(size=(feature_dim, n)).astype(np.float32)
    scipy.io.savemat(out_dir / "res101.mat", {"features": features, "labels": labels.astype(dtype).reshape(-1, 1)})
    return out_dir


def make_xlsa17_image_split(
    folder: Path, prefix: str, class_names: Sequence[str], paths: Sequence[str], labels: Sequence[int],
    unseen: Sequence[str], val: Sequence[str], *, unlisted: Sequence[str] = (), feature_dim: int = 3,
) -> dict[str, list[str]]:
    """An xlsa17 dataset folder (``att_splits.mat`` + ``res101.mat``) whose split covers an image folder's files.

    As in the published files: ``allclasses_names`` in an order of its own (here reversed), labels
    uint8 and locs uint16, both 1-based; ``image_files`` absolute MPI paths ``prefix + path``, rows
    in an order of their own (here reversed paths); ``train_loc`` / ``val_loc`` hold every image of
    the train / val classes. Of each seen class's images (in ``paths`` order) the *first* is in
    ``test_seen_loc``. ``unlisted`` paths are left out of ``res101.mat``.

    Returns:
        The relative paths of ``trainval``, ``test_seen`` and ``test_unseen``.
    """
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    names = list(reversed(class_names))
    position = {name: i for i, name in enumerate(names)}
    rows = [(p, class_names[c]) for p, c in reversed(list(zip(paths, labels))) if p not in set(unlisted)]
    first = {}
    for p, c in zip(paths, labels):
        if p not in set(unlisted):
            first.setdefault(class_names[c], p)
    expected: dict[str, list[str]] = {"trainval": [], "test_seen": [], "test_unseen": []}
    locs: dict[str, list[int]] = {"trainval_loc": [], "test_seen_loc": [], "test_unseen_loc": [], "train_loc": [],
                                  "val_loc": []}
    for r, (p, name) in enumerate(rows):
        if name in unseen:
            key = "test_unseen"
        else:
            key = "test_seen" if first[name] == p else "trainval"
            locs["val_loc" if name in val else "train_loc"].append(r + 1)
        locs[f"{key}_loc"].append(r + 1)
        expected[key].append(p)
    rng = np.random.default_rng(9)
    original = np.round(rng.uniform(0, 100, size=(4, len(names))), 2)
    split = {"allclasses_names": _cell(names), "att": original / np.linalg.norm(original, axis=0, keepdims=True),
             "original_att": original, **{key: _column(values) for key, values in locs.items()}}
    scipy.io.savemat(folder / "att_splits.mat", split)
    scipy.io.savemat(folder / "res101.mat", {
        "features": rng.normal(size=(feature_dim, len(rows))).astype(np.float32),
        "labels": _column([position[name] + 1 for _, name in rows], np.uint8),
        "image_files": _cell([prefix + p for p, _ in rows]),
    })
    return {key: sorted(values) for key, values in expected.items()}
