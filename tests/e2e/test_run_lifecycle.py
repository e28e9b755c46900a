"""A finished run survives its own commands: what explain, predict --explain and report write about
it never damages it or blocks another command, in-place changes keep it, output folders are
checked before any work, and names, knowledge and flags are checked at the door in the user's words.

Each test is one of the sequences that used to break a run, run through the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import niwt.runs.loaded
from niwt.cli import main
from niwt.rundir import file_checksum, outputs_of, read_manifest, verify_run
from niwt.rundir.layout import EXPLAIN, EXPLANATIONS, MANIFEST, OUTPUTS, REPORT
from niwt.runs import load_run
from tests._paths import ROOT


def _fingerprint(run: Path) -> dict[str, str]:
    return {p.relative_to(run).as_posix(): file_checksum(p) for p in sorted(run.rglob("*")) if p.is_file()}


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 36, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def run(small_run_dir, tmp_path) -> Path:
    """A fresh copy of the small run for each test, in its own folder."""
    return Path(shutil.copytree(small_run_dir, tmp_path / "R"))


def _attribute(run: Path) -> str:
    """``--attributes`` that teach a class of ``run`` something (its first two attributes at their top)."""
    encoder = load_run(run).encoder
    return ",".join(f"{n}={h:g}" for n, h in list(zip(encoder.names, encoder.high))[:2])


def _no_transfer(monkeypatch) -> None:
    """Fail the test if a transfer starts: the command was meant to be refused before any work."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("the transfer ran before the output was checked")

    monkeypatch.setattr(niwt.runs.loaded, "learn_rows", refuse)


def test_deleting_what_commands_wrote_about_a_run_never_damages_it(run, tmp_path, capsys):
    image = _image(tmp_path / "img.png")
    assert main(["explain", str(run), "--n", "2", "--quiet"]) == 0
    assert main(["report", str(run), "--quiet"]) == 0
    manifest = read_manifest(run)
    assert not any(n.startswith(f"{EXPLAIN}/") or n == REPORT for n in manifest.files)  # not the run
    assert {f"{EXPLAIN}/{EXPLANATIONS}", REPORT} <= set(outputs_of(run))  # recorded by the commands
    shutil.rmtree(run / EXPLAIN)
    (run / REPORT).unlink()
    shutil.rmtree(run / "plots")
    verify_run(run)
    capsys.readouterr()
    assert main(["predict", str(run), str(image)]) == 0
    assert main(["explain", str(run), str(image), "--quiet"]) == 0
    assert main(["report", str(run), "--quiet"]) == 0
    assert main(["teach", str(run), "--name", "p", "--attributes", _attribute(run), "--out", str(tmp_path / "T"),
                 "--quiet"]) == 0
    assert main(["forget", str(tmp_path / "T"), "--name", "p", "--out", str(tmp_path / "F"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("to_out", [False, True])
def test_explanations_accumulate_in_one_folder(run, tmp_path, to_out, capsys):
    a, b = _image(tmp_path / "a.png", 1), _image(tmp_path / "b.png", 2)
    out = tmp_path / "E" if to_out else run / EXPLAIN
    extra = ["--out", str(out)] if to_out else []
    for image in (a, b, a):
        assert main(["explain", str(run), str(image), "--quiet", *extra]) == 0, capsys.readouterr().err
    record = json.loads((out / EXPLANATIONS).read_text())
    assert [Path(i["source"]).name for i in record["images"]] == ["b.png", "a.png"]  # a again: replaced
    assert sorted(p.name for p in out.iterdir()) == sorted([EXPLANATIONS, *(i["overlay"] for i in record["images"])])
    (out / "notes.txt").write_text("mine")
    assert main(["explain", str(run), str(b), "--quiet", *extra]) == 2
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"


def test_predict_explain_takes_out_and_names_never_collide(run, tmp_path, capsys):
    one, two = _image(tmp_path / "one" / "x.png", 1), _image(tmp_path / "two" / "x.png", 2)
    out = tmp_path / "P"
    assert main(["predict", str(run), str(one), str(two), "--explain", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / EXPLANATIONS).read_text())
    assert [i["source"] for i in record["images"]] == [str(one), str(two)]
    assert len({i["overlay"] for i in record["images"]}) == 2  # two x.png, two overlays
    capsys.readouterr()
    for _ in range(2):  # into the run, twice
        assert main(["predict", str(run), str(one), "--explain", "--quiet"]) == 0
    assert len(json.loads((run / EXPLAIN / EXPLANATIONS).read_text())["images"]) == 1
    assert set(outputs_of(run)) >= {f"{EXPLAIN}/{EXPLANATIONS}"}
    assert main(["explain", str(run), str(two), "--quiet"]) == 0
    other = Path(shutil.copytree(run, tmp_path / "OTHER"))  # a run holding explanations, replaced with --force
    assert main(["teach", str(run), "--name", "p", "--attributes", _attribute(run), "--out", str(other),
                 "--force", "--quiet"]) == 0
    assert "p" in load_run(other).row_names and not (other / EXPLAIN).exists()
    assert main(["teach", str(run), "--name", "q", "--attributes", _attribute(run), "--in-place", "--quiet"]) == 0
    assert "q" in load_run(run).row_names
    assert capsys.readouterr().err == ""


def test_in_place_changes_keep_the_report_and_explanations_and_say_so(run, tmp_path, capsys):
    assert main(["report", str(run), "--quiet"]) == 0
    assert main(["explain", str(run), "--n", "1", "--quiet"]) == 0
    kept = {name: file_checksum(run / name) for name in outputs_of(run)}
    capsys.readouterr()
    assert main(["teach", str(run), "--name", "p", "--attributes", _attribute(run), "--in-place", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"Kept the {len(kept)} file(s) written about the run" in out and "niwt report" in out
    assert {name: file_checksum(run / name) for name in kept} == kept
    assert main(["forget", str(run), "--name", "p", "--in-place", "--quiet"]) == 0
    assert {name: file_checksum(run / name) for name in kept} == kept
    assert set(read_manifest(run).files).isdisjoint(kept)  # still not the run


def test_a_run_named_dot_is_taught_beside_itself(run, monkeypatch):
    monkeypatch.chdir(run)
    assert main(["teach", ".", "--name", "p", "--attributes", _attribute(run), "--quiet"]) == 0
    assert "p" in load_run(run.parent / "R-taught").row_names
    assert not (run / "-taught").exists() and sorted(p.name for p in run.parent.iterdir()) == ["R", "R-taught"]


@pytest.mark.parametrize("where, flags, message", [
    ("folder", [], "is not empty and is not a niwt run"),
    ("file", [], "exists and is not a directory"),
    ("run", [], "already holds a niwt run"),
    ("source", [], "is the run being changed itself"),
    ("inside", [], "is inside the run"),
])
def test_output_folders_are_refused_before_any_work(run, tmp_path, where, flags, message, monkeypatch, capsys):
    target = {"folder": tmp_path / "folder", "file": tmp_path / "file", "run": tmp_path / "other",
              "source": run, "inside": run / "sub"}[where]
    if where == "folder":
        target.mkdir()
        (target / "mine.txt").write_text("x")
    elif where == "file":
        target.write_text("x")
    elif where == "run":
        shutil.copytree(run, target)
    before = _fingerprint(run)
    _no_transfer(monkeypatch)
    assert main(["teach", str(run), "--name", "p", "--attributes", _attribute(run), "--out", str(target),
                 *flags]) == 2
    assert message in capsys.readouterr().err
    assert _fingerprint(run) == before


@pytest.mark.parametrize("name, message", [
    ("a\nb", "control character"),
    ("x" * 10_000, "has 10000 characters"),
    ("../../etc/evil", "path separators"),
    ("-x", "starts with '-'"),
    (" x", "blanks"),
])
def test_class_names_are_checked_at_the_door(run, name, message, monkeypatch, capsys):
    before = _fingerprint(run)
    _no_transfer(monkeypatch)
    assert main(["teach", str(run), f"--name={name}", "--attributes", _attribute(run)]) == 2
    assert message in capsys.readouterr().err
    assert _fingerprint(run) == before and sorted(p.name for p in run.parent.iterdir()) == ["R"]


def test_names_differing_only_in_capitals_and_dataset_classes(run, tmp_path, capsys, caplog):
    loaded = load_run(run)
    seen, unseen = loaded.row_names[0], loaded.row_names[-1]
    assert main(["teach", str(run), "--name", seen.upper(), "--attributes", _attribute(run)]) == 2
    assert "only in capitals" in capsys.readouterr().err
    assert main(["teach", str(run), "--name", seen, "--attributes", _attribute(run)]) == 2
    err = capsys.readouterr().err
    assert "is a seen class of this run" in err and "forget it first" not in err
    assert main(["forget", str(run), "--name", unseen, "--out", str(tmp_path / "F"), "--quiet"]) == 0
    assert main(["teach", str(tmp_path / "F"), "--name", unseen.upper(), "--attributes", _attribute(run)]) == 2
    assert "a class of the run's dataset, only in capitals" in capsys.readouterr().err
    with caplog.at_level("WARNING"):
        assert main(["teach", str(tmp_path / "F"), "--name", unseen, "--attributes", _attribute(run),
                     "--out", str(tmp_path / "B"), "--quiet"]) == 0
    assert "taught back under its own name" in caplog.text


def test_attribute_values_are_checked_against_the_run(run, monkeypatch, capsys):
    encoder = load_run(run).encoder
    name = encoder.names[0]
    _no_transfer(monkeypatch)
    smallest, largest = min(encoder.low), max(encoder.high)
    for values, message in ((f"{name}=0", "every attribute of the class is 0"),
                            (f"{name}=1e300", f"is far outside the values of the run's classes ({smallest:g} to "
                                              f"{largest:g})"),
                            (f"{name}=-0.5", "is negative, but every attribute value of the run's classes is >= 0"),
                            (f"{name}=nan", "is not NAME=NUMBER"),
                            ("color", f"(e.g. --attributes {encoder.names[0]}=1,{encoder.names[1]}=0.5)")):
        assert main(["teach", str(run), "--name", "p", "--attributes", values]) == 2
        assert message in capsys.readouterr().err, values


def test_a_value_just_beyond_the_range_is_taught_with_a_warning(run, tmp_path, caplog):
    encoder = load_run(run).encoder
    name, high = encoder.names[0], encoder.high[0]
    with caplog.at_level("WARNING"):
        assert main(["teach", str(run), "--name", "p", "--attributes", f"{name}={high * 1.05:g}", "--out",
                     str(tmp_path / "T"), "--quiet"]) == 0
    assert f"attribute '{name}': {high * 1.05:g} is outside the range the run's classes have" in caplog.text


def test_predict_output_quotes_names_that_hold_blanks_or_commas(run, tmp_path, capsys):
    image = _image(tmp_path / "img.png")
    assert main(["teach", str(run), "--name", "big bear, polar", "--attributes", _attribute(run), "--in-place",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), str(image), "--top-k", str(len(load_run(run).row_names))]) == 0
    assert "'big bear, polar' 0." in capsys.readouterr().out


def test_messages_speak_of_flags_and_give_advice_that_works(run, tmp_path, capsys):
    image = _image(tmp_path / "img.png")
    assert main(["predict", str(run), str(image), "--top-k", "0"]) == 2
    assert "--top-k must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["explain", str(run), "--n", "0"]) == 2
    assert "--n must be an integer >= 1, got 0" in capsys.readouterr().err
    (tmp_path / "notarun.txt").write_text("x")
    assert main(["predict", str(tmp_path / "notarun.txt"), str(image)]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err
    assert main(["predict", str(run), str(image), "--out", str(tmp_path / "o")]) == 2
    assert "give --explain too" in capsys.readouterr().err
    assert main(["forget", str(run), "--name", load_run(run).row_names[0]]) == 2
    err = capsys.readouterr().err
    assert "stays" in err and "forget the class first" not in err
    assert main(["predict", str(run), str(image), "--top-k", "0", "--debug"]) == 2  # --debug after the command
    assert "Traceback" in capsys.readouterr().err


def test_help_pages_print_percent_signs_once(capsys):
    for command in ("compare", "reproduce", "ablate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "95%" in out and "%%" not in out


def test_data_inspect_exits_non_zero_on_problems(tmp_path, capsys):
    assert main(["data", "example", str(tmp_path / "ds")]) == 0
    assert main(["data", "inspect", str(tmp_path / "ds"), "--no-image-check"]) == 0
    first = sorted(p for p in (tmp_path / "ds").iterdir() if p.is_dir())[0]
    next(first.iterdir()).write_bytes(b"not an image")
    assert main(["data", "inspect", str(tmp_path / "ds")]) == 1
    assert "problems (" in capsys.readouterr().out


def test_help_loads_no_torch():
    """Every help page is built from modules that import no torch (how long it takes is measured in
    benchmarks/cli_start.py, not asserted here)."""
    commands = [[], ["demo"], ["run"], ["compare"], ["sweep-lambda"], ["reproduce"], ["ablate"], ["explain"],
                ["predict"], ["teach"], ["forget"], ["names"], ["report"], ["serve"], ["export-features"], ["data"],
                ["data", "inspect"], ["data", "example"], ["config"], ["adopt"]]
    import argparse

    from niwt.cli import get_args_parser

    sub = next(a for a in get_args_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {argv[0] for argv in commands if argv}  # every command's help is checked
    script = ("import sys\nfrom niwt.cli import main\n"
              f"for argv in {commands!r}:\n"
              "    try:\n        main([*argv, '--help'])\n    except SystemExit:\n        pass\n"
              "heavy = sorted(m for m in ('torch', 'numpy', 'scipy', 'matplotlib') if m in sys.modules)\n"
              "print(heavy)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_the_choices_declared_where_they_are_implemented(capsys):
    from niwt.config import METHOD_NAMES
    from niwt.data.registry import FORMATS
    from niwt.pipeline.experiments import DEFAULT_SWEEP

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"comma-separated subset of: {', '.join(METHOD_NAMES)}" in text
    with pytest.raises(SystemExit):
        main(["data", "inspect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"skip detection: {', '.join(FORMATS[:-1])} or {FORMATS[-1]}" in text
    with pytest.raises(SystemExit):
        main(["sweep-lambda", "--help"])
    text = "".join(capsys.readouterr().out.split())
    assert "(default:" + ",".join(f"{v:g}" for v in DEFAULT_SWEEP) + ")" in text


def test_the_report_shows_what_each_class_was_given_and_labels_its_maps(run, capsys):
    assert main(["teach", str(run), "--name", "p", "--attributes", _attribute(run), "--in-place", "--quiet"]) == 0
    assert main(["report", str(run), "--quiet"]) == 0
    page = (run / REPORT).read_text(encoding="utf-8")
    assert "given (description or attributes)" in page and "read back through the maps" in page
    assert f"<td>{_attribute(run).replace(',', ', ')}</td>" in page  # the taught class, as it was told
    assert 'class="legend"' in page and "map of <b>" in page
    assert OUTPUTS not in read_manifest(run).files and (run / OUTPUTS).is_file()
    assert MANIFEST not in outputs_of(run)
