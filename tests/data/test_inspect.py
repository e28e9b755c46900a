"""Format detection, ``load_dataset`` dispatch and ``inspect_dataset`` reports with the problems they find."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io

from niwt.data.inspect import InspectReport, inspect_dataset
from niwt.data.registry import FORMATS, detect_format, load_dataset
from niwt.errors import ConfigError, DataError
from tests._fixtures_data import corrupt, make_awa2, make_cub, make_folder, make_xlsa17, write_image


@pytest.fixture()
def datasets(tmp_path):
    return {
        "awa2": make_awa2(tmp_path / "a"),
        "cub": make_cub(tmp_path / "c"),
        "folder": make_folder(tmp_path / "f"),
        "xlsa17": make_xlsa17(tmp_path / "x"),
    }


def test_detect_and_load_every_format(datasets, tmp_path):
    assert set(datasets) == set(FORMATS)
    for fmt, path in datasets.items():
        assert detect_format(path) == fmt
        if fmt in ("awa2", "cub"):  # the archive's parent folder works too
            assert detect_format(path.parent) == fmt
    assert detect_format(datasets["xlsa17"] / "att_splits.mat") == "xlsa17"
    options = {"awa2": {"split_dir": tmp_path / "a" / "xlsa17_AWA2"}}
    for fmt, path in datasets.items():
        loaded = load_dataset(path, **options.get(fmt, {}))
        assert loaded.format == fmt and loaded.data.unseen_classes.size > 0
    with pytest.raises(ConfigError, match=r"\['shuffle'\] are not options of the cub loader"):
        load_dataset(datasets["cub"], shuffle=True)
    with pytest.raises(ConfigError, match="unknown dataset format"):
        load_dataset(datasets["cub"], format="imagenet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        inspect_dataset(tmp_path / "nowhere")


def test_reports_of_clean_datasets(datasets, tmp_path):
    awa2 = inspect_dataset(datasets["awa2"], split_dir=tmp_path / "a" / "xlsa17_AWA2")
    assert isinstance(awa2, InspectReport) and awa2.ok and awa2.has_images
    assert (awa2.n_classes, awa2.n_attributes, awa2.n_seen, awa2.n_unseen) == (8, 5, 5, 3)
    assert (awa2.n_trainval, awa2.n_test_seen, awa2.n_test_unseen) == (10, 5, 9)
    loaded = load_dataset(datasets["awa2"], split_dir=tmp_path / "a" / "xlsa17_AWA2").data
    assert (loaded.trainval_idx.size, loaded.test_seen_idx.size) == (awa2.n_trainval, awa2.n_test_seen)
    cub = inspect_dataset(datasets["cub"])
    assert (cub.n_classes, cub.n_attributes, cub.n_images, cub.n_unseen) == (7, 4, 21, 2) and cub.ok
    folder = inspect_dataset(datasets["folder"])
    assert (folder.n_classes, folder.n_seen, folder.n_unseen, folder.n_val_classes) == (5, 3, 2, 1)
    toy = inspect_dataset(datasets["xlsa17"])
    assert (toy.n_seen, toy.n_unseen, toy.n_train_classes, toy.n_val_classes) == (4, 2, 3, 1)
    assert toy.has_features and toy.feature_dim == 3 and not toy.has_images
    d = toy.to_dict()
    for key in ("format", "n_classes", "n_attributes", "n_seen", "n_unseen", "n_trainval", "n_test_seen",
                "n_test_unseen", "problems", "notes"):
        assert key in d
    text = toy.format_text()
    assert "[xlsa17]" in text and "trainval 16" in text and "problems: none" in text


def test_awa2_without_lists_reports_rather_than_raises(datasets):
    report = inspect_dataset(datasets["awa2"])
    assert report.n_classes == 8 and report.n_seen is None
    assert any("no class lists" in p for p in report.problems)


def test_folder_problems_are_all_listed(tmp_path):
    root = make_folder(tmp_path)
    shutil.rmtree(root / "okapi")
    write_image(root / "lion" / "a.jpg", seed=3)
    corrupt(root / "zebra" / "img_0.jpg")
    report = inspect_dataset(root)
    assert not report.ok and len(report.problems) == 4
    text = "\n".join(report.problems)
    assert "class 'okapi' has no image folder" in text
    assert "folders without a row in classes.csv: 1 (lion)" in text
    assert "unreadable images: 1 of" in text and "zebra/img_0.jpg" in text
    assert "classes without images: 1 (okapi)" in text
    assert "problems (4)" in report.format_text()


def test_cub_missing_images_and_attribute_rows(tmp_path):
    cub = make_cub(tmp_path)
    sorted((cub / "images").rglob("*.jpg"))[0].unlink()
    matrix = cub / "attributes" / "class_attribute_labels_continuous.txt"
    matrix.write_text("".join(matrix.read_text().splitlines(keepends=True)[:-1]))
    report = inspect_dataset(cub)
    text = "\n".join(report.problems)
    assert "missing images: 1 of 21" in text and "has no attribute row" in text
    assert report.n_classes == 7 and report.n_attributes is None and report.n_images == 20


def test_xlsa17_unseen_class_in_training_split(tmp_path):
    folder = make_xlsa17(tmp_path)
    (folder / "trainvalclasses.txt").write_text("\n".join(f"class_{c:02d}" for c in (0, 1, 2, 4)) + "\n")
    (folder / "testclasses.txt").write_text("class_03\nclass_05\n")
    report = inspect_dataset(folder)
    text = "\n".join(report.problems)
    assert "unseen classes with images in the training split (trainval_loc): 1 (class_03)" in text
    assert "trainvalclasses.txt disagrees" in text
    with pytest.raises(DataError, match="disagree with the labels"):
        load_dataset(folder)


def test_xlsa17_class_lists_give_counts_without_features(tmp_path):
    folder = make_xlsa17(tmp_path, features=False)
    assert inspect_dataset(folder).n_seen is None
    (folder / "trainvalclasses.txt").write_text("\n".join(f"class_{c:02d}" for c in range(4)) + "\n")
    (folder / "testclasses.txt").write_text("class_04\nclass_05\n")
    report = inspect_dataset(folder)
    assert (report.n_seen, report.n_unseen) == (4, 2) and report.ok


def test_xlsa17_broken_file_is_a_problem(tmp_path):
    folder = make_xlsa17(tmp_path)
    res = scipy.io.loadmat(folder / "res101.mat")
    scipy.io.savemat(folder / "res101.mat", {"features": res["features"], "labels": np.zeros((30, 1), np.uint8)})
    report = inspect_dataset(folder)
    assert any("`labels` holds 0" in p for p in report.problems) and report.n_seen is None
