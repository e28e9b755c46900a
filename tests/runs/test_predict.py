"""niwt predict: a finished run ranks every class it knows for images no test made."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from niwt.cli import main
from niwt.errors import DataError
from niwt.runs import load_run


@pytest.fixture(scope="module")
def run_dir(small_run_dir):
    return small_run_dir


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (37, 50, 3), dtype=np.uint8)
    paths = {"rgb_other_size.png": Image.fromarray(pixels), "grey.png": Image.fromarray(pixels[..., 0], "L"),
             "rgba.png": Image.fromarray(np.dstack([pixels, pixels[..., :1]]), "RGBA"),
             "photo.jpg": Image.fromarray(rng.integers(0, 255, (80, 64, 3), dtype=np.uint8))}
    for name, image in paths.items():
        image.save(folder / name)
    return [folder / name for name in paths]


def test_every_image_gets_ranked_probabilities_over_every_class_that_sum_to_1(run_dir, images):
    run = load_run(run_dir)
    n = len(run.row_names)
    predictions = run.predict(images, top_k=n)
    assert [p.source for p in predictions] == [str(p) for p in images]
    for p in predictions:
        assert sorted(p.classes) == sorted(run.row_names)  # every class, unseen ones included
        assert list(p.probabilities) == sorted(p.probabilities, reverse=True)
        assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-9)
    top = run.predict(images, top_k=3)
    assert len(top) == len(predictions) == len(images) > 0
    assert all(len(p.classes) == 3 and p.classes == q.classes[:3] for p, q in zip(top, predictions))


def test_the_cli_prints_json_and_lines_and_explains_the_top_class(run_dir, images, capsys):
    assert main(["predict", str(run_dir), *map(str, images), "--top-k", "2", "--json", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(images) and all(len(r["top"]) == 2 for r in rows)
    assert main(["predict", str(run_dir), str(images[0]), "--explain", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(str(images[0])) and "because of" in out[1] and (run_dir / "explain").is_dir()


def test_bad_images_and_top_k_are_named(run_dir, tmp_path):
    run = load_run(run_dir)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="notes.txt is not an image"):
        run.predict([tmp_path / "notes.txt"])
    with pytest.raises(DataError, match="image file not found"):
        run.predict([tmp_path / "missing.png"])
    with pytest.raises(DataError, match="`top_k` must be an integer >= 1"):
        run.predict([tmp_path / "missing.png"], top_k=0)


def test_explain_calls_an_image_what_predict_calls_it_when_the_run_calibrates(run_dir, images, monkeypatch):
    from niwt.report.explained import explain_tensors
    from niwt.runs import LoadedRun

    run = load_run(run_dir)
    batch = run.load_images(images)
    raw = run.model.eval()(batch).argmax(1)
    monkeypatch.setattr(LoadedRun, "calibration", property(lambda self: 1e6))  # every seen score far down
    n_seen = len(run.fit_classes)
    top = [run.row_names.index(p.classes[0]) for p in run.predict(batch, top_k=1)]
    assert all(r >= n_seen for r in top)  # the calibration moved the calls to unseen classes
    assert bool((raw < n_seen).any())  # which the raw logits did not all make
    assert [e.predicted for e in explain_tensors(run, batch)] == top


def test_a_photo_stored_sideways_is_predicted_upright_as_the_page_shows_it(run_dir, tmp_path):
    from niwt.serve.images import decode_image

    run = load_run(run_dir)
    pixels = np.random.default_rng(1).integers(0, 255, (30, 46, 3), dtype=np.uint8)
    upright = tmp_path / "upright.jpg"
    Image.fromarray(pixels).save(upright, quality=95)
    sideways = Image.fromarray(np.rot90(pixels).copy())  # stored turned, its EXIF says how to turn it back
    exif = sideways.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    sideways.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    a, b = run.load_images([upright, tmp_path / "sideways.jpg"])
    assert a.shape == b.shape
    assert float((a - b).abs().mean()) < 0.05  # the same picture (up to JPEG)
    served = decode_image((tmp_path / "sideways.jpg").read_bytes(), "sideways.jpg")
    assert served.image.size == (46, 30)
