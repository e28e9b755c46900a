"""The AwA2 release loader: classes, predicates, matrices, images, proposed and standard splits, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from _fixtures_data import AWA2_CLASSES, PREDICATES, awa2_matrix, make_awa2

from niwt.data.awa2 import AWA2_PROPOSED_UNSEEN, load_awa2
from niwt.errors import ConfigError, DataError


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
