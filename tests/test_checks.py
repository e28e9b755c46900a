"""Input validators: every malformed input gives a niwt error naming the argument, never a raw one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from niwt.checks import as_image_batch, as_labels, as_matrix
from niwt.errors import DataError, NIWTError
from niwt.evaluate import evaluate_gzsl
from niwt.importance import neuron_importance
from niwt.models import create_model

# ----------------------------------------------------------------------------- as_image_batch


def test_valid_batches_pass_through_unchanged():
    x = torch.rand(2, 3, 8, 8)
    assert as_image_batch("images", x) is x
    assert as_image_batch("images", x, size=8, dtype=torch.float32) is x
    arr = np.random.default_rng(0).random((2, 3, 8, 8))
    out = as_image_batch("images", arr)
    assert out.dtype == torch.float64 and torch.equal(out, torch.from_numpy(arr))
    assert as_image_batch("images", arr, dtype=torch.float32).dtype == torch.float32
    assert as_image_batch("images", torch.rand(0, 3, 8, 8)).shape == (0, 3, 8, 8)
    assert as_image_batch("images", torch.rand(2, 1, 8, 8), channels=None).shape[1] == 1


BAD_IMAGES = [
    (torch.rand(2, 8, 8, 3), r"`images` has shape \(2, 8, 8, 3\), which looks like \[N, H, W, C\]; "
                             r"permute to \[N, C, H, W\]"),
    (np.random.default_rng(0).random((2, 8, 8, 3)), r"looks like \[N, H, W, C\]; permute to \[N, C, H, W\]"),
    (torch.rand(2, 1, 8, 8), r"`images` has 1 channel \(shape \(2, 1, 8, 8\)\) but 3 are expected"),
    (torch.rand(2, 5, 8, 8), r"`images` must have 3 channels at axis 1 \(\[N, C, H, W\]\), got shape \(2, 5, 8, 8\)"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), r"`images` must hold float pixel values, got dtype torch.uint8; "
                                                 r"convert to float in \[0, 1\]"),
    (np.zeros((2, 3, 8, 8), np.uint8), r"got dtype uint8; convert to float in \[0, 1\]"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.long), r"got dtype torch.int64; convert to float"),
    (np.zeros((2, 3, 8, 8), bool), r"got dtype bool; convert to float"),
    (torch.rand(3, 8, 8), r"`images` must be a batch \[N, C, H, W\], got a 3-d shape \(3, 8, 8\); "
                          r"add the batch axis"),
    (torch.rand(1, 2, 3, 8, 8), r"must be a 4-d batch \[N, C, H, W\], got 5-d shape"),
    ([[[[0.0]]]], r"`images` must be a float torch.Tensor or NumPy array \[N, C, H, W\], got list"),
    (torch.full((2, 3, 8, 8), float("nan")), r"`images` must hold finite pixel values, got 384 NaN and 0 infinite"),
    (torch.full((1, 3, 8, 8), float("inf")), r"got 0 NaN and 192 infinite"),
]


@pytest.mark.parametrize(("images", "message"), BAD_IMAGES)
def test_bad_image_batches_are_named(images, message):
    with pytest.raises(DataError, match=message):
        as_image_batch("images", images)


def test_an_image_size_the_model_was_not_built_for_is_named():
    with pytest.raises(DataError, match=r"`images` holds 8x10 px images but the model was built for 32x32 px"):
        as_image_batch("images", torch.rand(2, 3, 8, 10), size=32)


# ----------------------------------------------------------------------------- as_labels


def test_labels_become_int64_arrays():
    out = as_labels("labels", torch.tensor([2, 0, 1], dtype=torch.int32), length=3, n_classes=3)
    assert out.dtype == np.int64 and out.tolist() == [2, 0, 1]
    assert as_labels("labels", []).shape == (0,)


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (np.zeros((2, 2), np.int64), {}, r"`labels` must be a 1-d array of class indices, got shape \(2, 2\)"),
        (np.array([0.0, 1.0]), {}, r"`labels` must hold integer class indices, got dtype float64"),
        (np.array([True, False]), {}, r"got dtype bool"),
        (np.array([0, 1]), {"length": 3}, r"one class index per image: expected \[3\], got \(2,\)"),
        (np.array([0, 4]), {"n_classes": 4}, r"`labels` must lie in \[0, 4\), got \[0, 4\]"),
        (np.array([-1, 2]), {"n_classes": 4}, r"must lie in \[0, 4\), got \[-1, 2\]"),
        ([[0], [1, 2]], {}, r"`labels` must be a 1-d array of class indices, got list"),
    ],
)
def test_bad_labels_are_named(labels, kwargs, message):
    with pytest.raises(DataError, match=message):
        as_labels("labels", labels, **kwargs)


# ----------------------------------------------------------------------------- as_matrix


def test_matrices_become_new_float64_arrays():
    src = np.array([[1, 0], [0, 1]], dtype=np.int32)
    out = as_matrix("knowledge", src, rows=2, cols=2)
    assert out.dtype == np.float64 and out is not src and out.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert as_matrix("knowledge", np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    assert as_matrix("knowledge", torch.ones(2, 3)).shape == (2, 3)
    assert np.isnan(as_matrix("scores", [[np.nan]], finite=False)[0, 0])


@pytest.mark.parametrize(
    ("matrix", "kwargs", "message"),
    [
        (np.zeros(3), {}, r"`knowledge` must be a 2-d matrix, got shape \(3,\)"),
        (np.zeros((2, 3)), {"rows": 4}, r"`knowledge` must have shape \[4, \*\], got \(2, 3\)"),
        (np.zeros((2, 3)), {"cols": 5}, r"`knowledge` must have shape \[\*, 5\], got \(2, 3\)"),
        (np.array([["a", "b"]]), {}, r"`knowledge` must hold real numbers, got dtype <U1"),
        (np.zeros((1, 2), complex), {}, r"must hold real numbers, got dtype complex128"),
        (np.array([[1, "a"]], dtype=object), {}, r"must hold real numbers, got non-numeric objects"),
        (np.array([[0.0, 1.0], [2.0, np.nan]]), {}, r"`knowledge` must hold finite values, got 1 NaN or infinite "
                                                     r"value\(s\), first at row 1, column 1"),
        (np.array([[0.0, 1.0], [np.inf, 0.0]]), {"row_names": ("cat", "dog")}, r"first at 'dog' \(row 1\), column 0"),
    ],
)
def test_bad_matrices_are_named(matrix, kwargs, message):
    with pytest.raises(DataError, match=message):
        as_matrix("knowledge", matrix, **kwargs)


# ----------------------------------------------------------------------------- used by the public functions


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return create_model("vgg", 3, width=4, hidden=8)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(2, 32, 32, 3), r"looks like \[N, H, W, C\]"),
        (torch.rand(2, 1, 32, 32), r"`images` has 1 channel"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), r"convert to float in \[0, 1\]"),
        (torch.rand(2, 3, 16, 16), r"`images` holds 16x16 px images but the model was built for 32x32 px"),
        (torch.rand(3, 32, 32), r"got a 3-d shape"),
        (torch.full((2, 3, 32, 32), float("nan")), r"NaN"),
        (torch.zeros(0, 3, 32, 32), r"`images` is empty"),
    ],
)
def test_neuron_importance_names_bad_images(vgg, images, message):
    with pytest.raises(DataError, match=message):
        neuron_importance(vgg, "features", images, torch.zeros(images.shape[0], dtype=torch.long))


def test_neuron_importance_names_bad_targets_and_accepts_numpy(vgg):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(DataError, match=r"`targets` must hold integer class indices, got dtype float32"):
        neuron_importance(vgg, "features", x, torch.tensor([0.0, 1.0]))
    with pytest.raises(DataError, match=r"`targets` must be a 1-d array"):
        neuron_importance(vgg, "features", x, torch.tensor([[0, 1]]))
    from_numpy = neuron_importance(vgg, "features", x.numpy(), np.array([0, 1]))
    torch.testing.assert_close(from_numpy, neuron_importance(vgg, "features", x, torch.tensor([0, 1])))


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.zeros((4, 3, 1)), [0, 0, 2, 2], r"`scores` must be a 2-d matrix"),
        (np.full((4, 3), "x"), [0, 0, 2, 2], r"`scores` must hold real numbers"),
        (np.zeros((4, 3)), [0.0, 0.0, 2.0, 2.0], r"`labels` must hold integer class indices, got dtype float64"),
        (np.zeros((4, 3)), [[0, 0, 2, 2]], r"`labels` must be a 1-d array"),
        (np.full((4, 3), np.nan), [0, 0, 2, 2], r"NaN"),
    ],
)
def test_evaluate_gzsl_names_bad_inputs(scores, labels, message):
    with pytest.raises(DataError, match=message):
        evaluate_gzsl(scores, labels, [0, 1], [2])


def test_every_validator_error_is_a_niwt_error():
    for call in (
        lambda: as_image_batch("x", "not an image"),
        lambda: as_labels("y", np.zeros((1, 1))),
        lambda: as_matrix("m", object()),
    ):
        with pytest.raises(NIWTError):
            call()
