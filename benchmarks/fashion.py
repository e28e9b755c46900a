"""Fashion-MNIST (Zalando's 28 x 28 photos of clothes) as a niwt folder dataset, from the idx files.

Debian's ``dataset-fashion-mnist`` package installs the same four idx files torchvision's
``FashionMNIST`` downloads (``apt-get install dataset-fashion-mnist``: they land in
``/usr/share/datasets/fashion-mnist``); any folder holding them works. Nothing is downloaded.

Each class gets one sentence, written from what the garment is (not from the images), which a run
embeds with its text encoder, and an attribute row of the same facts.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

IDX_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` puts the idx files."""

CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
"""Fashion-MNIST's ten classes, in label order."""

ATTRIBUTES = ("upper_body", "legs", "footwear", "long_sleeves", "short_sleeves", "buttons_or_zip", "knitted",
              "one_piece", "open_straps", "covers_ankle", "laces", "handle", "flat_carried")
KNOWLEDGE = {
    # class: (attribute values in ATTRIBUTES order, description)
    "t-shirt": ((1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0), "a light top with short sleeves and no buttons, pulled over the head"),
    "trouser": ((0, 1, 0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0, 0), "a long garment with two legs, worn from the waist down"),
    "pullover": ((1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0), "a warm knitted top with long sleeves, pulled over the head"),
    "dress": ((1, 0.5, 0, 0.3, 0.3, 0, 0, 1, 0, 0, 0, 0, 0), "a one-piece garment for the body that hangs down over the legs like a long top"),
    "coat": ((1, 0.3, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0), "a heavy outer garment with long sleeves, buttons or a zip down the front"),
    "sandal": ((0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), "an open shoe of thin straps and a flat sole"),
    "shirt": ((1, 0, 0, 1, 0.3, 1, 0, 0, 0, 0, 0, 0, 0), "a light top with a collar and buttons down the front, long sleeves"),
    "sneaker": ((0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0), "a low closed sports shoe with laces and a rubber sole"),
    "bag": ((0, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0, 1, 1), "a container carried by a handle or a strap"),
    "ankle boot": ((0, 0, 1, 0, 0, 0.3, 0, 0, 0, 1, 0.3, 0, 0), "a closed shoe that covers the ankle, with a heel"),
}
UNSEEN = ("pullover", "dress", "sneaker")
"""Unseen classes: each has seen relatives (tops, shoes), and each of its attributes is held by a seen class."""

_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not) as a uint8 array: magic 0x0000080N, N big-endian sizes, the data."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            opener = gzip.open if candidate.suffix == ".gz" else open
            with opener(candidate, "rb") as f:
                raw = f.read()
            break
    else:
        raise FileNotFoundError(f"{path}[.gz] not found: install Debian's dataset-fashion-mnist "
                                f"(apt-get install dataset-fashion-mnist) or pass --idx with the folder of the idx files")
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (magic {raw[:4].hex()})")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: holds {data.size} bytes of data, its header says {shape}")
    return data.reshape(shape)


def load_fashion(idx_dir: Path = IDX_DIR) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images ``[N, 28, 28]`` uint8 and labels ``[N]`` (train then test files)."""
    images, labels = [], []
    for part in ("train", "test"):
        img_name, lab_name = _FILES[part]
        images.append(_read_idx(Path(idx_dir) / img_name))
        labels.append(_read_idx(Path(idx_dir) / lab_name))
    return np.concatenate(images), np.concatenate(labels)


def write_fashion(root: Path, *, per_class: int = 300, size: int = 64, seed: int = 0,
                  idx_dir: Path = IDX_DIR) -> Path:
    """``per_class`` images of every class (drawn with ``seed``) as a folder dataset under ``root``:
    one folder of ``size`` px RGB PNGs per class (bilinear from 28 px), and classes.csv with the
    split, the attribute row and the description of each class."""
    images, labels = load_fashion(idx_dir)
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for label, name in enumerate(CLASSES):
        folder = root / name.replace(" ", "_")
        folder.mkdir(exist_ok=True)
        for i in np.sort(rng.choice(np.flatnonzero(labels == label), per_class, replace=False)):
            Image.fromarray(images[i]).resize((size, size), Image.BILINEAR).convert("RGB").save(folder / f"{i:05d}.png")
    with (root / "classes.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "split", *ATTRIBUTES, "description"])
        for name in CLASSES:
            values, text = KNOWLEDGE[name]
            writer.writerow([name.replace(" ", "_"), "unseen" if name in UNSEEN else "seen", *values, text])
    return root
