"""A run's features exported as an xlsa17 folder: published field conventions, round trip, output folder rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

import niwt.runs.export as export_module
from niwt.data.formats.xlsa17 import load_xlsa17
from niwt.errors import RunDirectoryError
from niwt.runs import load_run
from niwt.runs.export import EXPORT_FILES, export_features, export_main
from tests._fixtures_data import published_xlsa17

SPLIT_FIELDS = ("allclasses_names", "att", "original_att", "test_seen_loc", "test_unseen_loc", "train_loc",
                "trainval_loc", "val_loc")


@pytest.fixture(scope="module")
def run_dir(small_run_dir):
    return small_run_dir


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xlsa17") / "SHAPES"
    assert export_features(run, out, batch_size=7) == out  # several batches, the last one short
    return out


def _reference_features(run) -> np.ndarray:
    _, images = run.dataset()
    run.model.eval()
    with torch.no_grad():
        return run.model.forward_head(run.model.forward_features(images)).numpy()


def test_fields_shapes_and_dtypes(run, exported):
    data, _ = run.dataset()
    n, c, d = data.labels.size, len(run.class_names), run.knowledge.shape[1]
    assert sorted(p.name for p in exported.iterdir()) == sorted(EXPORT_FILES)
    feats = {name: (shape, cls) for name, shape, cls in scipy.io.whosmat(exported / "res101.mat")}
    assert feats == {"features": ((run.model.num_features, n), "single"), "labels": ((n, 1), "uint8"),
                     "image_files": ((n, 1), "cell")}
    splits = {name: (shape, cls) for name, shape, cls in scipy.io.whosmat(exported / "att_splits.mat")}
    assert tuple(splits) == SPLIT_FIELDS
    assert splits["allclasses_names"] == ((c, 1), "cell")
    assert splits["att"] == splits["original_att"] == ((d, c), "double")
    mat = scipy.io.loadmat(exported / "att_splits.mat")
    for name in SPLIT_FIELDS[3:]:
        assert mat[name].dtype == np.uint16 and mat[name].shape[1] == 1 and mat[name].min() >= 1  # 1-based
    assert mat["allclasses_names"][0, 0].tolist() == [run.class_names[0]]
    np.testing.assert_allclose(np.linalg.norm(mat["att"], axis=0), 1.0)  # unit-norm columns
    np.testing.assert_array_equal(mat["original_att"], run.knowledge.T)
    res = scipy.io.loadmat(exported / "res101.mat")
    assert res["labels"].min() == 1 and res["labels"].max() <= c  # 1-based rows of allclasses_names
    assert res["features"].dtype == np.float32
    # the published relations: train_loc / val_loc hold every image of the train / val classes
    trainval = np.union1d(mat["trainval_loc"].ravel(), mat["test_seen_loc"].ravel())
    np.testing.assert_array_equal(np.union1d(mat["train_loc"].ravel(), mat["val_loc"].ravel()), trainval)
    assert not np.intersect1d(mat["train_loc"], mat["val_loc"]).size


def test_same_field_conventions_as_the_published_split_file(exported):
    published = published_xlsa17() / "AWA2" / "att_splits.mat"
    ours, theirs = scipy.io.loadmat(exported / "att_splits.mat"), scipy.io.loadmat(published)
    fields = sorted(k for k in theirs if not k.startswith("__"))
    assert sorted(k for k in ours if not k.startswith("__")) == fields
    for name in fields:
        assert ours[name].dtype == theirs[name].dtype, name
        assert ours[name].ndim == theirs[name].ndim == 2, name
        if name.endswith("_loc") or name == "allclasses_names":
            assert ours[name].shape[1] == theirs[name].shape[1] == 1, name
    assert type(ours["allclasses_names"][0, 0]) is type(theirs["allclasses_names"][0, 0])
    assert ours["allclasses_names"][0, 0].dtype.kind == theirs["allclasses_names"][0, 0].dtype.kind == "U"


def test_round_trip_through_the_xlsa17_loader(run, exported):
    data, _ = run.dataset()
    back = load_xlsa17(exported).data
    reference = _reference_features(run)
    # float32 features of batches of 7 against one batch of every image: other matrix shapes round
    # differently (a few ulps, seen up to 3e-8 here); allow 1e-5 of the largest feature, far below
    # the distance between two images' features
    np.testing.assert_allclose(back.features, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())
    np.testing.assert_array_equal(back.labels, data.labels)
    assert back.class_names == run.class_names == data.class_names
    for key in ("trainval_idx", "test_seen_idx", "test_unseen_idx", "seen_classes", "unseen_classes",
                "train_classes", "val_classes"):
        np.testing.assert_array_equal(getattr(back, key), getattr(data, key), err_msg=key)
    unit = run.knowledge / np.linalg.norm(run.knowledge, axis=1, keepdims=True)
    np.testing.assert_allclose(back.knowledge, unit, rtol=1e-12, atol=1e-12)
    raw = load_xlsa17(exported, knowledge="original_att").data
    np.testing.assert_array_equal(raw.knowledge, run.knowledge)


def test_export_main_summary_and_replacing_an_export(run_dir, tmp_path):
    out = tmp_path / "again"
    text = export_main(run_dir, out)
    data, _ = load_run(run_dir).dataset()
    assert f"{data.labels.size} images x 16 features, {len(data.class_names)} classes" in text
    assert str(out / "res101.mat") in text and str(out / "att_splits.mat") in text
    before = scipy.io.loadmat(out / "res101.mat")["features"]
    export_main(run_dir, out)  # a folder holding only the two files is replaced in place
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORT_FILES)
    np.testing.assert_array_equal(scipy.io.loadmat(out / "res101.mat")["features"], before)


def test_refuses_a_folder_with_other_files(run, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="notes.txt"):
        export_features(run, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="not a directory"):
        export_features(run, tmp_path / "file")


def test_a_failed_write_leaves_no_half_files(run, exported, tmp_path, monkeypatch):
    out = tmp_path / "fail"
    real = export_module._write_mat
    calls = []

    def failing(path, fields):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError("disk full")
        real(path, fields)

    monkeypatch.setattr(export_module, "_write_mat", failing)
    with pytest.raises(OSError, match="disk full"):
        export_features(run, out)
    assert calls == [".res101.mat.partial", ".att_splits.mat.partial"]
    assert list(out.iterdir()) == []  # neither the temporaries nor a lone res101.mat
    # over an earlier export, both earlier files stay as they were
    old = tmp_path / "old"
    old.mkdir()
    for name in EXPORT_FILES:
        (old / name).write_bytes((exported / name).read_bytes())
    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        export_features(run, old)
    for name in EXPORT_FILES:
        assert (old / name).read_bytes() == (exported / name).read_bytes()
    assert sorted(p.name for p in old.iterdir()) == sorted(EXPORT_FILES)


def test_image_names_are_the_files_when_the_images_are_files(tmp_path):
    from types import SimpleNamespace

    data = SimpleNamespace(name="toy", class_names=("a", "b"), labels=np.array([1, 0]))
    files = SimpleNamespace(dataset=SimpleNamespace(root=tmp_path, paths=("b/1.jpg", "a/2.jpg")))
    root = tmp_path.resolve().as_posix()
    assert export_module._image_names(data, files) == [f"{root}/b/1.jpg", f"{root}/a/2.jpg"]
    assert export_module._image_names(data, torch.zeros(2, 3, 4, 4)) == ["toy/b/000001", "toy/a/000002"]
