"""Tests of niwt.evaluate on score matrices small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from niwt.errors import ConfigError, DataError
from niwt.evaluate import (
    GZSLReport,
    choose_calibration,
    choose_common_calibration,
    evaluate_gzsl,
    harmonic_mean,
    mean_report,
    per_class_accuracy,
)

# Seen classes 0, 1, 2; unseen classes 3, 4; column 5 belongs to neither set and holds the largest
# score of every row, so it would win if it were not ignored. Scores are integers so that every gap
# (best seen - best unseen) is exact.
#
#  img label  scores c0..c5           best seen   best unseen  gap   plain GZSL pred   ZSL pred
#   1    0    [9, 1, 0, 5, 2, 90]     c0 (9)      c3 (5)        4    c0  correct       -
#   2    0    [6, 7, 0, 1, 0, 90]     c1 (7)      c3 (1)        6    c1  wrong         -
#   3    1    [0, 8, 1, 6, 0, 90]     c1 (8)      c3 (6)        2    c1  correct       -
#   4    2    [1, 0, 7, 0, 4, 90]     c2 (7)      c4 (4)        3    c2  correct       -
#   5    3    [5, 0, 0, 4, 1, 90]     c0 (5)      c3 (4)        1    c0  wrong         c3 correct
#   6    3    [0, 2, 0, 3, 0, 90]     c1 (2)      c3 (3)       -1    c3  correct       c3 correct
#   7    4    [3, 0, 0, 0, 6, 90]     c0 (3)      c4 (6)       -3    c4  correct       c4 correct
#   8    4    [0, 0, 6, 5, 2, 90]     c2 (6)      c3 (5)        1    c2  wrong         c3 wrong
#
# Plain stacking (calibration 0):
#   seen:   class 0 -> 1/2, class 1 -> 1/1, class 2 -> 1/1            s = (1/2 + 1 + 1) / 3 = 5/6
#           (per-sample accuracy would be 3/4)
#   unseen: class 3 -> 1/2 (img 6), class 4 -> 1/2 (img 7)            u = 1/2
#   H = 2 (5/6)(1/2) / (5/6 + 1/2) = 5/8
#   ZSL:    class 3 -> 2/2, class 4 -> 1/2                            zsl = 3/4
SCORES = np.array(
    [
        [9, 1, 0, 5, 2, 90],
        [6, 7, 0, 1, 0, 90],
        [0, 8, 1, 6, 0, 90],
        [1, 0, 7, 0, 4, 90],
        [5, 0, 0, 4, 1, 90],
        [0, 2, 0, 3, 0, 90],
        [3, 0, 0, 0, 6, 90],
        [0, 0, 6, 5, 2, 90],
    ],
    dtype=np.float64,
)
LABELS = np.array([0, 0, 1, 2, 3, 3, 4, 4])
SEEN = [0, 1, 2]
UNSEEN = [3, 4]


def test_harmonic_mean() -> None:
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(1.0, 0.25) == pytest.approx(0.4)
    assert harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(DataError, match="`s`"):
        harmonic_mean(-0.1, 0.5)


def test_per_class_accuracy_differs_from_per_sample() -> None:
    # class 0: 4 images, all correct -> 1; class 1: 1 image, wrong -> 0.
    # per-class = (1 + 0) / 2 = 0.5, per-sample would be 4/5 = 0.8
    labels = np.array([0, 0, 0, 0, 1])
    pred = np.array([0, 0, 0, 0, 0])
    assert per_class_accuracy(pred, labels) == pytest.approx(0.5)
    # class 0: 2/4 correct, class 1: 1/1 -> (0.5 + 1) / 2 = 0.75 (per-sample 3/5)
    assert per_class_accuracy(np.array([0, 1, 0, 1, 1]), labels) == pytest.approx(0.75)


def test_per_class_accuracy_errors() -> None:
    with pytest.raises(DataError, match="empty"):
        per_class_accuracy(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    with pytest.raises(DataError, match=r"pred \(3,\).*labels \(2,\)"):
        per_class_accuracy(np.array([0, 1, 1]), np.array([0, 1]))


def test_evaluate_gzsl_plain_stacking() -> None:
    report = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN)
    assert isinstance(report, GZSLReport)
    assert report.seen_acc == pytest.approx(5 / 6)
    assert report.unseen_acc == pytest.approx(1 / 2)
    assert report.H == pytest.approx(5 / 8)
    assert report.zsl_acc == pytest.approx(3 / 4)
    assert report.calibration == 0.0
    d = report.to_dict()
    assert set(d) == {"seen_acc", "unseen_acc", "H", "zsl_acc", "ausuc", "calibration", "curve_best_H"}
    assert all(type(v) is float for v in d.values())


def test_evaluate_gzsl_calibration_moves_predictions() -> None:
    # calibration 1.5: images whose gap is below 1.5 switch to their unseen prediction, i.e. also
    # images 5 (-> c3, correct) and 8 (-> c3, wrong). Seen images all have gaps >= 2 and keep theirs.
    #   s = 5/6, u = (2/2 + 1/2) / 2 = 3/4, H = 2 (5/6)(3/4) / (5/6 + 3/4) = 15/19
    report = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=1.5)
    assert report.seen_acc == pytest.approx(5 / 6)
    assert report.unseen_acc == pytest.approx(3 / 4)
    assert report.H == pytest.approx(15 / 19)
    assert report.zsl_acc == pytest.approx(3 / 4)  # ZSL ignores the calibration
    # calibration 2.5 also moves image 3 (gap 2) to c3: class 1 drops to 0 -> s = (1/2 + 0 + 1) / 3
    report = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=2.5)
    assert report.seen_acc == pytest.approx(1 / 2)
    # calibration -2: image 6 (gap -1) goes back to seen c1 (wrong), image 7 (gap -3) stays unseen
    #   u = (0/2 + 1/2) / 2 = 1/4
    report = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=-2.0)
    assert report.unseen_acc == pytest.approx(1 / 4)
    assert report.seen_acc == pytest.approx(5 / 6)
    # a huge calibration predicts unseen for everyone: u equals the ZSL accuracy, s = 0
    report = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=1e6)
    assert report.seen_acc == 0.0
    assert report.unseen_acc == pytest.approx(report.zsl_acc)
    assert report.H == 0.0


def test_ausuc_hand_built_case() -> None:
    # Table above: image weights in the per-class means are 1/6 (class 0 images), 1/3 (classes 1, 2)
    # and 1/4 (each unseen image). Raising the calibration moves images to their unseen prediction
    # in order of their gap; starting from (u, s) = (0, 5/6):
    #   img 7 (gap -3, correct unseen)  -> (1/4, 5/6)
    #   img 6 (gap -1, correct unseen)  -> (1/2, 5/6)
    #   imgs 5, 8 (gap 1; 5 correct)    -> (3/4, 5/6)
    #   img 3 (gap 2, seen was correct) -> (3/4, 1/2); img 4 -> (3/4, 1/6); img 1 -> (3/4, 0); img 2: same
    # Area = 3/4 * 5/6 = 5/8.
    assert evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN).ausuc == pytest.approx(5 / 8)


def test_curve_best_h_is_the_best_point_of_the_hand_built_curve() -> None:
    # Points of the curve above: H(5/6, 1/4) = 5/13, H(5/6, 1/2) = 5/8, H(5/6, 3/4) = 15/19 (the best),
    # H(1/2, 3/4) = 3/5, H(1/6, 3/4) = 3/11, then 0. It does not depend on the constant evaluated.
    for calibration in (0.0, 1.5, -2.0, 1e6):
        report = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=calibration)
        assert report.curve_best_H == pytest.approx(15 / 19)
    assert evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=1.5).H == pytest.approx(15 / 19)


def test_ausuc_with_a_slanted_segment() -> None:
    # Seen {0, 1}, unseen {2}. Images (label: scores, gap):
    #   a (0: [3, 1, 0], gap 3), b (1: [0, 2, 1], gap 1), c (2: [1, 0, 0], gap 1), d (2: [0, 0, 2], gap -2)
    # Weights: a, b -> 1/2 (one image per seen class), c, d -> 1/2 (two images of class 2).
    # Curve: (0, 1) -> d -> (1/2, 1) -> {b, c} together -> (1, 1/2) -> a -> (1, 0).
    # Area = 1/2 * 1 + 1/2 * (1 + 1/2) / 2 = 1/2 + 3/8 = 7/8.
    scores = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 0], [0, 0, 2]], dtype=float)
    labels = np.array([0, 1, 2, 2])
    report = evaluate_gzsl(scores, labels, [0, 1], [2])
    assert report.ausuc == pytest.approx(7 / 8)
    # plain stacking: b -> c1 (correct), c -> c0 (wrong): s = 1, u = 1/2
    assert (report.seen_acc, report.unseen_acc) == pytest.approx((1.0, 0.5))


def test_ausuc_of_a_perfect_classifier_is_one() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=200)
    scores = np.eye(10)[labels] + 0.1 * rng.random((200, 10))
    report = evaluate_gzsl(scores, labels, np.arange(6), np.arange(6, 10))
    assert report.ausuc == pytest.approx(1.0)
    assert (report.seen_acc, report.unseen_acc, report.H, report.zsl_acc) == pytest.approx((1, 1, 1, 1))


def test_choose_calibration_by_hand() -> None:
    # Gaps range from -3 to 6; n_grid=10 gives the integers -3..6 (0 is among them). A seen-column tie
    # (gap == constant) goes to the seen class here, since seen columns have the lower indices. H by
    # constant: -3 -> 0 (all seen), -2 and -1 -> 5/13, 0 and 1 -> 5/8, 2 -> 15/19, 3 -> 3/5, 4 -> 3/11,
    # 5 and 6 -> 0 (only image 2, a wrong seen prediction, stays seen). Best: 2.
    assert choose_calibration(SCORES, LABELS, SEEN, UNSEEN, n_grid=10) == pytest.approx(2.0)
    # With a step of 0.5 both 1.5 and 2.0 reach 15/19: the smaller absolute value wins.
    assert choose_calibration(SCORES, LABELS, SEEN, UNSEEN, n_grid=19) == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="n_grid"):
        choose_calibration(SCORES, LABELS, SEEN, UNSEEN, n_grid=1)


def test_choose_calibration_prefers_zero_on_ties() -> None:
    # A perfect classifier reaches H = 1 at 0 as well as at other constants.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, size=60)
    scores = np.eye(6)[labels] + 0.1 * rng.random((60, 6))
    assert choose_calibration(scores, labels, [0, 1, 2], [3, 4, 5]) == 0.0


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(DataError, match=r"\(8, 6\).*\(7,\)"):
        evaluate_gzsl(SCORES, LABELS[:7], SEEN, UNSEEN)
    with pytest.raises(DataError, match="2-d"):
        evaluate_gzsl(SCORES[0], LABELS, SEEN, UNSEEN)
    with pytest.raises(DataError, match="unseen_classes"):
        evaluate_gzsl(SCORES, LABELS, SEEN, [3, 6])


def test_labels_outside_seen_and_unseen() -> None:
    labels = LABELS.copy()
    labels[0] = 5  # column 5 is neither seen nor unseen
    with pytest.raises(DataError, match=r"seen or unseen.*\[5\]"):
        evaluate_gzsl(SCORES, labels, SEEN, UNSEEN)
    with pytest.raises(DataError, match="overlap"):
        evaluate_gzsl(SCORES, LABELS, SEEN, [2, 3, 4])
    with pytest.raises(DataError, match="both seen and unseen"):
        evaluate_gzsl(SCORES[:4], LABELS[:4], SEEN, UNSEEN)


def test_bad_scores_and_calibration() -> None:
    scores = SCORES.copy()
    scores[0, 5] = np.nan  # an ignored column may hold anything
    evaluate_gzsl(scores, LABELS, SEEN, UNSEEN)
    scores[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        evaluate_gzsl(scores, LABELS, SEEN, UNSEEN)
    with pytest.raises(ConfigError, match="calibration"):
        evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=float("nan"))


def test_ausuc_matches_a_sweep_of_evaluate_gzsl() -> None:
    # Independent check on random scores: one calibration strictly between every pair of consecutive
    # gaps (plus both extremes) visits every state of the curve; integrate it with the trapezoid rule.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, size=120)
    scores = rng.normal(size=(120, 8)) + 1.5 * np.eye(8)[labels]
    seen, unseen = [0, 2, 3, 5], [1, 4, 6]
    gaps = np.sort(np.unique(scores[:, seen].max(1) - scores[:, unseen].max(1)))
    constants = np.concatenate([[gaps[0] - 1], (gaps[1:] + gaps[:-1]) / 2, [gaps[-1] + 1]])
    points = [evaluate_gzsl(scores, labels, seen, unseen, calibration=c) for c in constants]
    u = np.array([p.unseen_acc for p in points])
    s = np.array([p.seen_acc for p in points])
    expected = float(np.sum(np.diff(u) * (s[1:] + s[:-1]) / 2))
    assert points[0].ausuc == pytest.approx(expected, abs=1e-12)
    assert 0.0 < expected < 1.0
    assert points[0].curve_best_H == pytest.approx(max(p.H for p in points), abs=1e-12)


def test_a_common_calibration_maximises_the_mean_h_of_several_problems() -> None:
    rng = np.random.default_rng(4)
    problems = []
    for shift in (0.0, 2.0):  # the second problem's seen scores run higher: its own best constant is larger
        labels = rng.integers(0, 5, size=60)
        scores = rng.normal(size=(60, 5)) + 2.0 * np.eye(5)[labels]
        scores[:, :3] += shift
        problems.append((scores, labels, [0, 1, 2], [3, 4]))
    assert choose_common_calibration(problems[:1]) == choose_calibration(*problems[0])
    common = choose_common_calibration(problems)

    def mean_h(c: float) -> float:
        return float(np.mean([evaluate_gzsl(*p, calibration=c).H for p in problems]))

    own = [choose_calibration(*p) for p in problems]
    assert mean_h(common) >= max(mean_h(c) for c in own) - 1e-12
    assert mean_h(common) >= max(mean_h(c) for c in np.linspace(-6, 8, 57)) - 1e-12
    with pytest.raises(DataError, match="at least one validation problem"):
        choose_common_calibration([])


def test_a_mean_report_averages_every_field() -> None:
    a = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN)
    b = evaluate_gzsl(SCORES, LABELS, SEEN, UNSEEN, calibration=1.5)
    m = mean_report([a, b])
    assert m.H == pytest.approx((5 / 8 + 15 / 19) / 2) and m.calibration == pytest.approx(0.75)
    assert mean_report([a]) is a
