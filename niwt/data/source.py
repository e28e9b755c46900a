"""Images read or made on demand, one batch at a time, so memory does not grow with the dataset.

An :class:`ImageSource` has a length, a ``shape`` ``(N, C, H, W)`` and returns float32 tensors
``[n, C, H, W]`` for a slice or an index array. Every stage that walks over images (training,
importance, transfer pools, features, scores) indexes it batch by batch, exactly as it indexes an
in-memory tensor; only the batch being processed is ever held.

* :class:`TensorImages`: an in-memory tensor (what small worlds use).
* :class:`FileImages`: image files decoded by a torch ``Dataset`` (a thread pool decodes a batch).
* :class:`ShapesStream`: shapes-world images rendered on demand from a per-image seed, for worlds
  too large to hold (load tests with 100,000 images).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from niwt.data.record import ZSLData
from niwt.errors import DataError

__all__ = ["ImageSource", "TensorImages", "FileImages", "ShapesStream", "take"]


def _positions(index: object, n: int) -> np.ndarray:
    if isinstance(index, slice):
        return np.arange(n)[index]
    if isinstance(index, torch.Tensor):
        index = index.cpu().numpy()
    arr = np.asarray(index)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"an image source is indexed by a slice or a 1-d integer array, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise DataError(f"image index out of range [0, {n}): min {arr.min()}, max {arr.max()}")
    return arr % n if arr.size else arr.astype(np.int64)


class ImageSource:
    """Base class: ``len``, ``shape`` and batch access by slice or index array."""

    shape: tuple[int, int, int, int]
    dtype: torch.dtype = torch.float32

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def load(self, positions: np.ndarray) -> torch.Tensor:
        """Images at ``positions`` (an int64 array) as a float tensor ``[n, C, H, W]``."""
        raise NotImplementedError

    def __getitem__(self, index: object) -> torch.Tensor:
        return self.load(_positions(index, len(self))).to(self.dtype)

    def subset(self, index: object) -> ImageSource:
        """A view of the images at ``index`` (nothing is loaded)."""
        return _Subset(self, _positions(index, len(self)))

    def to(self, dtype: torch.dtype) -> ImageSource:
        """A view whose batches have ``dtype``."""
        view = _Subset(self, np.arange(len(self)))
        view.dtype = dtype
        return view

    def is_floating_point(self) -> bool:
        return True


class _Subset(ImageSource):
    def __init__(self, parent: ImageSource, positions: np.ndarray) -> None:
        self.parent, self.positions = parent, positions
        self.shape = (len(positions), *parent.shape[1:])
        self.dtype = parent.dtype

    def load(self, positions: np.ndarray) -> torch.Tensor:
        return self.parent.load(self.positions[positions])


class TensorImages(ImageSource):
    """Images already in memory (a float tensor ``[N, C, H, W]``)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.shape = tuple(images.shape)  # type: ignore[assignment]
        self.dtype = images.dtype

    def load(self, positions: np.ndarray) -> torch.Tensor:
        return self.images[torch.from_numpy(positions)]


class FileImages(ImageSource):
    """Image files decoded on access through a torch ``Dataset`` whose items are ``(image, label)``.

    Args:
        dataset: e.g. :class:`niwt.data.images.ImageFileDataset` with a transform to a fixed size.
        size: the side the transform gives (for ``shape``); read from the first image when None.
        workers: threads decoding a batch (Pillow releases the interpreter lock while decoding).
    """

    def __init__(self, dataset: torch.utils.data.Dataset, size: int | None = None, workers: int = 4) -> None:
        self.dataset = dataset
        first = dataset[0][0] if size is None else None
        side = size if size is not None else int(first.shape[-1])
        self.shape = (len(dataset), 3, side, side)  # type: ignore[arg-type]
        self.workers = workers

    def load(self, positions: np.ndarray) -> torch.Tensor:
        if not positions.size:
            return torch.zeros(0, *self.shape[1:])
        with ThreadPoolExecutor(max_workers=min(self.workers, positions.size)) as pool:
            items = list(pool.map(lambda i: self.dataset[int(i)][0], positions))
        return torch.stack(items)


class ShapesStream(ImageSource):
    """Shapes-world images of ``classes`` rendered on demand, image ``i`` from its own seed.

    The classes' attribute structure (each group's primary value and its purity) is read from the
    knowledge of a shapes world ``world``; image ``i`` belongs to ``classes[i % len(classes)]`` and
    is drawn and rendered with ``np.random.default_rng([seed, i])``, so any batch can be made
    alone and the same index always gives the same image.
    """

    def __init__(self, world: ZSLData, classes: Sequence[int] | np.ndarray, n_images: int, *, seed: int = 0,
                 image_size: int = 32, noise: float = 0.15) -> None:
        from niwt.data.shapes import ATTRIBUTE_GROUPS

        if world.name != "shapes":
            raise DataError(f"`world` must be a shapes world, got dataset {world.name!r}")
        self.classes = np.asarray(classes, dtype=np.int64)
        if not self.classes.size or n_images < 1:
            raise DataError(f"need classes and n_images >= 1, got {self.classes.size} classes, {n_images} images")
        sizes = [len(values) for _, values in ATTRIBUTE_GROUPS]
        blocks = np.split(world.knowledge[self.classes], np.cumsum(sizes)[:-1], axis=1)
        self.primaries = np.stack([b.argmax(1) for b in blocks], 1)
        self.purity = np.stack([b.max(1) for b in blocks], 1)
        self.group_sizes = sizes
        self.seed, self.noise = seed, noise
        self.shape = (n_images, 3, image_size, image_size)

    @property
    def labels(self) -> np.ndarray:
        """Global class id of every image."""
        return self.classes[np.arange(len(self)) % self.classes.size]

    def render(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``i`` as ``([H, W, 3] uint8, [H, W] bool mask)``."""
        from niwt.data.shapes import COLOURS, PATTERNS, SHAPES, SIZES, render_shape

        rng = np.random.default_rng([self.seed, int(i)])
        c = int(i) % self.classes.size
        values = []
        for g, k in enumerate(self.group_sizes):
            if rng.random() < self.purity[c, g]:
                values.append(int(self.primaries[c, g]))
            else:
                other = int(rng.integers(k - 1))
                values.append(other + (other >= self.primaries[c, g]))
        return render_shape(SHAPES[values[0]], COLOURS[values[1]], PATTERNS[values[2]], SIZES[values[3]], rng,
                            self.shape[-1], self.noise)

    def load(self, positions: np.ndarray) -> torch.Tensor:
        batch = np.stack([self.render(int(i))[0] for i in positions]) if positions.size else \
            np.zeros((0, *self.shape[2:], 3), np.uint8)
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


def take(images: torch.Tensor | ImageSource, idx: np.ndarray) -> torch.Tensor | ImageSource:
    """Images ``idx`` of ``images``: a tensor for a tensor, a lazy view for a source."""
    if isinstance(images, ImageSource):
        return images.subset(idx)
    return images[idx]
