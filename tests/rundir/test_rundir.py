"""Run directories never lose a user's files; staging is private to each run and cleaned up on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from niwt.cli import main
from niwt.errors import RunDirectoryError
from niwt.rundir import StageStore, check_output_dir, in_run_dir, read_manifest, run_dir
from niwt.rundir.layout import MANIFEST


def _write_run(out, force=False, text="a"):
    def body(staging):
        (staging / "metrics.json").write_text(text)
        (staging / "model").mkdir()
        (staging / "model" / "w.bin").write_bytes(b"\0")
        return "done"

    return in_run_dir(out, force, body, command="test")


def test_users_folder_survives_demo_with_and_without_force(tmp_path, capsys):
    mydocs = tmp_path / "mydocs"
    mydocs.mkdir()
    (mydocs / "thesis.tex").write_text("years of work")
    for extra in ([], ["--force"]):
        assert main(["demo", "--out", str(mydocs), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert str(mydocs) in err and "thesis.tex" in err and "never deletes" in err
        assert sorted(p.name for p in mydocs.iterdir()) == ["thesis.tex"]
        assert (mydocs / "thesis.tex").read_text() == "years of work"
    assert [p.name for p in tmp_path.iterdir()] == ["mydocs"]  # no staging left behind


def test_a_file_named_like_a_run_output_is_not_a_run(tmp_path):
    # The old rule recognised a run by `metrics.json`; a user's file of that name must not count.
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    (out / "config.toml").write_text("")
    with pytest.raises(RunDirectoryError, match="not a niwt run"):
        check_output_dir(out, force=True)


def test_empty_and_missing_directories_are_used(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _write_run(empty) == "done"
    assert _write_run(tmp_path / "a" / "b" / "missing") == "done"
    for d in (empty, tmp_path / "a" / "b" / "missing"):
        manifest = read_manifest(d)
        assert manifest is not None and manifest.command == "test"
        assert set(manifest.files) == {"metrics.json", "model/w.bin"}


def test_force_replaces_a_niwt_run_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    _write_run(out, text="first")
    with pytest.raises(RunDirectoryError, match="already holds a niwt run"):
        _write_run(out, text="second")
    assert (out / "metrics.json").read_text() == "first"
    _write_run(out, force=True, text="second")
    assert (out / "metrics.json").read_text() == "second"
    # A user's file dropped into a run (at any depth) makes --force refuse.
    (out / "model" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="model/notes.txt"):
        _write_run(out, force=True, text="third")
    assert (out / "model" / "notes.txt").read_text() == "mine"
    assert (out / "metrics.json").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_manifest_of_another_tool_is_not_ours(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"format": "something-else", "files": []}))
    with pytest.raises(RunDirectoryError, match="not a niwt run"):
        check_output_dir(out, force=True)
    (out / MANIFEST).write_bytes(b"\xff\xfe not json")
    with pytest.raises(RunDirectoryError, match="not a niwt run"):
        check_output_dir(out, force=True)


def test_a_file_or_a_link_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirectoryError, match="not a directory"):
        check_output_dir(f)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(RunDirectoryError, match="symbolic link"):
        check_output_dir(link)


def test_staging_is_removed_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with run_dir(out) as staging:
            (staging / "c").write_text("3")
            raise RuntimeError("boom")
    assert not staging.exists() and not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_second_of_two_concurrent_runs_is_refused_and_cleaned(tmp_path):
    out = tmp_path / "out"
    first_cm, second_cm = run_dir(out), run_dir(out)
    first, second = first_cm.__enter__(), second_cm.__enter__()
    assert first != second
    (first / "a").write_text("1")
    (second / "b").write_text("2")
    first_cm.__exit__(None, None, None)
    with pytest.raises(RunDirectoryError, match="already holds a niwt run"):
        second_cm.__exit__(None, None, None)
    assert not second.exists()
    assert sorted(p.name for p in out.iterdir()) == ["a", MANIFEST]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_run_leaves_the_old_run_untouched(tmp_path):
    out = tmp_path / "out"
    _write_run(out, text="old")

    def body(staging):
        (staging / "metrics.json").write_text("new")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        in_run_dir(out, True, body)
    assert (out / "metrics.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_ctrl_c_keeps_the_staging_for_resume(tmp_path):
    out = tmp_path / "out"

    def body(staging):
        with StageStore(staging).put("first", "k1") as d:
            (d / "x").write_text("1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        in_run_dir(out, False, body)
    (kept,) = tmp_path.glob(".out.*.partial")
    assert StageStore(kept).finished() == {"first": "k1"}
    # --resume takes it over: the finished stage is found, the run completes in place.
    with run_dir(out, resume=True) as staging:
        assert staging == kept
        assert StageStore(staging).get("first", "k1") is not None
        assert StageStore(staging).get("first", "other key") is None
    assert read_manifest(out).stages == {"first": "k1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_stage_is_claimed_only_when_finished(tmp_path):
    store = StageStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.put("s", "k") as d:
            (d / "half").write_text("written")
            raise RuntimeError("killed mid-write")
    assert store.get("s", "k") is None and store.finished() == {}
    with store.put("s", "k") as d:
        (d / "whole").write_text("written")
    assert store.get("s", "k") == tmp_path / "stages" / "s" and store.finished() == {"s": "k"}
    with store.put("s", "k2") as d:  # a changed stage replaces the old one
        (d / "new").write_text("written")
    assert store.get("s", "k") is None and (store.get("s", "k2") / "new").exists()
    assert not (tmp_path / "stages" / "s" / "whole").exists()


def test_a_run_keeps_a_checksum_of_every_file_and_load_run_names_a_damaged_one(small_run_dir, tmp_path):
    import shutil

    from niwt.rundir import file_checksum, read_manifest, verify_run
    from niwt.runs import RunFormatError, load_run

    run = Path(shutil.copytree(small_run_dir, tmp_path / "run"))
    manifest = read_manifest(run)
    assert set(manifest.checksums) == set(manifest.files)
    assert manifest.checksums["model/niwt.safetensors"] == file_checksum(run / "model" / "niwt.safetensors")
    verify_run(run)
    weights = run / "model" / "niwt.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(RunFormatError, match=r"damaged: model/niwt\.safetensors was altered or truncated"):
        load_run(run)
    weights.write_bytes(data)
    load_run(run)
    (run / "metrics.json").unlink()
    with pytest.raises(RunFormatError, match=r"damaged: metrics\.json is missing"):
        load_run(run)


def test_a_stage_whose_file_differs_from_its_checksum_is_recomputed(tmp_path, caplog):
    from niwt.rundir import StageStore

    store = StageStore(tmp_path)
    with store.put("fit", "k1") as d:
        (d / "weights.bin").write_bytes(b"\x01\x02\x03")
    assert store.get("fit", "k1") is not None
    (tmp_path / "stages" / "fit" / "weights.bin").write_bytes(b"\x01\x02\x04")
    with caplog.at_level("WARNING"):
        assert store.get("fit", "k1") is None
    assert "stage fit: weights.bin was altered or truncated" in caplog.text and "recomputed" in caplog.text


def test_every_file_of_a_run_has_the_mode_the_umask_gives_a_new_file(small_run_dir, tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    modes = {p.relative_to(small_run_dir).as_posix(): p.stat().st_mode & 0o777
             for p in small_run_dir.rglob("*") if p.is_file()}
    assert "model/niwt.safetensors" in modes  # safetensors writes 0600 through a temporary name
    assert {name: mode for name, mode in modes.items() if mode != 0o666 & ~umask} == {}
