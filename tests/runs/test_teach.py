"""niwt teach / forget: a finished run learns a class from its description, in memory and on disk,
with nothing else of it moving, and bad input leaves every run as it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from niwt.cli import main
from niwt.errors import DataError, RunDirectoryError
from niwt.faults import ENV
from niwt.rundir import file_checksum, read_manifest
from niwt.rundir.layout import MANIFEST, POOL_CACHE
from niwt.runs import Lesson, RunFormatError, load_run
from niwt.transfer import PoolCache, UnseenWeightOptimizer
from tests._configs import SMALL_RUN
from tests._paths import ROOT


def _fingerprint(run: Path) -> dict[str, str]:
    """Every file of a run directory (the manifest included) with its checksum."""
    return {p.relative_to(run).as_posix(): file_checksum(p) for p in sorted(run.rglob("*")) if p.is_file()}


def _attributes(run, data, name: str) -> dict[str, float]:
    return dict(zip(run.knowledge_names, data.knowledge[data.class_names.index(name)].tolist()))


@pytest.fixture(scope="module")
def run_dir(small_run_dir):
    return small_run_dir


@pytest.fixture(scope="module")
def text_run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text_run")
    (root / "c.toml").write_text(SMALL_RUN + '[knowledge]\nsource = "text"\n')
    assert main(["run", str(root / "c.toml"), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def test_teaching_adds_one_row_and_moves_nothing_else(run_dir):
    run = load_run(run_dir)
    before = _fingerprint(run_dir)
    state = {k: v.clone() for k, v in run.model.state_dict().items()}
    values = {run.knowledge_names[0]: 1.0, run.knowledge_names[7]: 1.0}
    taught = run.teach("blob", attributes=values)
    assert taught.row_names == (*run.row_names, "blob") and not taught.saved and taught.taught_classes == ("blob",)
    new_state = taught.model.state_dict()
    for key, value in state.items():  # the backbone, the seen rows and the old unseen rows are untouched
        if key.endswith("unseen_weight") or key.endswith("unseen_bias"):
            np.testing.assert_array_equal(new_state[key][: value.shape[0]].numpy(), value.numpy())
        else:
            assert torch.equal(new_state[key], value), key
    head = taught.model.classifier
    assert head.n_unseen == run.model.classifier.n_unseen + 1 and float(head.unseen_bias[-1]) == 0.0
    assert torch.isfinite(head.unseen_weight).all() and head.unseen_weight[-1].norm() > 0
    np.testing.assert_array_equal(taught.knowledge[: len(run.class_names)], run.knowledge)  # no vector moved
    np.testing.assert_allclose(taught.knowledge[-1], run.encode(attributes=values), rtol=0, atol=0)
    assert torch.equal(run.model.classifier.unseen_weight, state["classifier.unseen_weight"])  # source object too
    event = taught.events[-1]
    assert (event.action, event.classes, event.lessons) == ("teach", ("blob",), (Lesson("blob", attributes=values),))
    record = json.loads((run_dir / "transfer" / "history.json").read_text())
    assert (event.lam, event.lr) == (record["lam"], record["lr"])  # the run's chosen point
    assert _fingerprint(run_dir) == before  # nothing written yet


def test_the_cached_fit_learns_the_rows_the_fit_on_images_learns(gap_model):
    torch.manual_seed(1)
    pool = torch.rand(12, 3, 8, 8, dtype=torch.float64)
    targets = np.random.default_rng(0).normal(size=(2, 6))
    cache = PoolCache.of(gap_model, pool)
    assert (cache.channels, cache.positions) == (6, 64)
    options = dict(lam=1e-2, lr=1e-2, batch_size=5, max_steps=12, patience=100, random_state=4)
    on_images = UnseenWeightOptimizer(**options).fit(gap_model, pool, targets)
    cached = UnseenWeightOptimizer(**options, mode="reference").fit_cached(gap_model, cache, targets)
    torch.testing.assert_close(cached.weights_, on_images.weights_, rtol=0, atol=0)
    assert cached.history_ == on_images.history_


def test_a_saved_taught_run_loads_back_checked_predicts_it_and_keeps_the_source(run_dir, tmp_path, capsys):
    before = _fingerprint(run_dir)
    run = load_run(run_dir)
    data, _ = run.dataset()
    values = _attributes(run, data, run.row_names[-1])  # an unseen class's own attributes, under a new name
    saved = run.teach("twin", attributes=values).save(tmp_path / "taught")
    assert saved.saved and saved.path == tmp_path / "taught" and saved.row_names[-1] == "twin"
    manifest = read_manifest(saved.path)
    assert manifest.command == "teach" and set(manifest.checksums) == set(manifest.files) >= {"taught.json"}
    assert not (saved.path / "report.html").exists()  # it described the source run
    assert _fingerprint(run_dir) == before
    image = data.images_tensor(data.test_unseen_idx[:4])
    predictions = saved.predict(image, top_k=len(saved.row_names))
    assert len(predictions) == 4
    for p in predictions:
        assert set(p.classes) == set(saved.row_names) and sum(p.probabilities) == pytest.approx(1.0, abs=1e-9)
    # the twin got its namesake's vector, so the map predicts it the same importance
    np.testing.assert_allclose(saved.knowledge[-1], saved.knowledge[run.new_classes[-1]], rtol=1e-12, atol=1e-12)
    from niwt.runs.export import export_features

    with pytest.raises(DataError, match="was taught twin, which its dataset has no image of"):
        export_features(saved, tmp_path / "export")
    assert main(["report", str(saved.path), "--quiet"]) == 0
    page = (saved.path / "report.html").read_text(encoding="utf-8")
    assert "Taught and forgotten since the run" in page and "twin" in page
    capsys.readouterr()


def test_forget_takes_taught_and_unseen_rows_out_and_a_forgotten_class_can_be_taught_again(run_dir):
    run = load_run(run_dir)
    data, _ = run.dataset()
    taught = run.teach("blob", attributes={run.knowledge_names[0]: 1.0})
    back = taught.forget("blob")
    assert back.row_names == run.row_names and back.class_names == run.class_names
    assert torch.equal(back.model.classifier.unseen_weight, run.model.classifier.unseen_weight)
    own = run.row_names[-1]
    less = run.forget(own)
    assert own not in less.row_names and own in less.class_names and less.taught_classes == ()
    again = less.teach(own, attributes=_attributes(run, data, own))
    assert again.row_names == run.row_names and again.taught_classes == (own,)
    np.testing.assert_allclose(again.knowledge, run.knowledge, rtol=1e-12, atol=1e-12)  # its own vector back
    with pytest.raises(DataError, match="is a seen class of this run"):
        run.forget(run.row_names[0])
    with pytest.raises(DataError, match="unknown class 'nope'"):
        run.forget("nope")
    with pytest.raises(DataError, match="leaves no unseen row"):
        run.forget(list(run.row_names[len(run.fit_classes):]))


def test_text_runs_encode_the_description_as_their_classes_were_and_name_unknown_words(text_run_dir, tmp_path):
    run = load_run(text_run_dir)
    assert run.encoder.uses_tfidf
    data, _ = run.dataset()
    name = run.row_names[-1]
    text = " ".join(data.descriptions[data.class_names.index(name)])
    np.testing.assert_allclose(run.encode(description=text), run.knowledge[data.class_names.index(name)], atol=1e-12)
    before = _fingerprint(text_run_dir)
    assert main(["teach", str(text_run_dir), "--name", "new-one", "--description", text, "--out",
                 str(tmp_path / "t"), "--quiet"]) == 0
    assert load_run(tmp_path / "t").row_names[-1] == "new-one"
    with pytest.raises(DataError, match=r"class 'x': .*empty"):
        run.teach("x", description="   ")
    with pytest.raises(DataError, match="'zorblax'"):
        run.teach("x", description="zorblax quuxly")
    with pytest.raises(DataError, match="described by text"):
        run.teach("x", attributes={"a": 1.0})
    assert _fingerprint(text_run_dir) == before


@pytest.mark.parametrize("args, message", [
    (["--name", "x", "--attributes", "shape:disk=1"], "unknown attribute 'shape:disk'; close names: shape:disc"),
    (["--name", "x", "--attributes", "shape:disc"], "is not NAME=NUMBER"),
    (["--name", "x", "--name", "y", "--attributes", "shape:disc=1"], "2 --name but 1 --attributes"),
    (["--name", "x", "--attributes", "shape:disc=1", "--name", "x", "--attributes", "shape:disc=1"], "given twice"),
])
def test_bad_input_is_named_and_writes_nothing(run_dir, args, message, capsys):
    before = _fingerprint(run_dir)
    siblings = sorted(p.name for p in run_dir.parent.iterdir())
    assert main(["teach", str(run_dir), *args]) == 2
    assert message in capsys.readouterr().err
    assert _fingerprint(run_dir) == before and sorted(p.name for p in run_dir.parent.iterdir()) == siblings


def test_a_name_that_is_a_class_is_refused(run_dir, capsys):
    name = load_run(run_dir).row_names[0]
    assert main(["teach", str(run_dir), "--name", name, "--attributes", "shape:disc=1"]) == 2
    assert f"'{name}' is a seen class of this run (trained on its images); choose another name" in \
        capsys.readouterr().err


def test_old_and_damaged_runs_are_refused_and_named(run_dir, tmp_path):
    old = Path(shutil.copytree(run_dir, tmp_path / "old"))
    (old / POOL_CACHE).unlink()  # as a run written before runs kept their pool cache
    manifest = json.loads((old / MANIFEST).read_text())
    manifest["files"].remove(POOL_CACHE)
    del manifest["checksums"][POOL_CACHE]
    (old / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match="written before runs kept their transfer pool's cache"):
        load_run(old).teach("x", attributes={"shape:disc": 1.0})
    damaged = Path(shutil.copytree(run_dir, tmp_path / "damaged"))
    with open(damaged / "model" / "niwt.safetensors", "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)
    assert main(["teach", str(damaged), "--name", "x", "--attributes", "shape:disc=1"]) == 2
    with pytest.raises(RunFormatError, match=r"model/niwt.safetensors was altered or truncated"):
        load_run(damaged)
    assert not (tmp_path / "damaged-taught").exists()


def test_save_refuses_to_overwrite_and_in_place_replaces(run_dir, tmp_path):
    source = Path(shutil.copytree(run_dir, tmp_path / "run"))
    taught = load_run(source).teach("blob", attributes={"shape:disc": 1.0})
    first = taught.save()
    assert first.path == tmp_path / "run-taught"
    assert taught.save().path == tmp_path / "run-taught-2"
    with pytest.raises(RunDirectoryError, match="already holds a niwt run"):
        taught.save(first.path)
    with pytest.raises(RunDirectoryError, match="is the run being changed itself"):
        taught.save(source)
    replaced = taught.save(in_place=True)
    assert replaced.path == source and load_run(source).row_names[-1] == "blob"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


@pytest.mark.parametrize("in_place", [False, True])
def test_a_killed_teach_leaves_every_run_as_it_was(run_dir, tmp_path, in_place):
    source = Path(shutil.copytree(run_dir, tmp_path / "run"))
    before = _fingerprint(source)
    where = ["--in-place"] if in_place else ["--out", str(tmp_path / "out")]
    env = {**os.environ, ENV: "teach:before-finish", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "niwt.cli", "teach", str(source), "--name", "blob", "--attributes",
                           "shape:disc=1", *where, "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr
    assert _fingerprint(source) == before and not (tmp_path / "out").exists()
    assert load_run(source).row_names == load_run(run_dir).row_names


def test_teaching_back_the_last_unseen_class_gives_the_row_the_run_had(run_dir, tmp_path):
    run = load_run(run_dir)
    data, _ = run.dataset()
    last = run.row_names[-1]
    again = run.forget(last).teach(last, attributes=_attributes(run, data, last))
    assert again.row_names == run.row_names
    np.testing.assert_allclose(again.knowledge, run.knowledge, rtol=0, atol=1e-12)
    # the run's transfer, over the same classes in the same order, on its own stream
    torch.testing.assert_close(again.model.classifier.unseen_weight, run.model.classifier.unseen_weight,
                               rtol=1e-6, atol=1e-7)
    two = run.teach([Lesson("a", attributes={"shape:disc": 1.0}), Lesson("b", attributes={"shape:star": 1.0})])
    assert two.row_names[-2:] == ("a", "b") and two.taught_classes == ("a", "b")
    torch.testing.assert_close(two.model.classifier.unseen_weight[:-2], run.model.classifier.unseen_weight,
                               rtol=0, atol=0)


@pytest.fixture(scope="module")
def per_class_runs(tmp_path_factory) -> tuple[Path, Path, str]:
    """A run with per-class transfer, and the same run with its first unseen class withheld."""
    root = tmp_path_factory.mktemp("per_class")
    config = SMALL_RUN.replace("[transfer]\n", "[transfer]\nper_class = true\n")
    (root / "a.toml").write_text(config)
    assert main(["run", str(root / "a.toml"), "--out", str(root / "A"), "--quiet"]) == 0
    gone = load_run(root / "A").row_names[len(load_run(root / "A").fit_classes)]
    (root / "b.toml").write_text(config.replace("[data]\n", f'[data]\nwithhold = ["{gone}"]\n'))
    assert main(["run", str(root / "b.toml"), "--out", str(root / "B"), "--quiet"]) == 0
    return root / "A", root / "B", gone


def test_with_per_class_transfer_a_withheld_class_taught_gets_the_row_the_run_gave_it(per_class_runs):
    a_dir, b_dir, gone = per_class_runs
    a, b = load_run(a_dir), load_run(b_dir)
    assert gone not in b.class_names and gone in a.row_names
    data, _ = a.dataset()
    taught = b.teach(gone, attributes=_attributes(a, data, gone))
    assert sorted(taught.row_names) == sorted(a.row_names)

    def row(run, name):
        head = run.model.classifier
        i = run.row_of(name)
        return (head.weight[i] if i < head.n_seen else head.unseen_weight[i - head.n_seen]).detach()

    # Every row, the taught one included, as in the run that had the class. The taught row is float32
    # work done for it alone (its importance target predicted, its row fitted from the kept pool cache)
    # where the run did every unseen class at once: other matrix shapes round differently (seen: a few
    # 1e-9, the other rows are bit for bit the same) and the steps carry that on. Allow 1e-5 of the
    # largest weight, far below the distance between two rows.
    scale = max(float(row(a, name).abs().max()) for name in a.row_names)
    for name in a.row_names:
        torch.testing.assert_close(row(taught, name), row(a, name), rtol=1e-5, atol=1e-5 * scale, msg=name)
        others = [row(a, other) for other in a.row_names if other != name]
        assert min(float((row(taught, name) - o).abs().max()) for o in others) > 100 * 1e-5 * scale, name
