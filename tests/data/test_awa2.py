"""The AwA2 release loader: classes, predicates, matrices, images, proposed and standard splits, bad files."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from niwt.data.formats.awa2 import AWA2_PROPOSED_UNSEEN, awa2_image_list, load_awa2
from niwt.errors import ConfigError, DataError
from tests._fixtures_data import (
    AWA2_CLASSES,
    AWA2_UNSEEN,
    PREDICATES,
    awa2_matrix,
    corrupt,
    make_awa2,
    make_xlsa17_image_split,
)

AWA2_PREFIX = "/BS/xian/work/data/Animals_with_Attributes2//JPEGImages/"
SEEN = [c for c in AWA2_CLASSES if c not in AWA2_UNSEEN]


@pytest.fixture()
def awa2(tmp_path):
    return make_awa2(tmp_path)


def test_record_with_xlsa17_class_lists(awa2, tmp_path):
    loaded = load_awa2(tmp_path, split_dir=tmp_path / "xlsa17_AWA2")
    d = loaded.data
    assert loaded.format == "awa2" and loaded.image_root == awa2 / "JPEGImages"
    assert d.class_names == AWA2_CLASSES and d.knowledge_names == PREDICATES
    assert sorted(d.class_names[c] for c in d.unseen_classes) == ["bat", "horse", "seal"]
    assert [d.class_names[c] for c in d.val_classes] == ["beaver", "dalmatian"]
    expected = awa2_matrix()
    expected[expected == -1] = 0.0
    np.testing.assert_allclose(d.knowledge, expected)
    assert any("2 missing attribute value(s)" in n for n in loaded.notes)
    assert d.labels.size == 24 and (d.trainval_idx.size, d.test_seen_idx.size, d.test_unseen_idx.size) == (10, 5, 9)
    assert loaded.image_paths[0] == "antelope/antelope_10001.jpg"
    x, y = loaded.image_dataset(d.test_unseen_idx[:1])[0]
    assert x.shape == (3, 224, 224) and d.class_names[y] in ("horse", "bat", "seal")
    again = load_awa2(awa2, split_dir=tmp_path / "xlsa17_AWA2")
    np.testing.assert_array_equal(again.data.test_seen_idx, d.test_seen_idx)


def test_binary_knowledge_and_standard_split(awa2):
    loaded = load_awa2(awa2, split="standard", knowledge="binary")
    d = loaded.data
    assert set(np.unique(d.knowledge)) <= {0.0, 1.0}
    assert sorted(d.class_names[c] for c in d.unseen_classes) == ["beaver", "dalmatian"]
    assert "standard split" in loaded.notes[0]
    with pytest.raises(ConfigError, match="split"):
        load_awa2(awa2, split="random")
    with pytest.raises(ConfigError, match="knowledge"):
        load_awa2(awa2, knowledge="text")


def test_published_proposed_split_without_lists(tmp_path):
    classes = ("antelope", "grizzly+bear", "beaver", *AWA2_PROPOSED_UNSEEN)
    make_awa2(tmp_path, classes=classes, images_per_class=1, xlsa17_lists=False)
    loaded = load_awa2(tmp_path)
    assert sorted(loaded.data.class_names[c] for c in loaded.data.unseen_classes) == sorted(AWA2_PROPOSED_UNSEEN)
    assert any("published proposed-split" in n for n in loaded.notes)


def test_without_lists_and_unknown_classes(tmp_path):
    root = make_awa2(tmp_path, xlsa17_lists=False)
    with pytest.raises(DataError, match=r"no class lists .*Animals_with_Attributes2.*missing \['blue\+whale'.*pass unseen_classes"):
        load_awa2(root)
    loaded = load_awa2(root, unseen_classes=("seal", "antelope"))
    assert sorted(loaded.data.class_names[c] for c in loaded.data.unseen_classes) == ["antelope", "seal"]
    with pytest.raises(DataError, match="'walrus' is not a class"):
        load_awa2(root, unseen_classes=("walrus",))


def test_class_without_attribute_row(awa2, tmp_path):
    matrix = awa2 / "predicate-matrix-continuous.txt"
    matrix.write_text("".join(matrix.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match=r"class 'seal' \(entry 8 of classes.txt\) has no attribute row"):
        load_awa2(awa2, split_dir=tmp_path / "xlsa17_AWA2")


def test_attribute_matrix_of_the_wrong_width(awa2, tmp_path):
    matrix = awa2 / "predicate-matrix-continuous.txt"
    rows = [" ".join(line.split()[:4]) for line in matrix.read_text().splitlines()]
    matrix.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"continuous\.txt, line 1: 4 values, but predicates\.txt names 5 attributes"):
        load_awa2(awa2, split_dir=tmp_path / "xlsa17_AWA2")
    matrix.write_text(matrix.read_text().replace(rows[2].split()[1], "n/a", 1))
    with pytest.raises(DataError, match="line 1"):
        load_awa2(awa2, split_dir=tmp_path / "xlsa17_AWA2")


def test_non_numeric_value_is_located(awa2, tmp_path):
    matrix = awa2 / "predicate-matrix-continuous.txt"
    lines = matrix.read_text().splitlines()
    cells = lines[2].split()
    cells[3] = "high"
    lines[2] = " ".join(cells)
    matrix.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 3, column 4: 'high' is not a number"):
        load_awa2(awa2, split_dir=tmp_path / "xlsa17_AWA2")


def test_missing_class_folder_and_bad_class_files(awa2, tmp_path):
    for f in (awa2 / "JPEGImages" / "bat").iterdir():
        f.unlink()
    (awa2 / "JPEGImages" / "bat").rmdir()
    with pytest.raises(DataError, match=r"have no image folder .*\['bat'\]"):
        load_awa2(awa2, split_dir=tmp_path / "xlsa17_AWA2")
    (awa2 / "classes.txt").write_text("1\tantelope\n3\tbat\n")
    with pytest.raises(DataError, match="id 2 is missing"):
        load_awa2(awa2)


def test_lists_that_do_not_partition(awa2, tmp_path):
    lists = tmp_path / "xlsa17_AWA2"
    (lists / "testclasses.txt").write_text("horse\nbat\n")
    with pytest.raises(DataError, match=r"unlisted 'seal'"):
        load_awa2(awa2, split_dir=lists)


def _xlsa17_folder(awa2, folder, relabel=None, **kwargs):
    """xlsa17's AWA2 files for the miniature release (``relabel``: {path: class} written into res101.mat)."""
    paths, labels, _ = awa2_image_list(awa2, AWA2_CLASSES)
    labels = [AWA2_CLASSES.index((relabel or {}).get(p, AWA2_CLASSES[c])) for p, c in zip(paths, labels)]
    return make_xlsa17_image_split(folder, AWA2_PREFIX, AWA2_CLASSES, paths, labels, AWA2_UNSEEN,
                                   ("beaver", "dalmatian"), **kwargs)


def _split_paths(loaded):
    d = loaded.data
    return {key: sorted(loaded.image_paths[i] for i in idx)
            for key, idx in (("trainval", d.trainval_idx), ("test_seen", d.test_seen_idx),
                             ("test_unseen", d.test_unseen_idx))}


def test_exact_xlsa17_image_split_from_res101(awa2, tmp_path):
    folder = tmp_path / "xlsa17" / "data" / "AWA2"
    expected = _xlsa17_folder(awa2, folder, unlisted=("antelope/antelope_10003.jpg",))
    loaded = load_awa2(awa2, split_dir=folder)
    d = loaded.data
    got = _split_paths(loaded)
    assert got == expected
    # by hand: the fixture puts the first image of each seen class in test_seen_loc
    assert got["test_seen"] == sorted(f"{c}/{c}_10001.jpg" for c in SEEN)
    assert (len(got["trainval"]), len(got["test_seen"]), len(got["test_unseen"])) == (9, 5, 9)
    assert "antelope/antelope_10003.jpg" not in sum(got.values(), [])
    assert sorted(d.class_names[c] for c in d.unseen_classes) == sorted(AWA2_UNSEEN)
    assert [d.class_names[c] for c in d.val_classes] == ["beaver", "dalmatian"]  # from the labels of val_loc
    assert d.split_origin.startswith("xlsa17: ") and str(folder / "res101.mat") in d.split_origin
    assert loaded.to_dict()["split_origin"] == d.split_origin
    assert any("1 image(s)" in n and "none of xlsa17's splits" in n for n in loaded.notes)
    assert not any("held out at random" in n for n in loaded.notes)


def test_split_dir_without_res101_keeps_the_seeded_split_and_says_so(awa2, tmp_path, caplog):
    folder = tmp_path / "xlsa17_AWA2"  # the class lists, and now att_splits.mat beside them
    _xlsa17_folder(awa2, folder)
    (folder / "res101.mat").unlink()
    with caplog.at_level(logging.INFO, logger="niwt.data.formats.proposed_split"):
        loaded = load_awa2(awa2, split_dir=folder)
    assert "has no res101.mat" in caplog.text and "drawn at random" in caplog.text
    assert loaded.data.split_origin.startswith("seeded: 0.2 of each seen class") and "(seed 0)" in loaded.data.split_origin
    assert any("has no res101.mat" in n for n in loaded.notes)
    assert len(_split_paths(loaded)["test_seen"]) == 5  # round(0.2 * 3) = 1 per seen class


def test_an_image_of_the_exact_split_missing_from_the_folder_is_named(awa2, tmp_path):
    folder = tmp_path / "AWA2"
    _xlsa17_folder(awa2, folder)
    (awa2 / "JPEGImages" / "bat" / "bat_10002.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of the 24 images of xlsa17's split \(.*res101\.mat, image_files\) are not "
                                        r"in the dataset .*bat/bat_10002\.jpg.*remove res101\.mat"):
        load_awa2(awa2, split_dir=folder)


def test_an_unreadable_image_leaves_the_exact_split_with_a_warning(awa2, tmp_path):
    folder = tmp_path / "AWA2"
    expected = _xlsa17_folder(awa2, folder)
    corrupt(awa2 / "JPEGImages" / "seal" / "seal_10002.jpg")
    with pytest.warns(UserWarning, match=r"1 of 24 image files .*left out of every split: seal/seal_10002\.jpg"):
        loaded = load_awa2(awa2, split_dir=folder)
    expected["test_unseen"].remove("seal/seal_10002.jpg")
    assert _split_paths(loaded) == expected
    assert any("1 of 24 image files" in n and "seal_10002.jpg" in n for n in loaded.notes)


def test_exact_split_of_another_release_is_refused(awa2, tmp_path):
    folder = tmp_path / "AWA2"
    _xlsa17_folder(awa2, folder, relabel={"beaver/beaver_10002.jpg": "dalmatian"})
    with pytest.raises(DataError, match=r"res101\.mat: 1 image\(s\) have another class .*beaver_10002\.jpg.*"
                                        r"'dalmatian' there, 'beaver' here"):
        load_awa2(awa2, split_dir=folder)
    _xlsa17_folder(awa2, folder)
    with pytest.raises(ConfigError, match="`unseen_classes` cannot be combined"):
        load_awa2(awa2, split_dir=folder, unseen_classes=("seal",))
    standard = load_awa2(awa2, split="standard", split_dir=folder)
    assert standard.data.split_origin.startswith("seeded") and any("is not used" in n for n in standard.notes)
