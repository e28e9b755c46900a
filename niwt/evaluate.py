"""Generalized zero-shot learning metrics computed from class scores and labels.

Protocol (Xian et al., "Zero-Shot Learning - the Good, the Bad and the Ugly"):

* accuracies are **per-class** mean top-1 accuracies, so large classes do not dominate;
* in GZSL the label space is every seen and every unseen class; ``seen_acc`` (s) is measured on the
  images of seen classes and ``unseen_acc`` (u) on the images of unseen classes, each averaged over
  its own classes; ``H = 2 s u / (s + u)``;
* conventional ZSL accuracy predicts among the unseen classes only, on the unseen images.

Calibrated stacking (Chao et al., ECCV 2016) subtracts a constant ``gamma`` from the score of every
seen class before the argmax. Sweeping ``gamma`` traces the seen/unseen accuracy curve whose area is
AUSUC.

Prediction rule shared by every function here: per image, let ``m_s`` be its best seen score (at the
seen column ``p_s``, the lowest index among ties) and ``m_u`` its best unseen score (at ``p_u``).
The image is assigned to ``p_s`` when ``m_s - gamma > m_u``, to ``p_u`` when ``m_s - gamma < m_u``,
and on an exact tie to whichever of ``p_s``, ``p_u`` has the lower global index -- i.e. the argmax over
the seen and unseen columns of ``score - gamma * [column is seen]`` with numpy's first-index tie rule.

Only numpy is needed; scores may come from any model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from niwt.checks import as_labels, as_matrix
from niwt.errors import ConfigError, DataError

__all__ = [
    "GZSLReport",
    "harmonic_mean",
    "per_class_accuracy",
    "evaluate_gzsl",
    "choose_calibration",
    "choose_common_calibration",
    "seen_unseen_curve",
    "gzsl_predictions",
    "mean_report",
]

logger = logging.getLogger(__name__)


def harmonic_mean(s: float, u: float) -> float:
    """Harmonic mean ``2 s u / (s + u)`` of the seen and unseen accuracies.

    Args:
        s: seen accuracy, in [0, 1].
        u: unseen accuracy, in [0, 1].

    Returns:
        The harmonic mean, or 0.0 when both accuracies are 0.

    Raises:
        DataError: if either value is negative or not finite.
    """
    s, u = float(s), float(u)
    for name, value in (("s", s), ("u", u)):
        if not np.isfinite(value) or value < 0:
            raise DataError(f"`{name}` must be a finite non-negative accuracy, got {value}")
    if s + u == 0.0:
        return 0.0
    return 2.0 * s * u / (s + u)


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Per-class mean top-1 accuracy.

    For every class present in ``labels``, the fraction of its images whose prediction equals the
    class; the result is the mean of these fractions over the present classes.

    Args:
        pred: ``[N]`` predicted class indices.
        labels: ``[N]`` true class indices.

    Returns:
        The per-class accuracy in [0, 1].

    Raises:
        DataError: if the inputs are empty, not 1-d integer arrays, or of different lengths.
    """
    pred = as_labels("pred", pred)
    labels = as_labels("labels", labels)
    if pred.shape != labels.shape:
        raise DataError(
            f"`pred` and `labels` must have the same shape, got pred {pred.shape} and labels {labels.shape}"
        )
    if labels.size == 0:
        raise DataError("`labels` is empty: per-class accuracy needs at least one image")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    hits = np.bincount(inverse, weights=(pred == labels).astype(np.float64), minlength=classes.size)
    return float(np.mean(hits / counts))


@dataclass(frozen=True)
class GZSLReport:
    """The GZSL metrics of one set of scores.

    Attributes:
        seen_acc: per-class accuracy ``s`` on seen-class images, label space seen + unseen.
        unseen_acc: per-class accuracy ``u`` on unseen-class images, label space seen + unseen.
        H: harmonic mean of ``seen_acc`` and ``unseen_acc``.
        zsl_acc: per-class accuracy on unseen-class images, label space unseen classes only.
        ausuc: area under the seen-unseen accuracy curve traced by the calibration constant.
        calibration: the calibration constant used for ``seen_acc``, ``unseen_acc`` and ``H``.
        curve_best_H: the largest H anywhere on that curve, at the constant that is best for these
            very labels: an analysis of how much a better operating point could give, which looks
            at the test labels and is never used to choose anything (NaN in records written before it).
    """

    seen_acc: float
    unseen_acc: float
    H: float
    zsl_acc: float
    ausuc: float
    calibration: float
    curve_best_H: float = float("nan")

    def to_dict(self) -> dict[str, float]:
        """Return the metrics as a dict of plain Python floats (JSON-ready)."""
        return {key: float(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class _Prepared:
    """Per-image quantities that every metric is computed from (all ``[N]``)."""

    labels: np.ndarray  # global class index
    is_seen: np.ndarray  # bool: label is a seen class
    best_seen: np.ndarray  # m_s: best seen score
    best_unseen: np.ndarray  # m_u: best unseen score
    pred_seen: np.ndarray  # p_s: global index of the best seen column
    pred_unseen: np.ndarray  # p_u: global index of the best unseen column


def _class_set(name: str, value: object, n_columns: int) -> np.ndarray:
    arr = as_labels(name, value)
    if arr.size == 0:
        raise DataError(f"`{name}` must hold at least one class, got none")
    if arr.min() < 0 or arr.max() >= n_columns:
        raise DataError(
            f"`{name}` must index the {n_columns} score columns, i.e. lie in [0, {n_columns}), "
            f"got min {arr.min()}, max {arr.max()}"
        )
    if np.unique(arr).size != arr.size:
        raise DataError(f"`{name}` holds duplicate classes")
    return np.sort(arr)


def _prepare(
    scores: np.ndarray,
    labels: np.ndarray,
    seen_classes: Sequence[int] | np.ndarray,
    unseen_classes: Sequence[int] | np.ndarray,
) -> _Prepared:
    scores = as_matrix("scores", scores, finite=False)  # only the seen and unseen columns must be finite
    labels = as_labels("labels", labels)
    if labels.shape[0] != scores.shape[0]:
        raise DataError(
            f"`scores` and `labels` must have one row per image: scores has shape {scores.shape}, "
            f"labels has shape {labels.shape}"
        )
    if labels.size == 0:
        raise DataError("`labels` is empty: GZSL evaluation needs at least one image")
    n_columns = scores.shape[1]
    seen = _class_set("seen_classes", seen_classes, n_columns)
    unseen = _class_set("unseen_classes", unseen_classes, n_columns)
    overlap = np.intersect1d(seen, unseen)
    if overlap.size:
        raise DataError(f"`seen_classes` and `unseen_classes` overlap: {overlap[:10].tolist()}")
    is_seen = np.isin(labels, seen)
    outside = ~is_seen & ~np.isin(labels, unseen)
    if outside.any():
        bad = np.unique(labels[outside])
        raise DataError(
            f"`labels` must be seen or unseen classes; {int(outside.sum())} image(s) have other labels, "
            f"e.g. {bad[:10].tolist()}"
        )
    if not is_seen.any() or is_seen.all():
        raise DataError(
            "`labels` must contain images of both seen and unseen classes for GZSL evaluation; got "
            f"{int(is_seen.sum())} seen-class and {int((~is_seen).sum())} unseen-class images"
        )
    seen_scores = scores[:, seen]
    unseen_scores = scores[:, unseen]
    if not (np.isfinite(seen_scores).all() and np.isfinite(unseen_scores).all()):
        raise DataError("`scores` holds NaN or infinite values in the columns of seen or unseen classes")
    arg_s = seen_scores.argmax(axis=1)
    arg_u = unseen_scores.argmax(axis=1)
    rows = np.arange(scores.shape[0])
    return _Prepared(
        labels=labels,
        is_seen=is_seen,
        best_seen=seen_scores[rows, arg_s],
        best_unseen=unseen_scores[rows, arg_u],
        pred_seen=seen[arg_s],
        pred_unseen=unseen[arg_u],
    )


def _predict(prep: _Prepared, calibration: float) -> np.ndarray:
    """``[N]`` calibrated-stacking predictions (global class indices); see the module docstring."""
    shifted = prep.best_seen - calibration
    choose_seen = (shifted > prep.best_unseen) | (
        (shifted == prep.best_unseen) & (prep.pred_seen < prep.pred_unseen)
    )
    return np.where(choose_seen, prep.pred_seen, prep.pred_unseen)


def _seen_unseen_acc(prep: _Prepared, pred: np.ndarray) -> tuple[float, float]:
    s = per_class_accuracy(pred[prep.is_seen], prep.labels[prep.is_seen])
    u = per_class_accuracy(pred[~prep.is_seen], prep.labels[~prep.is_seen])
    return s, u


def _group_weights(labels: np.ndarray) -> np.ndarray:
    """``[n]`` weight ``1 / (n_class * n_classes_present)`` of each image in a per-class mean."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / (counts[inverse] * classes.size)


def _curve(prep: _Prepared) -> tuple[np.ndarray, np.ndarray]:
    """The (seen_acc, unseen_acc) points of calibrated stacking as its constant runs over every value.

    As the calibration constant grows from -inf to +inf, an image moves from its seen prediction to its
    unseen prediction once the constant passes its gap ``m_s - m_u``; images with equal gaps move
    together. Starting from (u=0, s=s_max), each move lowers ``s`` when the seen prediction was correct
    and raises ``u`` when the unseen prediction is correct; the curve ends at (u=zsl_acc, s=0).
    """
    n = prep.labels.size
    weights = np.zeros(n)
    weights[prep.is_seen] = _group_weights(prep.labels[prep.is_seen])
    weights[~prep.is_seen] = _group_weights(prep.labels[~prep.is_seen])
    seen_hit = prep.is_seen & (prep.pred_seen == prep.labels)
    unseen_hit = ~prep.is_seen & (prep.pred_unseen == prep.labels)
    gap = prep.best_seen - prep.best_unseen
    order = np.argsort(gap, kind="stable")
    gap_sorted = gap[order]
    s_start = float(np.sum(weights[seen_hit]))
    s_curve = s_start - np.cumsum(np.where(seen_hit, weights, 0.0)[order])
    u_curve = np.cumsum(np.where(unseen_hit, weights, 0.0)[order])
    # keep only the state after the last image of each group of equal gaps
    group_end = np.append(gap_sorted[1:] != gap_sorted[:-1], True)
    s_points = np.concatenate([[s_start], s_curve[group_end]])
    u_points = np.concatenate([[0.0], u_curve[group_end]])
    return np.clip(s_points, 0.0, 1.0), np.clip(u_points, 0.0, 1.0)


def gzsl_predictions(
    scores: np.ndarray,
    labels: np.ndarray,
    seen_classes: Sequence[int] | np.ndarray,
    unseen_classes: Sequence[int] | np.ndarray,
    *,
    calibration: float = 0.0,
) -> np.ndarray:
    """``[N]`` global class predicted for each image by calibrated stacking with ``calibration``: the
    predictions behind :func:`evaluate_gzsl`'s ``seen_acc`` and ``unseen_acc`` (same arguments)."""
    return _predict(_prepare(scores, labels, seen_classes, unseen_classes), _check_calibration(calibration))


def seen_unseen_curve(
    scores: np.ndarray,
    labels: np.ndarray,
    seen_classes: Sequence[int] | np.ndarray,
    unseen_classes: Sequence[int] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The seen-unseen curve of calibrated stacking behind AUSUC: ``(unseen_acc, seen_acc)`` arrays
    of every state it passes as its constant runs from -inf to +inf, starting at ``(0, s_max)`` and
    ending at ``(zsl_acc, 0)`` (arguments as for :func:`evaluate_gzsl`)."""
    s_points, u_points = _curve(_prepare(scores, labels, seen_classes, unseen_classes))
    return u_points, s_points


def _ausuc(s_points: np.ndarray, u_points: np.ndarray) -> float:
    """Exact area under the (unseen_acc, seen_acc) curve (:func:`_curve`), by the trapezoid rule over ``u``."""
    area = float(np.sum(np.diff(u_points) * (s_points[1:] + s_points[:-1]) / 2.0))
    return min(max(area, 0.0), 1.0)


def _curve_best_h(s_points: np.ndarray, u_points: np.ndarray) -> float:
    """The largest harmonic mean of any point of the curve (between its points nothing changes)."""
    total = s_points + u_points
    h = np.where(total > 0, 2 * s_points * u_points / np.where(total > 0, total, 1.0), 0.0)
    return float(h.max())


def _check_calibration(calibration: float) -> float:
    try:
        value = float(calibration)
    except (TypeError, ValueError):
        raise ConfigError(f"`calibration` must be a finite float, got {calibration!r}") from None
    if not np.isfinite(value):
        raise ConfigError(f"`calibration` must be a finite float, got {value}")
    return value


def _warn_untested(labels: np.ndarray, seen_classes: object, unseen_classes: object) -> None:
    """Warn when a seen or unseen class has no test image: the per-class means leave it out."""
    groups = (("seen", seen_classes, "seen_acc"), ("unseen", unseen_classes, "unseen_acc and zsl_acc"))
    for name, classes, metric in groups:
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        missing = np.setdiff1d(classes, labels)
        if missing.size:
            warnings.warn(
                f"{missing.size} of {classes.size} {name} class(es) have no test image ({missing[:10].tolist()}): "
                f"{metric} average(s) over the other {classes.size - missing.size} class(es) only",
                UserWarning, stacklevel=3,
            )


def evaluate_gzsl(
    scores: np.ndarray,
    labels: np.ndarray,
    seen_classes: Sequence[int] | np.ndarray,
    unseen_classes: Sequence[int] | np.ndarray,
    *,
    calibration: float = 0.0,
) -> GZSLReport:
    """Compute the GZSL metrics of a score matrix.

    Args:
        scores: ``[N, C]`` compatibility scores (higher = more likely), one column per *global* class
            index; columns of classes that are neither seen nor unseen are ignored (never predicted).
        labels: ``[N]`` global class index of every image; each must be a seen or an unseen class.
        seen_classes: ``[S]`` global indices of the seen classes.
        unseen_classes: ``[U]`` global indices of the unseen classes (disjoint from the seen ones).
        calibration: constant subtracted from every seen column before the GZSL argmax (calibrated
            stacking); 0 means plain stacking.

    Returns:
        A :class:`GZSLReport`; ``ausuc`` and ``curve_best_H`` do not depend on ``calibration``. Accuracies average over
        the classes that have test images; a seen or unseen class without any is left out of its
        mean, with a ``UserWarning`` naming it.

    Raises:
        DataError: on malformed shapes, class sets outside ``[0, C)`` or overlapping, labels outside
            seen ∪ unseen, a split without seen or without unseen images, or non-finite scores.
        ConfigError: if ``calibration`` is not a finite number.
    """
    calibration = _check_calibration(calibration)
    prep = _prepare(scores, labels, seen_classes, unseen_classes)
    _warn_untested(prep.labels, seen_classes, unseen_classes)
    s, u = _seen_unseen_acc(prep, _predict(prep, calibration))
    unseen_mask = ~prep.is_seen
    zsl = per_class_accuracy(prep.pred_unseen[unseen_mask], prep.labels[unseen_mask])
    curve = _curve(prep)
    report = GZSLReport(
        seen_acc=s,
        unseen_acc=u,
        H=harmonic_mean(s, u),
        zsl_acc=zsl,
        ausuc=_ausuc(*curve),
        calibration=calibration,
        curve_best_H=_curve_best_h(*curve),
    )
    logger.debug("GZSL evaluation on %d images: %s", prep.labels.size, report)
    return report


def choose_calibration(
    scores: np.ndarray,
    labels: np.ndarray,
    seen_classes: Sequence[int] | np.ndarray,
    unseen_classes: Sequence[int] | np.ndarray,
    *,
    n_grid: int = 101,
) -> float:
    """Pick the calibrated-stacking constant that maximises H, on validation data.

    The candidates are ``n_grid`` evenly spaced values from the smallest to the largest per-image gap
    ``m_s - m_u`` (best seen score minus best unseen score), plus 0. Below the smallest gap every image
    is assigned a seen class, above the largest every image an unseen class, so the grid spans the whole
    useful range. Among candidates with the same (maximal) H the one with the smallest absolute value is
    returned (the negative one if ``-g`` and ``g`` tie).

    Args:
        scores: ``[N, C]`` scores with global class columns, as for :func:`evaluate_gzsl`.
        labels: ``[N]`` global class indices (seen or unseen).
        seen_classes: ``[S]`` global indices of the classes treated as seen.
        unseen_classes: ``[U]`` global indices of the classes treated as unseen.
        n_grid: number of evenly spaced candidates (at least 2).

    Returns:
        The chosen constant, to pass as ``calibration`` to :func:`evaluate_gzsl`.

    Raises:
        DataError: as :func:`evaluate_gzsl`.
        ConfigError: if ``n_grid`` is not an integer >= 2.
    """
    return choose_common_calibration([(scores, labels, seen_classes, unseen_classes)], n_grid=n_grid)


def choose_common_calibration(
    problems: Sequence[tuple[np.ndarray, np.ndarray, Sequence[int] | np.ndarray, Sequence[int] | np.ndarray]],
    *,
    n_grid: int = 101,
) -> float:
    """The one calibrated-stacking constant that maximises the mean H over several validation problems.

    Each problem is ``(scores, labels, seen_classes, unseen_classes)`` as for :func:`choose_calibration`
    (several validation splits of the seen classes, say). The candidates are each problem's
    :func:`choose_calibration` grid together, and the mean of the problems' H is maximised; ties go to
    the smallest absolute value. With one problem it is :func:`choose_calibration`.

    Raises:
        DataError: no problem, or a malformed one (as :func:`evaluate_gzsl`).
        ConfigError: if ``n_grid`` is not an integer >= 2.
    """
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 2:
        raise ConfigError(f"`n_grid` must be an integer >= 2, got {n_grid!r}")
    if not problems:
        raise DataError("`problems` is empty: choosing a calibration needs at least one validation problem")
    preps = [_prepare(*problem) for problem in problems]
    gaps = [prep.best_seen - prep.best_unseen for prep in preps]
    grid = np.unique(np.concatenate([*(np.linspace(g.min(), g.max(), int(n_grid)) for g in gaps), [0.0]]))
    h_values = np.array([np.mean([harmonic_mean(*_seen_unseen_acc(prep, _predict(prep, g))) for prep in preps])
                         for g in grid])
    best = h_values.max()
    candidates = grid[h_values >= best - 1e-12]
    chosen = float(candidates[np.lexsort((candidates, np.abs(candidates)))[0]])
    logger.debug("chose calibration %.6g (mean H=%.4f over %d problem(s)) among %d candidates", chosen, best,
                 len(preps), grid.size)
    return chosen


def mean_report(reports: Sequence[GZSLReport]) -> GZSLReport:
    """The field-by-field mean of several reports (one per validation split): what a grid point scores."""
    if not reports:
        raise DataError("`reports` is empty: a mean report needs at least one report")
    if len(reports) == 1:
        return reports[0]
    values = [r.to_dict() for r in reports]
    return GZSLReport(**{k: float(np.mean([v[k] for v in values])) for k in values[0]})
