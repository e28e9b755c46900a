"""Images read or made on demand, one batch at a time, so memory does not grow with the dataset.

An :class:`ImageSource` has a length, a ``shape`` ``(N, C, H, W)`` and returns float32 tensors
``[n, C, H, W]`` for a slice or an index array. Every stage that walks over images (training,
importance, features, scores, export) goes through :func:`iter_batches`: an in-memory tensor is
sliced, a source is read by a torch ``DataLoader`` over :class:`SourceDataset` (one ``load`` call
per batch, in worker processes when the source asks for them), so only the batches being processed
or prefetched are ever held, whatever the dataset's size.

* :class:`TensorImages`: an in-memory tensor (what small worlds use).
* :class:`FileImages`: image files decoded by a torch ``Dataset``, read by DataLoader workers.
* :class:`ShapesStream`: shapes-world images rendered on demand from a per-image seed, for worlds
  too large to hold (load tests with 100,000 images).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from niwt.checks import LazyImages
from niwt.data.record import ZSLData
from niwt.errors import ConfigError, DataError, NIWTError

__all__ = ["ImageSource", "TensorImages", "FileImages", "ShapesStream", "SourceDataset", "Batch", "default_workers",
           "iter_batches", "take"]


def default_workers() -> int:
    """DataLoader worker processes used when none are asked for: ``min(4, os.cpu_count())``."""
    return min(4, os.cpu_count() or 1)


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


class ImageSource(LazyImages):
    """Base class: ``len``, ``shape`` and batch access by slice or index array.

    ``workers`` is how many DataLoader worker processes :func:`iter_batches` reads this source
    with (0: in the calling process); cheap sources keep 0.
    """

    shape: tuple[int, int, int, int]
    dtype: torch.dtype = torch.float32
    workers: int = 0

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
        self.workers = parent.workers

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

    ``load`` decodes its batch in the calling process; :func:`iter_batches` spreads the batches
    over ``workers`` DataLoader processes.

    Args:
        dataset: e.g. :class:`niwt.data.files.image_dataset.ImageFileDataset` with a transform to a
            fixed size.
        size: the side the transform gives (for ``shape``); read from the first image when None.
        workers: DataLoader worker processes (0: decode in the calling process); ``None``:
            :func:`default_workers`.

    Raises:
        ConfigError: for a negative or non-integer ``workers``.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, size: int | None = None, workers: int | None = None
                 ) -> None:
        self.dataset = dataset
        first = dataset[0][0] if size is None else None
        side = size if size is not None else int(first.shape[-1])
        self.shape = (len(dataset), 3, side, side)  # type: ignore[arg-type]
        self.workers = default_workers() if workers is None else _check_workers(workers)

    def load(self, positions: np.ndarray) -> torch.Tensor:
        if not positions.size:
            return torch.zeros(0, *self.shape[1:])
        return torch.stack([self.dataset[int(i)][0] for i in positions])


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


def _check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ConfigError(f"`workers` must be an integer >= 0 (0: read images in the calling process), got {workers!r}")
    return int(workers)


class SourceDataset(Dataset):
    """A torch ``Dataset`` view of an :class:`ImageSource`: item ``i`` is image ``i`` ``[C, H, W]``.

    A batch of positions is read with one ``load`` call (``__getitems__``, which the DataLoader
    uses when it batches). An error of niwt raised while reading (an undecodable file) is handed
    back as the batch's value, so that :func:`iter_batches` raises it in the calling process with
    its own message. Pickles with its source (worker processes started by spawn).
    """

    def __init__(self, source: ImageSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.source[np.array([index], dtype=np.int64)][0]

    def __getitems__(self, positions: Sequence[int]) -> torch.Tensor | _Raised:
        try:
            return self.source[np.asarray(positions, dtype=np.int64)]
        except NIWTError as err:
            return _Raised(err)


class _Raised(NamedTuple):
    error: NIWTError


class Batch(NamedTuple):
    """One batch of :func:`iter_batches`: the image positions (``int64``) and their images."""

    positions: torch.Tensor
    images: torch.Tensor


def _batch_as_is(batch: object) -> object:
    """The DataLoader's collate function: ``__getitems__`` already returns the batch."""
    return batch


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy in a worker from the seed torch gave it (``base_seed + worker_id``, deterministic)."""
    np.random.seed(torch.initial_seed() % 2**32)


def _rows(images: torch.Tensor, chunk: np.ndarray) -> torch.Tensor:
    """Rows ``chunk`` of an in-memory tensor: a slice for consecutive positions, else a gather."""
    if chunk.size and chunk[-1] - chunk[0] == chunk.size - 1 and (chunk.size == 1 or (np.diff(chunk) == 1).all()):
        return images[int(chunk[0]) : int(chunk[-1]) + 1]
    return images[torch.from_numpy(chunk)]


def iter_batches(
    images: torch.Tensor | np.ndarray | ImageSource,
    positions: np.ndarray | torch.Tensor | Sequence[int] | None,
    batch_size: int,
    *,
    workers: int | None = None,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """The images at ``positions``, in that order, ``batch_size`` at a time.

    An in-memory tensor is sliced (consecutive positions) or gathered, exactly as indexing it
    would. An :class:`ImageSource` is read by a ``torch.utils.data.DataLoader`` over
    :class:`SourceDataset` with ``sampler=positions``: each batch is one ``load`` call, made in
    one of ``workers`` worker processes (or in this process for 0), at most two batches per
    worker read ahead; batches come back in order. The DataLoader draws its worker seeds from a
    private generator, so torch's global random state is left as it was. Each call is one pass
    over ``positions`` (worker processes end with it).

    Args:
        images: ``[N, C, H, W]`` images, in memory or as a source.
        positions: indices into ``images`` (a shuffled order, a subset, a shard); ``None``: all,
            in order.
        batch_size: images per batch (the last one may be smaller).
        workers: worker processes for a source; ``None``: the source's own ``workers``. Ignored
            for in-memory tensors.
        pin_memory: put a source's batches in pinned memory (faster copies to a CUDA device);
            ignored without CUDA and for in-memory tensors.

    Yields:
        :class:`Batch` ``(positions, images)``.

    Raises:
        ConfigError: for a ``batch_size`` < 1 or a negative ``workers``.
        DataError: for positions out of range or not integers, or an image that cannot be read
            (the reader's own message).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"`batch_size` must be an integer >= 1, got {batch_size!r}")
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, (torch.Tensor, ImageSource)):
        raise DataError(f"`images` must be a tensor [N, C, H, W] or an ImageSource, got {type(images).__name__}")
    n = int(images.shape[0])
    order = np.arange(n) if positions is None else _positions(positions, n).astype(np.int64, copy=False)
    step = int(batch_size)
    chunks = [order[start : start + step] for start in range(0, order.size, step)]
    if not isinstance(images, ImageSource):
        for chunk in chunks:
            yield Batch(torch.from_numpy(chunk), _rows(images, chunk))
        return
    n_workers = min(images.workers if workers is None else _check_workers(workers), len(chunks))
    loader = DataLoader(
        SourceDataset(images), batch_size=step, sampler=order.tolist(), num_workers=n_workers,
        collate_fn=_batch_as_is, pin_memory=bool(pin_memory) and torch.cuda.is_available(),
        worker_init_fn=_seed_worker if n_workers else None, generator=torch.Generator().manual_seed(0),
    )
    for chunk, batch in zip(chunks, loader):
        if isinstance(batch, _Raised):
            raise batch.error
        yield Batch(torch.from_numpy(chunk), batch)


def take(images: torch.Tensor | ImageSource, idx: np.ndarray) -> torch.Tensor | ImageSource:
    """Images ``idx`` of ``images``: a tensor for a tensor, a lazy view for a source."""
    if isinstance(images, ImageSource):
        return images.subset(idx)
    return images[idx]
