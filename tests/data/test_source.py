"""Image sources: batches made or read on demand give what the same images in memory give."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from niwt import ShapesConfig, create_model, make_shapes, neuron_importance
from niwt.data.files.image_dataset import ImageFileDataset
from niwt.data.files.images import ImageTransform
from niwt.data.source import (
    FileImages,
    ImageSource,
    ShapesStream,
    SourceDataset,
    TensorImages,
    iter_batches,
    take,
)
from niwt.errors import ConfigError, DataError
from niwt.scores import predict_logits
from niwt.training import train_classifier
from tests._fixtures_data import corrupt, write_image


@pytest.fixture(scope="module")
def world():
    return make_shapes(ShapesConfig(n_source=2, n_seen=6, n_unseen=3, n_val=2, n_source_images=2,
                                    n_trainval_images=2, n_test_seen_images=1, n_test_unseen_images=1))


class _Counting(ImageSource):
    """A source that records the largest batch it was asked for and every call to ``load``."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.shape, self.largest, self.calls = images, tuple(images.shape), 0, []

    def load(self, positions):
        self.largest = max(self.largest, len(positions))
        self.calls.append(positions.tolist())
        return self.images[torch.from_numpy(positions)]


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """A source of 30 tiny JPEGs (three shapes, two sizes), 8x8 after the transform, and their labels."""
    root = tmp_path_factory.mktemp("jpegs")
    paths = []
    for i in range(30):
        name = f"c{i % 3}/img_{i}.jpg"
        write_image(root / name, seed=i, size=(12, 10) if i % 2 else (9, 14))
        paths.append(name)
    labels = np.arange(30) % 3
    dataset = ImageFileDataset(root, paths, labels, ImageTransform(resize=8, crop=8, normalize=False))
    return root, dataset, labels


def _decoded(dataset, order):
    return torch.stack([dataset[int(i)][0] for i in order])


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


def test_worker_processes_give_the_in_process_tensors_in_sampler_order(jpegs):
    _, dataset, _ = jpegs
    order = np.random.default_rng(3).permutation(30)
    runs = {}
    for workers in (0, 2):
        batches = list(iter_batches(FileImages(dataset, size=8, workers=workers), order, 7))
        assert [len(b.positions) for b in batches] == [7, 7, 7, 7, 2]
        assert torch.cat([b.positions for b in batches]).tolist() == order.tolist()
        runs[workers] = torch.cat([b.images for b in batches])
    assert torch.equal(runs[0], runs[2])
    assert torch.equal(runs[0], _decoded(dataset, order)) and runs[0].shape == (30, 3, 8, 8)
    # the source's own setting is the default, an argument overrides it; an empty order yields nothing
    assert torch.equal(torch.cat([b.images for b in iter_batches(FileImages(dataset, size=8, workers=2), order[:4], 3,
                                                                 workers=0)]), runs[0][:4])
    assert list(iter_batches(FileImages(dataset, size=8, workers=2), np.zeros(0, np.int64), 3)) == []


def test_the_source_is_read_one_batch_at_a_time(world):
    images = torch.rand(23, 3, 4, 4)
    counting = _Counting(images)
    order = np.arange(23)[::-1].copy()
    stream = iter_batches(counting, order, 5, workers=0)
    first = next(stream)
    assert counting.calls == [[22, 21, 20, 19, 18]]  # nothing is read before it is asked for
    assert torch.equal(first.images, images[order[:5]])
    rest = list(stream)
    assert len(counting.calls) == 5 and counting.largest == 5 and len(rest) == 4
    assert sorted(sum(counting.calls, [])) == list(range(23))


def test_in_memory_tensors_are_sliced_or_gathered_exactly():
    images = torch.rand(11, 3, 2, 2)
    whole = list(iter_batches(images, None, 4))
    assert [b.positions.tolist() for b in whole] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert whole[1].images.data_ptr() == images[4:].data_ptr()  # consecutive positions: a view, no copy
    picked = list(iter_batches(images, torch.tensor([5, 1, 9]), 2))
    assert torch.equal(picked[0].images, images[[5, 1]]) and torch.equal(picked[1].images, images[[9]])
    with pytest.raises(ConfigError, match="batch_size"):
        next(iter_batches(images, None, 0))
    with pytest.raises(DataError, match="out of range"):
        next(iter_batches(images, [11], 2))
    with pytest.raises(ConfigError, match="workers"):
        FileImages(torch.utils.data.TensorDataset(images, torch.zeros(11)), size=2, workers=-1)


def test_reading_a_source_leaves_the_global_random_state_alone(jpegs, world):
    _, dataset, _ = jpegs
    state = torch.get_rng_state()
    for source in (FileImages(dataset, size=8, workers=2), ShapesStream(world, world.seen_classes, 9, seed=1)):
        list(iter_batches(source, np.arange(9), 4))
    assert torch.equal(state, torch.get_rng_state())
    stream = ShapesStream(world, world.seen_classes, 9, seed=1)
    assert torch.equal(torch.cat([b.images for b in iter_batches(stream, [8, 2, 5], 2)]), stream[np.array([8, 2, 5])])


def test_the_dataset_view_pickles_for_spawned_workers(jpegs):
    _, dataset, _ = jpegs
    view = SourceDataset(FileImages(dataset, size=8, workers=2).subset(np.array([4, 2])))
    again = pickle.loads(pickle.dumps(view))
    assert len(again) == 2 and torch.equal(again[1], dataset[2][0])
    assert torch.equal(again.__getitems__([1, 0]), _decoded(dataset, [2, 4]))


def test_an_unreadable_file_in_a_worker_is_named(tmp_path):
    for i in range(6):
        write_image(tmp_path / f"{i}.jpg", seed=i)
    corrupt(tmp_path / "4.jpg")
    dataset = ImageFileDataset(tmp_path, [f"{i}.jpg" for i in range(6)], transform=ImageTransform(8, 8, False))
    with pytest.raises(DataError, match=r"^cannot decode image .*4\.jpg"):
        list(iter_batches(FileImages(dataset, size=8, workers=2), None, 2))


def test_training_epochs_over_files_with_workers_equal_training_in_memory(jpegs):
    _, dataset, labels = jpegs
    torch.manual_seed(0)
    start = create_model("vgg", 3, width=4, hidden=8, image_size=8)
    models, logits = [], []
    for images in (FileImages(dataset, size=8, workers=2), _decoded(dataset, range(30))):
        model = copy.deepcopy(start)
        torch.manual_seed(1)
        losses = train_classifier(model, images, torch.from_numpy(labels), epochs=2, batch_size=8, lr=1e-2,
                                  generator=torch.Generator().manual_seed(2))
        assert len(losses) == 2 and all(np.isfinite(losses))
        models.append(model)
        logits.append(predict_logits(model, images, batch_size=7))
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(models[0].state_dict()["classifier.weight"], start.state_dict()["classifier.weight"])
    assert torch.equal(logits[0], logits[1]) and logits[0].shape == (30, 3)
