"""The CUB-200-2011 loader: id files, attributes, captions, class lists, bad paths and images."""

from __future__ import annotations

import numpy as np
import pytest

from niwt.data.formats.cub import load_cub, read_cub_meta
from niwt.errors import DataError
from tests._fixtures_data import (
    CUB_ATTRIBUTES,
    CUB_CLASSES,
    CUB_UNSEEN,
    corrupt,
    cub_matrix,
    make_cub,
    make_xlsa17_image_split,
)

CUB_PREFIX = "/BS/Deep_Fragments/work/MSc/CUB_200_2011/CUB_200_2011/images/"


@pytest.fixture()
def cub(tmp_path):
    return make_cub(tmp_path)


def _rewrite_line(path, index, text):
    lines = path.read_text().splitlines()
    lines[index] = text
    path.write_text("\n".join(lines) + "\n")


def test_record(cub, tmp_path):
    loaded = load_cub(tmp_path)  # the parent folder works too
    d = loaded.data
    assert loaded.format == "cub" and loaded.image_root == cub / "images"
    assert d.class_names == CUB_CLASSES and d.knowledge_names == CUB_ATTRIBUTES
    np.testing.assert_allclose(d.knowledge, cub_matrix(), atol=1e-6)
    assert sorted(d.class_names[c] for c in d.unseen_classes) == ["004.Groove_billed_Ani", "006.Least_Auklet"]
    assert d.labels.tolist() == np.repeat(np.arange(7), 3).tolist()  # image ids 1..21 in order
    assert (d.trainval_idx.size, d.test_seen_idx.size, d.test_unseen_idx.size) == (10, 5, 6)
    assert loaded.image_paths[0] == "001.Black_footed_Albatross/Black_footed_Albatross_0001_1.jpg"
    assert len(d.descriptions) == 7 and all(len(texts) == 6 for texts in d.descriptions)
    assert "class 1 " in d.descriptions[0][0]
    assert d.val_classes.size == 1 and any("seed 0" in n for n in loaded.notes)
    x, _ = loaded.image_dataset(np.array([0]))[0]
    assert x.shape == (3, 224, 224)


def test_caption_folder_matched_by_number(tmp_path):
    cub = make_cub(tmp_path)
    (tmp_path / "text_c10" / "003.Sooty_Albatross").rename(tmp_path / "text_c10" / "003.Sooty_Albatros")
    d = load_cub(cub).data
    assert len(d.descriptions[2]) == 6


def test_without_class_lists(tmp_path):
    cub = make_cub(tmp_path, class_lists=False, captions=False)
    with pytest.raises(DataError, match=r"no seen / unseen split .*trainvalclasses\.txt .*unseen_classes"):
        load_cub(cub)
    loaded = load_cub(cub, unseen_classes=("001.Black_footed_Albatross",))
    assert loaded.data.unseen_classes.tolist() == [0] and loaded.data.descriptions == ()


def test_parent_path_in_images_txt_is_refused(cub):
    _rewrite_line(cub / "images.txt", 1, "2 ../../outside.jpg")
    with pytest.raises(DataError, match=r"images\.txt, line 2: image path '\.\./\.\./outside\.jpg' refused"):
        load_cub(cub)
    _rewrite_line(cub / "images.txt", 1, "2 /home/user/bird.jpg")
    with pytest.raises(DataError, match=r"images\.txt, line 2: absolute image path"):
        load_cub(cub)


def test_missing_image_file(cub):
    path = cub / "images" / CUB_CLASSES[1]
    victim = sorted(path.iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match=rf"1 of 21 image files listed in .*images\.txt are missing .*{victim.name}"):
        load_cub(cub)


def test_a_few_corrupt_jpegs_warn_all_fail(cub):
    files = sorted((cub / "images").rglob("*.jpg"))
    corrupt(files[4])
    corrupt(files[10])
    with pytest.warns(UserWarning, match=rf"2 of 21 image files .*{files[4].name}, .*{files[10].name}"):
        loaded = load_cub(cub)
    assert loaded.data.labels.size == 19 and any("2 of 21" in n for n in loaded.notes)
    for f in files:
        corrupt(f)
    with pytest.raises(DataError, match="none of the 21 image files"):
        load_cub(cub)


def test_class_without_attribute_row_and_wrong_width(cub):
    matrix = cub / "attributes" / "class_attribute_labels_continuous.txt"
    original = matrix.read_text()
    matrix.write_text("".join(original.splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match=r"class '007\.Parakeet_Auklet' .* has no attribute row"):
        load_cub(cub)
    matrix.write_text(original + "1 2 3 4\n")
    with pytest.raises(DataError, match="lists only 7 classes"):
        load_cub(cub)
    matrix.write_text("\n".join(" ".join(row.split()[:3]) for row in original.splitlines()) + "\n")
    with pytest.raises(DataError, match=r"line 1: 3 values, but attributes\.txt names 4"):
        load_cub(cub)


def test_id_files_must_agree(cub):
    labels = cub / "image_class_labels.txt"
    _rewrite_line(labels, 0, "1 9")
    with pytest.raises(DataError, match=r"image_class_labels\.txt, line 1: class id 9 is not in classes\.txt"):
        load_cub(cub)
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(DataError, match=r"1 image id\(s\) of .*images\.txt have no line"):
        load_cub(cub)
    _rewrite_line(cub / "images.txt", 0, "x 001.a/b.jpg")
    with pytest.raises(DataError, match=r"images\.txt, line 1: the id must be an integer"):
        load_cub(cub)


def test_exact_xlsa17_image_split_from_res101(tmp_path):
    cub = make_cub(tmp_path, class_lists=False)
    meta = read_cub_meta(cub)
    folder = tmp_path / "xlsa17" / "data" / "CUB"
    # allclasses_names in another order than classes.txt (as in the published file): matched by name
    expected = make_xlsa17_image_split(folder, CUB_PREFIX, CUB_CLASSES, meta.image_paths, meta.labels, CUB_UNSEEN,
                                       ("005.Crested_Auklet",), unlisted=(meta.image_paths[-1],))
    loaded = load_cub(cub, split_dir=folder)
    d = loaded.data
    got = {key: sorted(loaded.image_paths[i] for i in idx)
           for key, idx in (("trainval", d.trainval_idx), ("test_seen", d.test_seen_idx),
                            ("test_unseen", d.test_unseen_idx))}
    assert got == expected
    # by hand: 5 seen classes x 3 images, the first of each in test_seen, less 007's last image (unlisted);
    # 2 unseen classes x 3 images
    assert (len(got["trainval"]), len(got["test_seen"]), len(got["test_unseen"])) == (9, 5, 6)
    assert got["test_seen"][0] == "001.Black_footed_Albatross/Black_footed_Albatross_0001_1.jpg"
    assert sorted(d.class_names[c] for c in d.unseen_classes) == sorted(CUB_UNSEEN)
    assert [d.class_names[c] for c in d.val_classes] == ["005.Crested_Auklet"]
    assert d.split_origin.startswith("xlsa17: ") and len(d.descriptions) == 7
    assert any("1 image(s)" in n for n in loaded.notes)
    (folder / "res101.mat").unlink()
    with pytest.raises(DataError, match="no seen / unseen split"):  # the split file alone names no classes
        load_cub(cub, split_dir=folder)
