"""A folder of one's own classes: the CSV table, class folders, seeded validation classes, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from niwt.data.formats.folder import load_folder
from niwt.errors import ConfigError, DataError
from tests._fixtures_data import corrupt, make_folder, write_image


def test_record(tmp_path):
    root = make_folder(tmp_path)
    loaded = load_folder(root)
    d = loaded.data
    assert loaded.format == "folder" and d.name == "my_classes" and loaded.image_root == root
    assert d.class_names == ("zebra", "horse", "tiger", "okapi", "donkey")
    assert d.knowledge_names == ("stripes", "legs")
    np.testing.assert_allclose(d.knowledge[:, 0], [0.0, 10.5, 21.0, 31.5, 42.0])
    assert d.seen_classes.tolist() == [0, 1, 2] and d.unseen_classes.tolist() == [3, 4]
    assert d.val_classes.size == 1 and d.train_classes.size == 2
    assert d.descriptions[3] == ("a okapi, an animal with four legs",)
    assert (d.trainval_idx.size, d.test_seen_idx.size, d.test_unseen_idx.size) == (9, 3, 8)
    assert "seed 0" in loaded.notes[0] and d.class_names[d.val_classes[0]] in loaded.notes[0]
    assert loaded.image_paths[:4] == ("zebra/img_0.jpg", "zebra/img_1.jpg", "zebra/img_2.png", "zebra/img_3.jpg")
    ds = loaded.image_dataset()
    shapes = {tuple(ds[i][0].shape) for i in range(4)}  # RGB, grey, RGBA, RGB files
    assert shapes == {(3, 224, 224)}
    same = load_folder(root)
    np.testing.assert_array_equal(same.data.val_classes, d.val_classes)
    np.testing.assert_array_equal(same.data.test_seen_idx, d.test_seen_idx)
    assert loaded.to_dict()["n_images"] == 20


def test_descriptions_only(tmp_path):
    d = load_folder(make_folder(tmp_path, attributes=False)).data
    assert d.knowledge.shape == (5, 0) and all(len(t) == 1 for t in d.descriptions)


def test_csv_class_without_image_folder(tmp_path):
    root = make_folder(tmp_path)
    shutil.rmtree(root / "okapi")
    with pytest.raises(DataError, match=r"classes\.csv, line 5: class 'okapi' has no image folder .*create it"):
        load_folder(root)


def test_folder_without_csv_row(tmp_path):
    root = make_folder(tmp_path)
    write_image(root / "lion" / "a.jpg", seed=1)
    with pytest.raises(DataError, match=r"\['lion'\] .* have no row in classes\.csv"):
        load_folder(root)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["zebra,seen,1,4", "horse,seen,x,4", "okapi,unseen,1,4"], r"line 3, column `stripes` \(class 'horse'\): 'x'"),
        (["zebra,seen,1,4", "horse,,1,4", "okapi,unseen,1,4"], r"line 3, column `split` .*it is empty"),
        (["zebra,seen,1,4", "horse,maybe,1,4", "okapi,unseen,1,4"], r"'seen' or 'unseen', got 'maybe'"),
        (["zebra,seen,1,", "horse,seen,1,4", "okapi,unseen,1,4"], r"line 2, column `legs` .*empty value"),
        (["zebra,seen,1,4", "horse,seen,1,4", "okapi,seen,1,4"], r"no class has split 'unseen'"),
        (["zebra,unseen,1,4", "horse,unseen,1,4", "okapi,unseen,1,4"], r"no class has split 'seen'"),
        (["zebra,seen,1,4", "zebra,seen,1,4", "okapi,unseen,1,4"], r"line 3: class 'zebra' already has a row"),
        (["zebra,seen,1,4,9", "horse,seen,1,4", "okapi,unseen,1,4"], r"line 2: more values than the header"),
        (["../zebra,seen,1,4", "horse,seen,1,4", "okapi,unseen,1,4"], r"line 2: image path .* refused"),
    ],
)
def test_bad_tables(tmp_path, rows, message):
    classes = [("zebra", "seen"), ("horse", "seen"), ("okapi", "unseen")]
    root = make_folder(tmp_path, classes=classes, header="class,split,stripes,legs", rows=rows)
    with pytest.raises(DataError, match=message):
        load_folder(root)


def test_bad_headers(tmp_path):
    classes = [("zebra", "seen"), ("okapi", "unseen")]
    root = make_folder(tmp_path, classes=classes, header="name,split,legs", rows=["zebra,seen,4", "okapi,unseen,4"])
    with pytest.raises(DataError, match="no `class` column"):
        load_folder(root)
    (root / "classes.csv").write_text("class,split\nzebra,seen\nokapi,unseen\n")
    with pytest.raises(DataError, match="no knowledge about the classes"):
        load_folder(root)
    (root / "other.csv").write_text("x\n")
    (root / "classes.csv").unlink()
    with pytest.raises(DataError, match=r"several CSV files|no `class` column"):
        load_folder(root)


def test_corrupt_images_warn_or_fail(tmp_path):
    root = make_folder(tmp_path)
    corrupt(root / "tiger" / "img_1.jpg")
    with pytest.warns(UserWarning, match=r"1 of 20 image files .*tiger/img_1\.jpg"):
        loaded = load_folder(root)
    assert "tiger/img_1.jpg" not in loaded.image_paths and loaded.data.labels.size == 19
    for f in root.rglob("img_*"):
        corrupt(f)
    with pytest.raises(DataError, match="none of the 20 image files"):
        load_folder(root)


def test_class_with_no_images_and_bad_arguments(tmp_path):
    root = make_folder(tmp_path)
    for f in (root / "donkey").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"have no usable image .*\['donkey'\]"):
        load_folder(root)
    with pytest.raises(ConfigError, match="val_fraction"):
        load_folder(root, val_fraction=1.5)
    with pytest.raises(ConfigError, match="seed"):
        load_folder(root, seed=-1)


def test_an_index_column_says_which_classifier_output_each_seen_class_is_and_is_no_attribute(tmp_path):
    from niwt.data.formats.folder import find_class_csv, read_class_table

    root = make_folder(tmp_path)
    path = find_class_csv(root)
    lines = path.read_text().splitlines()
    split_at = lines[0].split(",").index("split")
    body = [f"{line},{({0: '2', 1: '0', 2: '1'}.get(k, ''))}" for k, line in enumerate(lines[1:])]
    assert all(line.split(",")[split_at] == ("seen" if k < 3 else "unseen") for k, line in enumerate(lines[1:]))
    path.write_text("\n".join([lines[0] + ",index", *body]) + "\n")
    table = read_class_table(path)
    assert table.indices == (2, 0, 1, None, None)
    assert "index" not in table.attribute_names
    assert load_folder(root).data.knowledge_names == ("stripes", "legs")
    plain = make_folder(tmp_path / "plain")
    assert read_class_table(find_class_csv(plain)).indices is None
