"""Opening a run's dataset from its ``[data]`` config, the content hash of a record, and the kinds registry."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from niwt.config import DATA_KINDS, FolderDataConfig, Xlsa17DataConfig
from niwt.data import ZSLData, data_key, open_dataset
from niwt.data.registry import FORMATS, KINDS
from niwt.data.shapes import make_shapes
from niwt.data.source import FileImages
from niwt.errors import ConfigError
from tests._fixtures_data import make_folder, make_xlsa17


def test_the_shapes_world_opens_in_memory_and_refuses_feature_mode(tiny_shapes_config):
    data, images = open_dataset(tiny_shapes_config, feature_mode=False)
    assert isinstance(images, torch.Tensor) and images.shape == (data.labels.size, 3, 32, 32)
    assert data_key(data) == data_key(make_shapes(tiny_shapes_config))
    with pytest.raises(ConfigError, match="the shapes world has images"):
        open_dataset(tiny_shapes_config, feature_mode=True)


def test_a_features_dataset_opens_as_one_pixel_images_in_feature_mode_only(tmp_path):
    cfg = Xlsa17DataConfig(root=str(make_xlsa17(tmp_path)), seed=0)
    data, features = open_dataset(cfg, feature_mode=True)
    assert features.shape == (data.labels.size, 3, 1, 1) and features.dtype == torch.float32
    np.testing.assert_array_equal(features[:, :, 0, 0].numpy(), data.features)
    with pytest.raises(ConfigError, match="has features but no image files"):
        open_dataset(cfg, feature_mode=False)


def test_an_image_folder_opens_lazily_with_its_notes_logged(tmp_path, caplog):
    cfg = FolderDataConfig(root=str(make_folder(tmp_path)), seed=0, resize=8, crop=8, workers=0)
    with caplog.at_level(logging.INFO, logger="niwt.data"):
        data, images = open_dataset(cfg, feature_mode=False)
    assert isinstance(images, FileImages) and images.shape == (data.labels.size, 3, 8, 8)
    assert "folder: validation classes drawn" in caplog.text
    with pytest.raises(ConfigError, match="has none; use a CNN"):
        open_dataset(cfg, feature_mode=True)


def test_data_key_follows_the_content(tiny_shapes_config):
    data = make_shapes(tiny_shapes_config)
    key = data_key(data)
    assert len(key) == 20 and int(key, 16) >= 0
    fewer = dataclasses.replace(data, test_seen_idx=data.test_seen_idx[1:])
    assert isinstance(fewer, ZSLData) and data_key(fewer) != key
    assert data_key(dataclasses.replace(data, name="other")) != key


def test_every_kind_is_declared_once_in_the_registry():
    assert list(DATA_KINDS) == list(KINDS) == ["shapes", "awa2", "cub", "xlsa17", "folder"]
    assert FORMATS == ("xlsa17", "awa2", "cub", "folder")
    for name, kind in KINDS.items():
        assert kind.config().kind == name if name == "shapes" else kind.config(root="r").kind == name
        assert (kind.survey is not None) == (kind.detect is not None) == (name in FORMATS)


def _by_class(data, images) -> dict[str, torch.Tensor]:
    return {name: images[np.flatnonzero(data.labels == c)] for c, name in enumerate(data.class_names)}


@pytest.mark.parametrize("kind", ["shapes", "folder"])
def test_withheld_classes_leave_with_their_images_and_nothing_else_changes(tiny_shapes_config, tmp_path, kind):
    from niwt.errors import DataError

    if kind == "shapes":
        config = tiny_shapes_config
    else:
        config = FolderDataConfig(root=str(make_folder(tmp_path)), seed=0, resize=16, crop=16, check_images=False)
    data, images = open_dataset(config, feature_mode=False)
    gone = data.class_names[int(data.unseen_classes[0])]
    less, rest = open_dataset(dataclasses.replace(config, withhold=[gone]), feature_mode=False)
    assert less.class_names == tuple(n for n in data.class_names if n != gone)
    assert len(rest) == data.labels.size - int(np.sum(data.labels == data.class_names.index(gone)))
    full, kept = _by_class(data, images), _by_class(less, rest)
    for name in less.class_names:  # every other class: the same knowledge and the same images, in order
        torch.testing.assert_close(kept[name], full[name], rtol=0, atol=0)
        np.testing.assert_array_equal(less.knowledge[less.class_names.index(name)],
                                      data.knowledge[data.class_names.index(name)])
    for part in ("seen_classes", "unseen_classes", "train_classes", "val_classes"):
        assert [less.class_names[c] for c in getattr(less, part)] == \
            [data.class_names[c] for c in getattr(data, part) if data.class_names[c] != gone], part
    for part in ("trainval_idx", "test_seen_idx", "test_unseen_idx"):
        names = [less.class_names[c] for c in less.labels[getattr(less, part)]]
        assert names == [data.class_names[c] for c in data.labels[getattr(data, part)] if data.class_names[c] != gone]
    seen = data.class_names[int(data.seen_classes[0])]
    with pytest.raises(DataError, match=f"{seen!r} is not an unseen class"):
        open_dataset(dataclasses.replace(config, withhold=[seen]), feature_mode=False)
    with pytest.raises(DataError, match="'nope' is not a class"):
        open_dataset(dataclasses.replace(config, withhold=["nope"]), feature_mode=False)
    every = [data.class_names[c] for c in data.unseen_classes]
    with pytest.raises(DataError, match="leaves no unseen class"):
        open_dataset(dataclasses.replace(config, withhold=every), feature_mode=False)
    with pytest.raises(ConfigError, match="withhold must be a list of class names"):
        dataclasses.replace(config, withhold="x")
