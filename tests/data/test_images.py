"""Lazy image files: the transform record, the torch Dataset, RGB conversion, path and decoding errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from niwt.data.files.image_dataset import ImageFileDataset
from niwt.data.files.images import ImageTransform, check_images, open_rgb, screen_images, unreadable_warning
from niwt.data.files.text import check_relative_path
from niwt.errors import ConfigError, DataError
from tests._fixtures_data import corrupt, write_image

SMALL = ImageTransform(resize=8, crop=6)


def test_transform_record_round_trips_and_validates():
    t = ImageTransform(resize=32, crop=28, normalize=False)
    assert ImageTransform.from_dict(t.to_dict()) == t
    assert t.to_dict()["mean"] == [0.485, 0.456, 0.406]
    for bad in (dict(resize=0), dict(crop=2.5), dict(std=(1, 0, 1)), dict(mean=(1, 2)), dict(normalize="yes")):
        with pytest.raises(ConfigError, match="ImageTransform"):
            ImageTransform(**bad)
    with pytest.raises(ConfigError, match="unknown"):
        ImageTransform.from_dict({"size": 3})


def test_dataset_reads_lazily_with_transform(tmp_path):
    for k in range(3):
        write_image(tmp_path / "a" / f"{k}.jpg", seed=k, size=(20, 12))
    ds = ImageFileDataset(tmp_path, ["a/0.jpg", "a/1.jpg", "a\\2.jpg"], labels=[4, 5, 6], transform=SMALL)
    x, y = ds[2]
    assert x.shape == (3, 6, 6) and x.dtype == torch.float32 and y == 6
    assert ds.paths[2] == "a/2.jpg"
    batch, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch.shape == (3, 3, 6, 6) and labels.tolist() == [4, 5, 6]
    raw, label = ImageFileDataset(tmp_path, ["a/0.jpg"])[0]
    assert raw.shape == (3, 12, 20) and 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0 and label == -1


def test_normalisation_matches_the_record(tmp_path):
    Image.new("RGB", (4, 4), (255, 0, 128)).save(tmp_path / "flat.png")
    x, _ = ImageFileDataset(tmp_path, ["flat.png"], transform=ImageTransform(resize=None, crop=None))[0]
    expected = (np.array([1.0, 0.0, 128 / 255]) - np.array(SMALL.mean)) / np.array(SMALL.std)
    np.testing.assert_allclose(x.mean((1, 2)).numpy(), expected, atol=1e-5)


def test_grey_and_rgba_become_rgb(tmp_path):
    write_image(tmp_path / "grey.png", seed=1, mode="L")
    Image.new("RGBA", (3, 3), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    Image.new("LA", (3, 3), (90, 255)).save(tmp_path / "greya.png")
    assert open_rgb(tmp_path / "grey.png").mode == "RGB"
    assert open_rgb(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)  # transparent over white
    assert open_rgb(tmp_path / "greya.png").getpixel((1, 1)) == (90, 90, 90)
    x, _ = ImageFileDataset(tmp_path, ["grey.png"])[0]
    assert x.shape[0] == 3


def test_paths_leaving_the_root_are_refused(tmp_path):
    for bad in ("../secret.jpg", "a/../../b.jpg", "/etc/passwd", "C:\\x.jpg", ""):
        with pytest.raises(DataError, match="refused|empty"):
            ImageFileDataset(tmp_path, [bad], source="list.txt")
    with pytest.raises(DataError, match=r"images\.txt, line 7: .*'\.\.'"):
        check_relative_path("x/../../y.jpg", "images.txt", 7)
    assert check_relative_path("./a//b.jpg", "f", 1) == "a/b.jpg"


def test_undecodable_file_names_the_file(tmp_path):
    corrupt(tmp_path / "bad.jpg")
    ds = ImageFileDataset(tmp_path, ["bad.jpg", "gone.jpg"])
    with pytest.raises(DataError, match=r"cannot decode image .*bad\.jpg"):
        ds[0]
    with pytest.raises(DataError, match=r"not found: .*gone\.jpg"):
        ds[1]
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(DataError, match="one label per path"):
        ImageFileDataset(tmp_path, ["bad.jpg"], labels=[1, 2])
    with pytest.raises(ConfigError, match="ImageTransform"):
        ImageFileDataset(tmp_path, ["bad.jpg"], transform={"resize": 3})


def test_check_and_warning_for_a_few_unreadable_among_many(tmp_path):
    paths = [f"{k}.jpg" for k in range(12)]
    for k, p in enumerate(paths):
        write_image(tmp_path / p, seed=k)
    corrupt(tmp_path / "3.jpg")
    corrupt(tmp_path / "8.jpg")
    found = check_images(tmp_path, paths + ["missing.jpg"])
    assert found.missing == ("missing.jpg",)
    assert [p for p, _ in found.unreadable] == ["3.jpg", "8.jpg"]
    assert found.to_dict()["n_checked"] == 13
    with pytest.warns(UserWarning, match=r"2 of 12 image files .* 3\.jpg, 8\.jpg"):
        keep, notes = screen_images(tmp_path, paths, listed_in="the list")
    assert sum(keep) == 10 and not keep[3] and "2 of 12" in notes[0]
    with pytest.raises(DataError, match=r"1 of 13 image files listed in the list are missing .*missing\.jpg"):
        screen_images(tmp_path, paths + ["missing.jpg"], listed_in="the list")
    assert unreadable_warning([], 5, root=tmp_path) is None


def test_all_unreadable_is_an_error(tmp_path):
    with pytest.raises(DataError, match="none of the 3 image files"):
        unreadable_warning(["a", "b", "c"], 3, root=tmp_path)
    with pytest.warns(UserWarning, match=r"7 of 9 .*\(2 more\)"):
        unreadable_warning([f"f{k}" for k in range(7)], 9, root=tmp_path)
