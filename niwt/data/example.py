"""A small dataset in the own-classes ``folder`` format, to copy the layout from and to try it.

``write_example_folder(out)`` renders a few shapes-world classes as PNG files, one sub-folder per
class, and writes the one CSV table the format needs: per class its split (``seen`` / ``unseen``),
numeric attribute columns and a ``description``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from niwt.errors import RunDirectoryError

__all__ = ["write_example_folder"]


def write_example_folder(out: str | Path, *, n_seen: int = 12, n_unseen: int = 4, images_per_class: int = 24,
                         seed: int = 0) -> Path:
    """Write ``out/classes.csv`` and ``out/<class>/*.png``; returns ``out``.

    Raises:
        RunDirectoryError: ``out`` exists and is not empty (nothing is ever overwritten).
    """
    from PIL import Image

    from niwt.data.shapes import ShapesConfig, make_shapes

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirectoryError(f"{str(out)!r} exists and is not empty; give a new folder for the example")
    world = make_shapes(ShapesConfig(seed=seed, n_source=0, n_seen=n_seen, n_unseen=n_unseen, n_val=2,
                                     n_source_images=1, n_trainval_images=images_per_class, n_test_seen_images=1,
                                     n_test_unseen_images=images_per_class))
    out.mkdir(parents=True, exist_ok=True)
    classes = np.concatenate([world.seen_classes, world.unseen_classes])
    columns = [name.replace(":", "_") for name in world.knowledge_names]
    with open(out / "classes.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "split", *columns, "description"])
        for c in classes:
            split = "seen" if c in world.seen_classes else "unseen"
            writer.writerow([world.class_names[c], split, *(f"{v:.4f}" for v in world.knowledge[c]),
                             world.descriptions[c][0]])
    for c in classes:
        folder = out / world.class_names[c]
        folder.mkdir()
        for k, i in enumerate(np.flatnonzero(world.labels == c)):
            Image.fromarray(world.images[i]).save(folder / f"{k:03d}.png")
    return out
