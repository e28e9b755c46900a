"""Tests of the embedded shapes world (niwt.data.shapes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from niwt.data.shapes import (
    ATTRIBUTE_GROUPS,
    COLOUR_RGB,
    COLOURS,
    SHAPES,
    ShapesConfig,
    make_shapes,
    render_shape,
)
from niwt.errors import ConfigError

SMALL = ShapesConfig(
    seed=7, n_source=3, n_seen=8, n_unseen=3, n_val=2,
    n_source_images=4, n_trainval_images=5, n_test_seen_images=3, n_test_unseen_images=4,
)


@pytest.fixture(scope="module")
def small():
    return make_shapes(SMALL)


@pytest.fixture(scope="module")
def default():
    return make_shapes()


def _group_slices() -> list[slice]:
    out, start = [], 0
    for _, values in ATTRIBUTE_GROUPS:
        out.append(slice(start, start + len(values)))
        start += len(values)
    return out


def _primaries(data) -> np.ndarray:
    return np.stack([data.knowledge[:, s].argmax(axis=1) for s in _group_slices()], axis=1)


def test_same_seed_is_identical(small) -> None:
    again = make_shapes(SMALL)
    assert again.images.tobytes() == small.images.tobytes()
    np.testing.assert_array_equal(again.masks, small.masks)
    np.testing.assert_array_equal(again.knowledge, small.knowledge)
    np.testing.assert_array_equal(again.image_attributes, small.image_attributes)
    assert again.class_names == small.class_names
    assert again.descriptions == small.descriptions
    np.testing.assert_array_equal(again.val_classes, small.val_classes)


def test_different_seed_differs(small) -> None:
    other = make_shapes(replace(SMALL, seed=8))
    assert other.images.shape != small.images.shape or other.images.tobytes() != small.images.tobytes()
    assert other.knowledge.shape == small.knowledge.shape
    assert not np.array_equal(other.knowledge, small.knowledge)


def test_global_rng_untouched() -> None:
    np.random.seed(123)
    state = np.random.get_state()
    make_shapes(SMALL)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_record_contents(small) -> None:
    n = len(small.labels)
    assert small.name == "shapes"
    assert small.images.dtype == np.uint8 and small.images.shape == (n, 32, 32, 3)
    assert small.masks.dtype == bool and small.masks.shape == (n, 32, 32)
    assert small.image_attributes.shape == (n, 4)
    assert [g for g, _ in small.attribute_groups] == ["shape", "colour", "pattern", "size"]
    assert small.knowledge_names[0] == "shape:disc" and "colour:red" in small.knowledge_names
    assert len(set(small.class_names)) == small.n_classes == 14
    for _c, texts in enumerate(small.descriptions):
        assert len(texts) >= 5 and len(set(texts)) == len(texts)


def test_split_invariants(small) -> None:
    src, seen, unseen = (set(a.tolist()) for a in (small.source_classes, small.seen_classes, small.unseen_classes))
    assert (len(src), len(seen), len(unseen)) == (3, 8, 3)
    assert not (src & seen) and not (src & unseen) and not (seen & unseen)
    assert src | seen | unseen == set(range(small.n_classes))
    train, val = set(small.train_classes.tolist()), set(small.val_classes.tolist())
    assert len(val) == 2 and not (train & val) and train | val == seen
    prim = _primaries(small)
    for g in range(4):
        seen_values = set(prim[small.seen_classes, g].tolist())
        assert set(prim[small.unseen_classes, g].tolist()) <= seen_values
        assert set(prim[small.val_classes, g].tolist()) <= set(prim[small.train_classes, g].tolist())
    # shape/colour/pattern primary triples are distinct
    assert len({tuple(p[:3]) for p in prim.tolist()}) == small.n_classes
    labels = small.labels
    for key, classes, per_class in (
        ("source_idx", small.source_classes, SMALL.n_source_images),
        ("trainval_idx", small.seen_classes, SMALL.n_trainval_images),
        ("test_seen_idx", small.seen_classes, SMALL.n_test_seen_images),
        ("test_unseen_idx", small.unseen_classes, SMALL.n_test_unseen_images),
    ):
        counts = np.bincount(labels[getattr(small, key)], minlength=small.n_classes)
        assert (counts[classes] == per_class).all(), key
        assert counts.sum() == per_class * len(classes), key
    all_idx = np.concatenate([small.source_idx, small.trainval_idx, small.test_seen_idx, small.test_unseen_idx])
    assert np.array_equal(np.sort(all_idx), np.arange(len(labels)))


def test_default_config_splits(default) -> None:
    assert len(default.source_classes) == 20 and len(default.seen_classes) == 36
    assert len(default.unseen_classes) == 10 and len(default.val_classes) == 8
    assert len(default.labels) == 20 * 60 + 36 * 55 + 10 * 30
    prim = _primaries(default)
    for g in range(4):
        assert set(prim[default.unseen_classes, g].tolist()) <= set(prim[default.seen_classes, g].tolist())


def test_knowledge_rows_are_fractions() -> None:
    data = make_shapes(replace(SMALL, purity_min=0.8, purity_max=0.8))
    prim = _primaries(data)
    for g, s in enumerate(_group_slices()):
        block = data.knowledge[:, s]
        k = block.shape[1]
        np.testing.assert_allclose(block.sum(axis=1), 1.0)
        np.testing.assert_allclose(block[np.arange(data.n_classes), prim[:, g]], 0.8)
        others = np.ones_like(block, dtype=bool)
        others[np.arange(data.n_classes), prim[:, g]] = False
        np.testing.assert_allclose(block[others], 0.2 / (k - 1))
    for c, name in enumerate(data.class_names):
        assert name.endswith(f"-{COLOURS[prim[c, 1]]}-{SHAPES[prim[c, 0]]}")


def test_knowledge_purity_range(default) -> None:
    for s in _group_slices():
        block = default.knowledge[:, s]
        np.testing.assert_allclose(block.sum(axis=1), 1.0)
        assert (block.max(axis=1) >= 0.6 - 1e-12).all() and (block.max(axis=1) <= 1.0).all()


def test_image_attribute_frequencies_match_knowledge() -> None:
    cfg = ShapesConfig(
        seed=3, image_size=16, n_source=1, n_seen=4, n_unseen=2, n_val=1,
        n_source_images=300, n_trainval_images=250, n_test_seen_images=50, n_test_unseen_images=300,
        purity_min=0.5, purity_max=0.8,
    )
    data = make_shapes(cfg)
    for c in range(data.n_classes):
        rows = data.image_attributes[data.labels == c]
        n = len(rows)
        assert n == 300
        for g, s in enumerate(_group_slices()):
            expected = data.knowledge[c, s]
            freq = np.bincount(rows[:, g], minlength=len(expected)) / n
            tol = 4.5 * np.sqrt(expected * (1 - expected) / n) + 1e-9
            assert (np.abs(freq - expected) <= tol).all(), (c, g, freq, expected)


def test_masks_and_colours(small) -> None:
    assert (small.masks.sum(axis=(1, 2)) > 0).all()
    assert (~small.masks).sum(axis=(1, 2)).min() > 0
    colour_col = [g for g, _ in ATTRIBUTE_GROUPS].index("colour")
    for i in range(len(small.labels)):
        img = small.images[i].astype(np.float64)
        m = small.masks[i]
        target = np.array(COLOUR_RGB[COLOURS[small.image_attributes[i, colour_col]]], dtype=np.float64)
        inside = np.linalg.norm(img[m].mean(axis=0) - target)
        outside = np.linalg.norm(img[~m].mean(axis=0) - target)
        assert inside < outside, i
    size_col = [g for g, _ in ATTRIBUTE_GROUPS].index("size")
    area = small.masks.sum(axis=(1, 2))
    assert area[small.image_attributes[:, size_col] == 0].max() < area[small.image_attributes[:, size_col] == 1].min()


def test_image_size_configurable() -> None:
    data = make_shapes(replace(SMALL, image_size=48))
    assert data.images.shape[1:] == (48, 48, 3) and data.masks.shape[1:] == (48, 48)
    assert (data.masks.sum(axis=(1, 2)) > 0).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 8),
        ("n_seen", 0),
        ("n_unseen", 0),
        ("n_val", 40),
        ("purity_min", 0.0),
        ("purity_max", 1.5),
        ("noise", -0.1),
        ("n_trainval_images", "many"),
        ("seed", -1),
        ("n_source", 500),
    ],
)
def test_bad_config_names_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ShapesConfig(**{field: value})


def test_make_shapes_rejects_other_config() -> None:
    with pytest.raises(ConfigError, match="config"):
        make_shapes({"seed": 1})  # type: ignore[arg-type]


def test_render_shape() -> None:
    img1, mask1 = render_shape("star", "orange", "stripes", "large", np.random.default_rng(1))
    img2, mask2 = render_shape("star", "orange", "stripes", "large", np.random.default_rng(1))
    assert img1.shape == (32, 32, 3) and img1.dtype == np.uint8 and mask1.dtype == bool
    assert np.array_equal(img1, img2) and np.array_equal(mask1, mask2)
    with pytest.raises(ConfigError, match="shape"):
        render_shape("blob", "red", "solid", "small", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="image_size"):
        render_shape("disc", "red", "solid", "small", np.random.default_rng(0), image_size=10)


def test_repr_is_one_short_line_of_counts(small) -> None:
    text = repr(small)
    assert text == str(small)
    assert text == (
        "ZSLData('shapes': 14 classes (seen 8 = 6 train + 2 val, unseen 3, source 3), knowledge [14, 20], "
        "88 images 32x32 px, splits: trainval_idx 40, test_seen_idx 24, test_unseen_idx 12, source_idx 12)"
    )
    assert "\n" not in text and "array" not in text


def test_repr_of_a_feature_only_dataset(small) -> None:
    features = replace(small, images=None, masks=None, features=np.zeros((small.labels.size, 7)))
    assert "88 feature rows of width 7, no images" in repr(features)
    assert "88 labels, no images" in repr(replace(features, features=None))
