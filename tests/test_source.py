"""Image sources: batches made or read on demand give what the same images in memory give."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from niwt import ShapesConfig, create_model, make_shapes, neuron_importance
from niwt.data.source import ImageSource, ShapesStream, TensorImages, take
from niwt.errors import DataError


@pytest.fixture(scope="module")
def world():
    return make_shapes(ShapesConfig(n_source=2, n_seen=6, n_unseen=3, n_val=2, n_source_images=2,
                                    n_trainval_images=2, n_test_seen_images=1, n_test_unseen_images=1))


class _Counting(ImageSource):
    """A source that records the largest batch it was asked for."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.shape, self.largest = images, tuple(images.shape), 0

    def load(self, positions):
        self.largest = max(self.largest, len(positions))
        return self.images[torch.from_numpy(positions)]


def test_stream_renders_each_image_from_its_own_seed(world):
    stream = ShapesStream(world, world.seen_classes, 20, seed=4)
    a, b = stream[np.array([3, 7])], stream[3:8:4]
    assert torch.equal(a, b) and a.shape == (2, 3, 32, 32) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert not torch.equal(stream[0:1], stream[1:2])
    assert stream.labels.tolist()[:7] == world.seen_classes.tolist() + world.seen_classes.tolist()[:1]
    # the class's primary attribute values are read back from the world's knowledge
    image, mask = stream.render(0)
    assert image.shape == (32, 32, 3) and mask.any()


def test_streamed_importance_equals_in_memory_and_never_loads_more_than_a_batch(world):
    torch.manual_seed(0)
    model = create_model("vgg", 4, width=4, hidden=8)
    images = torch.rand(23, 3, 32, 32)
    targets = torch.arange(23) % 4
    counting = _Counting(images)
    streamed = neuron_importance(model, "features", counting, targets, batch_size=5)
    in_memory = neuron_importance(model, "features", images, targets, batch_size=5)
    assert torch.allclose(streamed, in_memory) and counting.largest == 5


def test_views_and_take(world):
    source = TensorImages(torch.arange(5 * 3 * 2 * 2, dtype=torch.float32).view(5, 3, 2, 2))
    view = take(source, np.array([4, 1]))
    assert isinstance(view, ImageSource) and view.shape == (2, 3, 2, 2)
    assert torch.equal(view[1:2], source[np.array([1])])
    assert torch.equal(take(source.images, np.array([4, 1])), view[:])
    with pytest.raises(DataError, match="out of range"):
        source[np.array([5])]
    with pytest.raises(DataError, match="integer"):
        source[np.array([0.5])]
