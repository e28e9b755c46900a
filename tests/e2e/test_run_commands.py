"""niwt explain / names / report on a finished run, load_run, and their input errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from niwt.cli import main
from niwt.rundir import outputs_of, read_manifest
from niwt.runs import RunFormatError, load_run


@pytest.fixture(scope="module")
def run_dir(small_run_dir):
    return small_run_dir


def test_load_run_gives_back_the_extended_model_and_its_classes(run_dir):
    run = load_run(run_dir)
    assert run.model.classifier.n_seen == 8 and run.model.classifier.n_unseen == 3
    assert len(run.class_names) == 4 + 8 + 3 and len(run.row_names) == 11
    assert run.knowledge.shape == (15, 20) and len(run.knowledge_names) == 20
    assert run.inverse is not None and run.inverse.predict(np.ones((1, 32))).shape == (1, 20)  # 4 * width channels
    data, _ = run.dataset()  # regenerated from the config and checked against the recorded fingerprint
    assert data.class_names == run.class_names


def test_explain_a_sample_and_names_and_report(run_dir, capsys):
    assert main(["explain", str(run_dir), "--n", "2", "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"predicted .+ because of ", out)) == 2
    record = json.loads((run_dir / "explain" / "explanations.json").read_text())
    assert len(record["images"]) == 2 and len(record["images"][0]["terms"]) == 3
    assert (run_dir / "explain" / record["images"][0]["overlay"]).read_bytes()[:4] == b"\x89PNG"
    assert main(["names", str(run_dir), "--top-k", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 32  # header + one line per channel (4*width)
    assert main(["report", str(run_dir)]) == 0
    html = (run_dir / "report.html").read_text()
    assert "<script" not in html and "http" not in html
    sources = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(sources) >= 3 and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "Grad-CAM energy in mask" in html  # the fidelity table on the shapes world
    # what the later commands wrote is recorded about the run, never part of it: the run can still
    # be replaced with --force, and deleting them damages nothing
    assert {"report.html", "explain/explanations.json"} <= set(outputs_of(run_dir))
    assert {"report.html", "explain/explanations.json"}.isdisjoint(read_manifest(run_dir).files)


def test_explain_image_files_grey_and_rgba_are_converted(run_dir, tmp_path, capsys, caplog):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8), mode="L").save(grey)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((20, 20, 4), np.uint8), mode="RGBA").save(rgba)
    assert main(["explain", str(run_dir), str(grey), str(rgba), "--out", str(tmp_path / "x")]) == 0
    assert "converted to RGB" in caplog.text
    assert len(json.loads((tmp_path / "x" / "explanations.json").read_text())["images"]) == 2


def test_explain_a_named_class(run_dir, tmp_path, capsys):
    run = load_run(run_dir)
    unseen = run.row_names[-1]
    assert main(["explain", str(run_dir), "--n", "1", "--class", unseen, "--out", str(tmp_path / "y")]) == 0
    assert json.loads((tmp_path / "y" / "explanations.json").read_text())["images"][0]["explained"] == unseen


def _err(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_bad_inputs_are_clear_errors(run_dir, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert "not an image niwt can read" in _err(["explain", str(run_dir), str(text), "--out", str(tmp_path / "a")],
                                                capsys)
    assert "image file not found" in _err(["explain", str(run_dir), str(tmp_path / "none.png")], capsys)
    err = _err(["explain", str(run_dir), "--class", "purple-unicorn"], capsys)
    assert "unknown class 'purple-unicorn'" in err and load_run(run_dir).row_names[0] in err
    assert "is not a complete niwt run" in _err(["report", str(tmp_path)], capsys)


def test_other_format_version_and_missing_model_are_refused(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(RunFormatError, match="format 99"):
        load_run(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "model" / "niwt.safetensors").unlink()
    with pytest.raises(RunFormatError, match="damaged: model/niwt.safetensors is missing"):
        load_run(copy)
    # a run that never had a model (as `sweep-lambda` writes) is told apart from a damaged one
    listed = [f for f in manifest["files"] if f != "model/niwt.safetensors"]
    sums = {k: v for k, v in manifest["checksums"].items() if k != "model/niwt.safetensors"}
    (copy / "manifest.json").write_text(json.dumps({**manifest, "files": listed, "checksums": sums}))
    with pytest.raises(RunFormatError, match="holds no trained NIWT model"):
        load_run(copy)


def test_explain_never_writes_over_files_it_did_not_write(run_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "explanations.json").write_text("my notes")
    err = _err(["explain", str(run_dir), "--n", "1", "--out", str(out)], capsys)
    assert "explanations.json" in err and "never writes over" in err
    assert (out / "explanations.json").read_text() == "my notes"
    # an earlier explanation in the folder is written over
    fresh = tmp_path / "again"
    assert main(["explain", str(run_dir), "--n", "1", "--out", str(fresh)]) == 0
    assert main(["explain", str(run_dir), "--n", "2", "--out", str(fresh)]) == 0
