"""The xlsa17 loader: 1-based indices and labels, class mapping, validation classes, bad files, real split files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from niwt.data.formats.xlsa17 import load_xlsa17
from niwt.data.formats.xlsa17_files import read_split_file
from niwt.data.inspect import inspect_dataset
from niwt.errors import ConfigError, DataError
from tests._fixtures_data import corrupt, make_xlsa17, published_xlsa17, standin_res101

REAL = {
    # name: (split file, classes, attributes, trainval, test_seen, test_unseen, seen, unseen, val)
    "AWA2": ("att_splits.mat", 50, 85, 23527, 5882, 7913, 40, 10, 13),
    "CUB": ("sent_splits.mat", 200, 1024, 7057, 1764, 2967, 150, 50, 50),
    "SUN": ("att_splits.mat", 717, 102, 10320, 2580, 1440, 645, 72, 65),
}


def test_toy_record_converts_one_based_indices(tmp_path):
    folder = make_xlsa17(tmp_path)
    loaded = load_xlsa17(folder)
    d = loaded.data
    split = scipy.io.loadmat(folder / "att_splits.mat")
    res = scipy.io.loadmat(folder / "res101.mat")
    assert loaded.format == "xlsa17" and loaded.image_paths is None and d.images is None
    assert d.class_names == tuple(f"class_{c:02d}" for c in range(6))
    np.testing.assert_array_equal(d.labels, res["labels"].ravel().astype(int) - 1)
    np.testing.assert_array_equal(d.trainval_idx, np.sort(split["trainval_loc"].ravel().astype(int) - 1))
    np.testing.assert_array_equal(d.test_unseen_idx, np.arange(20, 30))
    assert d.test_seen_idx.tolist() == [4, 9, 14, 19]
    np.testing.assert_array_equal(d.features, res["features"].T)
    assert d.features.dtype == np.float32 and d.features.shape == (30, 3)
    np.testing.assert_allclose(d.knowledge, split["att"].T)
    assert d.seen_classes.tolist() == [0, 1, 2, 3] and d.unseen_classes.tolist() == [4, 5]
    assert d.val_classes.tolist() == [3] and d.train_classes.tolist() == [0, 1, 2]
    assert "train_loc / val_loc" in loaded.notes[-1]
    assert loaded.to_dict()["features"] == [30, 3]


def test_original_att_replaces_missing_values(tmp_path):
    loaded = load_xlsa17(make_xlsa17(tmp_path), knowledge="original_att")
    assert loaded.data.knowledge[0, 0] == 0.0 and loaded.data.knowledge.max() > 1
    assert any("(-1)" in n for n in loaded.notes)
    with pytest.raises(ConfigError, match="knowledge"):
        load_xlsa17(tmp_path / "TOY", knowledge="words")


def test_validation_classes_without_val_locs(tmp_path):
    folder = make_xlsa17(tmp_path, val_locs=False, n_classes=8)
    drawn = load_xlsa17(folder, seed=3)
    assert drawn.data.val_classes.size == 1 and "seed 3" in drawn.notes[-1]
    assert np.array_equal(load_xlsa17(folder, seed=3).data.val_classes, drawn.data.val_classes)
    (folder / "trainclasses1.txt").write_text("class_00\nclass_01\nclass_02\n")
    (folder / "valclasses1.txt").write_text("class_03\nclass_04\nclass_05\n")
    listed = load_xlsa17(folder)
    assert listed.data.val_classes.tolist() == [3, 4, 5] and "valclasses1.txt" in listed.notes[-1]
    (folder / "valclasses1.txt").unlink()
    with pytest.raises(DataError, match="valclasses1.txt is not"):
        load_xlsa17(folder)


def test_missing_features_file_says_how_to_get_it(tmp_path):
    folder = make_xlsa17(tmp_path, features=False)
    with pytest.raises(DataError, match=r"features are missing: no res101\.mat .*xlsa17\.zip"):
        load_xlsa17(folder)


def test_missing_field_is_named(tmp_path):
    folder = make_xlsa17(tmp_path, drop=("test_unseen_loc",))
    with pytest.raises(DataError, match=r"att_splits\.mat has no field\(s\) \['test_unseen_loc'\]"):
        load_xlsa17(folder)


def test_zero_based_indices_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"att_splits\.mat: `\w+_loc` holds 0, .*1-based.*add 1"):
        load_xlsa17(make_xlsa17(tmp_path / "a", zero_based=True))
    folder = make_xlsa17(tmp_path / "b")
    res = scipy.io.loadmat(folder / "res101.mat")
    res["labels"] = res["labels"] - 1
    scipy.io.savemat(folder / "res101.mat", {"features": res["features"], "labels": res["labels"]})
    with pytest.raises(DataError, match=r"res101\.mat: `labels` holds 0, .*1-based"):
        load_xlsa17(folder)


def test_inconsistent_files_are_refused(tmp_path):
    folder = make_xlsa17(tmp_path)
    res = scipy.io.loadmat(folder / "res101.mat")
    scipy.io.savemat(folder / "res101.mat", {"features": res["features"][:, :20], "labels": res["labels"][:20]})
    with pytest.raises(DataError, match="20 labels, but the split file refers to image 30"):
        load_xlsa17(folder)
    scipy.io.savemat(folder / "res101.mat", {"features": res["features"][:, :29], "labels": res["labels"]})
    with pytest.raises(DataError, match=r"`features` has shape \(3, 29\)"):
        load_xlsa17(folder)
    labels = res["labels"].copy()
    labels[0] = 6  # an image of trainval_loc labelled with an unseen class
    scipy.io.savemat(folder / "res101.mat", {"features": res["features"], "labels": labels})
    with pytest.raises(DataError, match="both in the seen splits and in test_unseen_loc"):
        load_xlsa17(folder)
    (folder / "res101.mat").write_bytes(b"garbage" * 30)
    with pytest.raises(DataError, match="MATLAB"):
        load_xlsa17(folder)


def test_image_files_map_under_an_image_root(tmp_path):
    folder = make_xlsa17(tmp_path, image_files=True)
    root = tmp_path / "TOY_images" / "JPEGImages"
    loaded = load_xlsa17(folder, image_root=root)
    assert loaded.image_paths[0] == "class_00/class_00_10001.jpg"
    x, y = loaded.image_dataset(loaded.data.trainval_idx[:1])[0]
    assert x.shape == (3, 224, 224) and y == 0
    full = loaded.data.features
    corrupt(root / "class_01" / "class_01_10006.jpg")  # row 5, a trainval image
    with pytest.warns(UserWarning, match=r"1 of 30 image files .*class_01_10006"):
        dropped = load_xlsa17(folder, image_root=root)
    d = dropped.data
    assert d.labels.size == 29 and d.trainval_idx.size == 15 and "class_01/class_01_10006.jpg" not in dropped.image_paths
    np.testing.assert_array_equal(d.features, np.delete(full, 5, axis=0))
    assert dropped.image_paths[5] == "class_01/class_01_10007.jpg"
    with pytest.raises(DataError, match="image_prefix"):
        load_xlsa17(folder, image_root=root, image_prefix="/elsewhere/")


@pytest.fixture(scope="module")
def xlsa17_real():
    return published_xlsa17()  # kept in the repository: these tests never skip


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_split_file_alone(xlsa17_real, name):
    file, n_classes, n_att, trainval, test_seen, test_unseen, *_ = REAL[name]
    split = read_split_file(xlsa17_real / name / file)
    assert len(split.class_names) == n_classes and split.att.shape == (n_classes, n_att)
    with pytest.raises(DataError, match="res101.mat"):
        load_xlsa17(xlsa17_real / name)
    report = inspect_dataset(xlsa17_real / name)
    assert (report.format, report.n_classes, report.n_attributes) == ("xlsa17", n_classes, n_att)
    assert (report.n_trainval, report.n_test_seen, report.n_test_unseen) == (trainval, test_seen, test_unseen)
    assert report.n_seen is None and report.n_unseen is None and not report.has_features
    assert any("need the labels in res101.mat" in note for note in report.notes)
    assert report.problems == ()


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_split_file_with_standin_features(xlsa17_real, tmp_path, name):
    file, n_classes, n_att, trainval, test_seen, test_unseen, n_seen, n_unseen, n_val = REAL[name]
    folder = standin_res101(xlsa17_real / name / file, tmp_path / name, name)
    report = inspect_dataset(folder)
    assert (report.n_seen, report.n_unseen, report.n_val_classes) == (n_seen, n_unseen, n_val)
    assert report.feature_dim == 2 and report.problems == ()
    d = load_xlsa17(folder).data
    assert (d.seen_classes.size, d.unseen_classes.size, d.val_classes.size) == (n_seen, n_unseen, n_val)
    assert (d.trainval_idx.size, d.test_seen_idx.size, d.test_unseen_idx.size) == (trainval, test_seen, test_unseen)
    assert d.knowledge.shape == (n_classes, n_att) and d.features.shape == (report.n_images, 2)
