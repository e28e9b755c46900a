"""The report's GZSL plots: drawn from the test scores each method's stage keeps, which reproduce
every reported figure; the mean curve of several seeds; runs written before the scores were kept."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from niwt.config import RunConfig
from niwt.evaluate import evaluate_gzsl, seen_unseen_curve
from niwt.pipeline.experiments import compare
from niwt.pipeline.presets import quick_config
from niwt.report.plots import mean_curve
from niwt.report.run_report import gzsl_plots, write_report
from niwt.rundir import load_test_scores, outputs_of, read_manifest
from niwt.rundir.layout import TEST_SCORES, stage_dir
from niwt.runs import load_run


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "run"
    config = replace(quick_config(RunConfig()), seed=4)
    compare(config, out, seeds=2, methods=("niwt", "eszsl"))
    return out


def test_kept_scores_reproduce_every_reported_figure(compare_dir):
    run = load_run(compare_dir)
    data, _ = run.dataset()
    labels = data.labels[np.concatenate([data.test_seen_idx, data.test_unseen_idx])]
    runs = run.metrics.result.runs
    assert [seed_run.seed for seed_run in runs] == [4, 5]  # compare(seeds=2) from the config's seed 4
    for seed_run in runs:
        assert [result.method for result in seed_run.results] == ["niwt", "eszsl"]
        for result in seed_run.results:
            scores = load_test_scores(stage_dir(compare_dir, seed_run.seed, result.method))
            again = evaluate_gzsl(scores, labels, run.fit_classes, run.new_classes,
                                  calibration=result.report.calibration)
            assert again.H == pytest.approx(result.report.H, abs=1e-6)
            assert again.ausuc == pytest.approx(result.report.ausuc, abs=1e-6)
            cal = evaluate_gzsl(scores, labels, run.fit_classes, run.new_classes,
                                calibration=result.calibrated.calibration)
            assert cal.H == pytest.approx(result.calibrated.H, abs=1e-6)
            u, s = seen_unseen_curve(scores, labels, run.fit_classes, run.new_classes)
            assert float(np.sum(np.diff(u) * (s[1:] + s[:-1]) / 2)) == pytest.approx(result.report.ausuc, abs=1e-6)
            # the reported operating point is a state of the curve
            assert np.any(np.isclose(u, result.report.unseen_acc) & np.isclose(s, result.report.seen_acc))


def test_the_report_draws_the_curves_accuracies_and_confusions(compare_dir, tmp_path):
    run_dir = shutil.copytree(compare_dir, tmp_path / "run")
    path = write_report(load_run(run_dir))
    names = ("gzsl_curves.png", "per_class_accuracy.png", "unseen_confusions.png")
    for name in names:
        assert (run_dir / "plots" / name).stat().st_size > 5000
        assert f"plots/{name}" in outputs_of(run_dir)  # recorded about the run, never part of it
        assert f"plots/{name}" not in read_manifest(run_dir).files
    html = path.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 3 and "no plots" not in html
    assert "seen-unseen curve" in html


def test_a_run_without_kept_scores_is_reported_without_its_plots(compare_dir, tmp_path, caplog):
    run_dir = shutil.copytree(compare_dir, tmp_path / "old")
    for stage in (run_dir / "stages").glob("*/"):
        (stage / TEST_SCORES).unlink(missing_ok=True)
    manifest = json.loads((run_dir / "manifest.json").read_text())  # as a run written before them: no checksums
    files = [f for f in manifest["files"] if not f.endswith(TEST_SCORES)]
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "files": files, "checksums": {}}))
    run = load_run(run_dir)
    data, _ = run.dataset()
    with caplog.at_level("WARNING"):
        assert gzsl_plots(run, data) == []
    assert "no test scores kept for niwt, eszsl" in caplog.text
    write_report(run)  # the rest of the report is still written


def test_the_mean_curve_averages_the_best_seen_accuracy_at_each_unseen_accuracy():
    a = (np.array([0.0, 0.5, 0.5, 1.0]), np.array([1.0, 1.0, 0.5, 0.0]))  # flat, a drop at u = .5, a slope to (1, 0)
    b = (np.array([0.0, 0.5]), np.array([0.5, 0.0]))  # a slope that ends at u = .5
    grid, mean = mean_curve([a, b], n=5)  # u = 0, .25, .5, .75, 1
    np.testing.assert_allclose(grid, [0, 0.25, 0.5, 0.75, 1.0])
    # a (points joined by lines, the highest value where it drops): 1, 1, 1, 0.25, 0; b: 0.5, 0.25, 0, then 0
    np.testing.assert_allclose(mean, [(1 + 0.5) / 2, (1 + 0.25) / 2, (1 + 0) / 2, (0.25 + 0) / 2, 0])
