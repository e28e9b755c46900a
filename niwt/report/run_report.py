"""What ``niwt explain``, ``niwt names`` and ``niwt report`` do with a finished run directory."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niwt.data.settings import FINAL, Setting
from niwt.errors import DataError, RunDirectoryError
from niwt.evaluate import gzsl_predictions, seen_unseen_curve
from niwt.explain.fidelity import FidelityReport, fidelity
from niwt.explain.gradcam import grad_cam
from niwt.explain.names import NeuronName, name_neurons
from niwt.explain.text import ClassExplanation, ImageExplanation, explain_classes, explain_images
from niwt.report.explained import display_images as _display
from niwt.report.explained import explain_tensors
from niwt.report.explained import run_vocabulary as _vocabulary
from niwt.report.html import GalleryItem, write_html_report
from niwt.report.overlay import overlay, save_png
from niwt.report.plots import mean_curve, plot_confusion, plot_per_class_accuracy, plot_seen_unseen_curves
from niwt.rundir import check_writable, layout, load_test_scores, record_outputs, run_lock, write_json
from niwt.rundir.about import EXPLANATIONS_FORMAT, written_by_niwt
from niwt.runs import LoadedRun

__all__ = ["ExplainedImage", "explain_run", "neuron_names", "class_explanations", "gzsl_plots", "write_report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainedImage:
    """One image explained: its prediction, the class explained, its words and its overlay file."""

    source: str
    predicted: str
    explained: str
    explanation: ImageExplanation
    overlay: str
    true_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "true_class": self.true_class, "predicted": self.predicted,
                "explained": self.explained, "overlay": self.overlay, "terms": self.explanation.to_dict()["terms"]}


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:limit] or "image"


def overlay_name(source: str, explained: str) -> str:
    """The overlay file of image ``source`` explained for class ``explained``: the file's stem and
    a digest of both, so that two images of one name in different folders never share a file, and
    the same image explained for the same class again replaces its overlay."""
    digest = hashlib.sha256(f"{source}\0{explained}".encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{_slug(Path(source).stem)}-{digest}.png"


def _explanation_records(out: Path) -> list[dict[str, Any]] | None:
    """The entries of the explanation folder ``out``'s record (None: no record, or not niwt's)."""
    path = out / layout.EXPLANATIONS
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        images = record["images"]
        if isinstance(images, list) and all(isinstance(i, dict) and isinstance(i.get("overlay"), str) for i in images):
            return images
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass
    return None


def check_explain_dir(out: Path, run: LoadedRun) -> None:
    """Refuse, before any work, a folder explanations may not be written into: a file, a folder
    inside the run other than its explanation folder, or one holding anything niwt explain did not
    write there (its ``explanations.json`` lists what it wrote). A missing or empty folder, or one
    of earlier explanations, is fine: new overlays join the earlier ones.

    Raises:
        RunDirectoryError: naming the folder and what is wrong, with what to do.
    """
    out = Path(out)
    inside = _relative_to(out, run.path)
    if inside is not None and inside != layout.EXPLAIN:
        raise RunDirectoryError(f"{str(out)!r} is inside run {str(run.path)!r}: explanations go into "
                                f"{str(run.path / layout.EXPLAIN)!r} (the default) or a folder outside the run")
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"{str(out)!r} exists and is not a folder; give --out a folder")
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    records = _explanation_records(out)
    ours = {layout.EXPLANATIONS, *(i["overlay"] for i in records)} if records is not None else set()
    ours |= {n for n in entries if written_by_niwt(out / n)}  # niwt's overlays, even without their record
    foreign = [n for n in entries if n not in ours or not (out / n).is_file()]
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise RunDirectoryError(f"{str(out)!r} holds files niwt explain did not write ({shown}); niwt never "
                                "writes over or deletes them: move them away, or give --out an empty or new folder")


def _relative_to(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` (POSIX), or None when it is not inside it."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return None


def explain_images_of_run(run: LoadedRun, images: torch.Tensor, sources: list[str], out: Path, *,
                          class_name: str | None = None, top_k: int = 5, true_classes: list[str] | None = None,
                          command: str = "explain") -> list[ExplainedImage]:
    """Prediction, Grad-CAM overlay (PNG, with the class it is for and its colour scale) and
    textual explanation of each image, into ``out``, recorded in its ``explanations.json`` beside
    the earlier ones (and, in the run's explanation folder, in the run's record of its outputs).

    Raises:
        DataError: a run without an inverse map.
        RunDirectoryError: ``out`` may not be written (:func:`check_explain_dir`), checked first.
    """
    if run.inverse is None:
        raise DataError(f"{run.path} has no inverse map ({layout.INVERSE_MAP}); rerun it to explain")
    out = Path(out)
    check_explain_dir(out, run)
    targets = None if class_name is None else [run.row_of(class_name)] * images.shape[0]
    explained = explain_tensors(run, images, targets, top_k=top_k)
    records = [ExplainedImage(source, run.row_names[e.predicted], e.class_name, e.words,
                              overlay_name(source, e.class_name), None if true_classes is None else true_classes[i])
               for i, (source, e) in enumerate(zip(sources, explained))]
    inside = _relative_to(out, run.path)
    with run_lock(run.path), run_lock(out):
        check_explain_dir(out, run)  # again: another command may have written there meanwhile
        out.mkdir(parents=True, exist_ok=True)
        for record, e in zip(records, explained):
            save_png(out / record.overlay, e.overlay())
        new = {r.overlay for r in records}
        earlier = [e for e in (_explanation_records(out) or []) if e["overlay"] not in new
                   and (out / e["overlay"]).is_file()]
        write_json(out / layout.EXPLANATIONS, {"format": EXPLANATIONS_FORMAT, "run": str(run.path),
                                               "images": [*earlier, *(r.to_dict() for r in records)]})
        if inside is not None:
            record_outputs(run.path, [f"{inside}/{name}" for name in (layout.EXPLANATIONS, *sorted(new))], command)
    return records


def _scored_unseen(run: LoadedRun, data) -> np.ndarray:
    """The unseen test images of classes the run scores (a class it was made to forget has none)."""
    return data.test_unseen_idx[np.isin(data.labels[data.test_unseen_idx], run.new_classes)]


def _test_sample(run: LoadedRun, n: int, unseen_only: bool = True, seed: int = 0):
    data, images = run.dataset()
    idx = _scored_unseen(run, data) if unseen_only else np.concatenate([data.test_seen_idx, _scored_unseen(run, data)])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(idx, size=min(n, idx.size), replace=False))
    return data, pick, images[pick]


def explain_run(run: LoadedRun, paths: list[Path], out: Path, *, class_name: str | None = None, top_k: int = 5,
                n: int = 8) -> list[ExplainedImage]:
    """``niwt explain``: the given image files, or a sample of ``n`` of the run's unseen test images."""
    if class_name is not None:
        run.row_of(class_name)  # an unknown name fails before any work
    if paths:
        images = run.load_images(paths)
        return explain_images_of_run(run, images, [str(p) for p in paths], out, class_name=class_name, top_k=top_k)
    data, pick, images = _test_sample(run, n)
    truth = [data.class_names[c] for c in data.labels[pick]]
    return explain_images_of_run(run, images, [f"test image {i}" for i in pick], out, class_name=class_name,
                                 top_k=top_k, true_classes=truth)


def neuron_names(run: LoadedRun, top_k: int = 3) -> list[NeuronName]:
    """``niwt names``: each channel's top knowledge dimensions through the inverse map."""
    if run.inverse is None:
        raise DataError(f"{run.path} has no inverse map ({layout.INVERSE_MAP}); rerun it to name neurons")
    return list(name_neurons(run.inverse, _vocabulary(run), k=top_k))


def class_explanations(run: LoadedRun, top_k: int = 5) -> list[ClassExplanation]:
    """What the network was told about each unseen class: its predicted importance, in words."""
    if run.inverse is None:
        return []
    predicted = run.mapper.predict(run.knowledge[run.new_classes])
    rows = list(range(len(run.fit_classes), len(run.classes)))
    return list(explain_classes(predicted, run.inverse, _vocabulary(run), classes=rows,
                                class_names=run.row_names, k=top_k))


def given_knowledge(run: LoadedRun, data=None, limit: int = 160, *, every_class: bool = False) -> dict[str, str]:
    """What each unseen or taught class of ``run`` (``every_class``: its seen classes too) was
    given, in one line: a taught class's description or attribute values as it was taught; a
    dataset class's descriptions (a text run) or its largest attribute values (an attribute run),
    from the run's dataset ``data``."""
    given: dict[str, str] = {}
    for event in run.events:
        for lesson in event.lessons:
            given[lesson.name] = lesson.told
    names = list(data.knowledge_names) if data is not None else []
    for c in (run.classes if every_class else run.new_classes).tolist():
        name = run.class_names[c]
        if name in given or data is None or c >= len(data.class_names) or data.class_names[c] != name:
            continue
        if run.config.knowledge.source == "text" and data.descriptions and data.descriptions[c]:
            text = " / ".join(data.descriptions[c])
        else:
            row = np.asarray(data.knowledge[c], dtype=np.float64)
            top = [i for i in np.argsort(-row, kind="stable") if row[i] > 0][:6]
            text = ", ".join(f"{names[i]}={row[i]:g}" for i in top) or "every attribute 0"
        given[name] = text
    return {k: (v if len(v) <= limit else v[: limit - 1] + "…") for k, v in given.items()}


def _fidelity(run: LoadedRun, data, images, names: list[NeuronName], n: int = 240) -> FidelityReport | None:
    """The fidelity table on ``n`` test images of the run's (opened) dataset; None without masks."""
    if data.masks is None or data.image_attributes is None or run.inverse is None:
        return None
    rng = np.random.default_rng(1)
    seen = rng.choice(data.test_seen_idx, size=min(n // 2, data.test_seen_idx.size), replace=False)
    scored = _scored_unseen(run, data)
    unseen = rng.choice(scored, size=min(n // 2, scored.size), replace=False)
    idx = np.sort(np.concatenate([seen, unseen]))
    setting = Setting(FINAL, run.fit_classes, run.new_classes, np.zeros(0, np.int64), idx)
    rows = setting.rows(data.labels[idx])
    return fidelity(run.model, run.model.importance_layer, images[idx], rows, data.masks[idx],
                    data.image_attributes[idx], attribute_groups=data.attribute_groups, inverse=run.inverse,
                    names=names, vocabulary=_vocabulary(run), class_knowledge=run.knowledge[run.classes],
                    unseen=np.isin(data.labels[idx], run.new_classes), batch_size=128)


def _gzsl_rows(run: LoadedRun) -> list[dict[str, object]]:
    rows = []
    for method, m in run.metrics.result.summary().items():
        row: dict[str, object] = {"method": method}
        for key, title in (("seen_acc", "S"), ("unseen_acc", "U"), ("H", "H"), ("zsl_acc", "ZSL"), ("ausuc", "AUSUC")):
            value = m.get(key)
            std = m.get(f"{key}_std")
            row[title] = "-" if value is None else (f"{value:.3f} ± {std:.3f}" if std else f"{value:.3f}")
        rows.append(row)
    return rows


def gzsl_plots(run: LoadedRun, data) -> list[tuple[str, Path]]:
    """``plots/`` of the GZSL results, from the test scores each method's stage kept.

    * ``gzsl_curves.png``: every method's seen-unseen curve (the mean curve over seeds when there
      are several), its plain (constant 0) and calibrated operating points marked (their mean);
    * ``per_class_accuracy.png`` and ``unseen_confusions.png``: NIWT's (the first seed's, at its
      reported operating point).

    Methods whose stages kept no scores (runs written before they were kept) are left out, and said.
    """
    comparison = run.metrics.result
    idx = np.concatenate([data.test_seen_idx, data.test_unseen_idx])
    labels = data.labels[idx]
    seen = run.fit_classes
    unseen: np.ndarray | None = None  # the run's own unseen classes: the scores' columns (a taught run has others)
    (run.path / layout.PLOTS).mkdir(exist_ok=True)
    curves, points, first_scores, missing = {}, {}, {}, []
    for i, method in enumerate(comparison.methods):
        per_seed = [load_test_scores(layout.stage_dir(run.path, seed_run.seed, method)) for seed_run in comparison.runs]
        if any(scores is None or scores.shape[0] != idx.size for scores in per_seed):
            missing.append(method)
            continue
        if unseen is None:
            unseen = np.setdiff1d(np.flatnonzero(np.isfinite(per_seed[0][0])), seen)
        first_scores[method] = per_seed[0]
        seed_curves = [seen_unseen_curve(scores, labels, seen, unseen) for scores in per_seed]
        curves[method] = seed_curves[0] if len(seed_curves) == 1 else mean_curve(seed_curves)
        results = [seed_run.results[i] for seed_run in comparison.runs]
        marks = [(float(np.mean([r.report.unseen_acc for r in results])),
                  float(np.mean([r.report.seen_acc for r in results])), "plain")]
        if all(r.calibrated is not None for r in results):
            marks.append((float(np.mean([r.calibrated.unseen_acc for r in results])),
                          float(np.mean([r.calibrated.seen_acc for r in results])), "calibrated"))
        points[method] = marks
    if missing:
        log.warning("no test scores kept for %s (a run written before they were): left out of the plots",
                    ", ".join(missing))
    plots: list[tuple[str, Path]] = []
    if not curves or unseen is None:
        return plots
    classes = np.concatenate([seen, unseen])
    n_seeds = len(comparison.runs)
    title = ("Seen-unseen curves" + (f" (mean of {n_seeds} seeds)" if n_seeds > 1 else "")
             + "; markers: plain and calibrated operating points")
    plot_seen_unseen_curves(curves, points, run.path / layout.GZSL_CURVES, title)
    plots.append(("Every method's seen-unseen curve (calibrated stacking; its area is AUSUC), with the operating "
                  "points each method reports", run.path / layout.GZSL_CURVES))
    method = "niwt" if "niwt" in first_scores else next(iter(first_scores))
    result = comparison.runs[0].results[comparison.methods.index(method)]
    pred = gzsl_predictions(first_scores[method], labels, seen, unseen, calibration=result.report.calibration)
    names = [run.class_names[c] for c in classes]
    accuracy = [float(np.mean(pred[labels == c] == c)) if np.any(labels == c) else 0.0 for c in classes]
    plot_per_class_accuracy(names, accuracy, [c in set(unseen.tolist()) for c in classes],
                            run.path / layout.PER_CLASS_ACCURACY, f"{method}: per-class accuracy (seed {comparison.runs[0].seed})")
    plots.append((f"{method}: accuracy of each class among all {classes.size} (seed {comparison.runs[0].seed})",
                  run.path / layout.PER_CLASS_ACCURACY))
    unseen_rows = np.isin(labels, unseen)
    columns = [*unseen.tolist(), -1]
    matrix = np.zeros((unseen.size, len(columns)))
    for true, got in zip(labels[unseen_rows], pred[unseen_rows]):
        matrix[unseen.tolist().index(true), columns.index(got) if got in columns else len(columns) - 1] += 1
    plot_confusion(matrix, [run.class_names[c] for c in unseen], [*(run.class_names[c] for c in unseen), "a seen class"],
                   run.path / layout.UNSEEN_CONFUSIONS, f"{method}: where the unseen classes' test images go")
    plots.append((f"{method}: the unseen classes' test images, by predicted class (rows sum to 1)",
                  run.path / layout.UNSEEN_CONFUSIONS))
    return plots


def _taught_rows(run: LoadedRun) -> list[dict[str, object]]:
    rows = []
    for event in run.events:
        told = "; ".join(f"{x.name}: {x.told}" for x in event.lessons)
        transfer = (f"Λ={event.lam:g}, lr={event.lr:g}, {event.steps} steps, {event.seconds:.2f} s"
                    if event.action == "teach" else "")
        rows.append({"when": event.at, "what": event.action, "classes": ", ".join(event.classes), "told": told,
                     "transfer": transfer})
    return rows


def write_report(run: LoadedRun, *, n_gallery: int = 12) -> Path:
    """``niwt report``: ``RUN_DIR/report.html``, one self-contained page."""
    data, images = run.dataset()
    idx = _scored_unseen(run, data)
    batch = images[idx]
    predicted = run.scores(batch).argmax(1).numpy()
    truth_rows = Setting(FINAL, run.fit_classes, run.new_classes, np.zeros(0, np.int64), idx).rows(data.labels[idx])
    right, wrong = np.flatnonzero(predicted == truth_rows), np.flatnonzero(predicted != truth_rows)
    rng = np.random.default_rng(0)
    take_right = rng.permutation(right)[: n_gallery // 2]
    chosen = np.concatenate([take_right, rng.permutation(wrong)[: n_gallery - take_right.size]])
    gallery = []
    if chosen.size:
        sample = batch[torch.from_numpy(chosen)]
        cams = grad_cam(run.model, run.model.importance_layer, sample, torch.from_numpy(predicted[chosen]))
        words = explain_images(run.model, run.model.importance_layer, sample, run.inverse, _vocabulary(run),
                               targets=torch.from_numpy(predicted[chosen]), k=4, class_names=run.row_names) \
            if run.inverse is not None else [None] * chosen.size
        shown = _display(run, sample)
        for i, j in enumerate(chosen):
            terms = [(t.name, t.score) for t in words[i].terms] if words[i] is not None else ()
            gallery.append(GalleryItem(shown[i], overlay(shown[i], cams[i].numpy()), run.row_names[truth_rows[j]],
                                       run.row_names[predicted[j]], terms))
    names = neuron_names(run) if run.inverse is not None else []
    fidelity = _fidelity(run, data, images, names)
    with run_lock(run.path):
        check_writable(run.path, (layout.REPORT, *layout.REPORT_PLOTS), "report")
        drawn = gzsl_plots(run, data)
        own = {p.name for _, p in drawn}
        others = sorted(p for p in (run.path / layout.PLOTS).glob("*.png") if p.name not in own) \
            if (run.path / layout.PLOTS).is_dir() else []
        plots = [*drawn, *others]
        path = run.path / layout.REPORT
        write_html_report(path, title=f"NIWT on {run.info.dataset or 'the dataset'}",
                          subtitle=f"{run.config.model.arch}, {run.config.train.mode}, seed {run.config.seed}; "
                          f"{len(run.fit_classes)} seen and {len(run.new_classes)} unseen classes",
                          gzsl_rows=_gzsl_rows(run), plots=plots, gallery=gallery,
                          class_explanations=class_explanations(run), given=given_knowledge(run, data),
                          neuron_names=names,
                          fidelity=fidelity, taught=_taught_rows(run))
        record_outputs(run.path, [layout.REPORT, *(p.relative_to(run.path).as_posix() for _, p in drawn)], "report")
    return path
