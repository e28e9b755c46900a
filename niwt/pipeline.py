"""One function per command, wiring the stages from a typed config into a run directory.

The NIWT pipeline on a dataset:

1. pre-train the backbone on the source classes (an ImageNet stand-in);
2. **validation**: train on the seen *train* classes, treat the seen *val* classes as unseen, and
   choose Λ (and the learning rate) of the transfer by the GZSL harmonic mean on held-out images;
   no unseen test image is looked at;
3. **final**: train on all seen classes, extract importances, fit the knowledge -> importance map,
   transfer the unseen classes with the chosen values, and evaluate GZSL on the test images.

Run directories are written through :mod:`niwt.rundir` (a private staging directory moved into
place when complete; nothing niwt did not write is ever deleted).
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niwt.baselines import get_baseline
from niwt.config import RunConfig, save_config, to_dict
from niwt.data import ZSLData
from niwt.data.shapes import make_shapes
from niwt.errors import DataError
from niwt.evaluate import GZSLReport, choose_calibration, evaluate_gzsl
from niwt.importance import eval_mode, neuron_importance
from niwt.knowledge import knowledge_vectors
from niwt.mapping import ImportanceMapper
from niwt.models import Backbone, create_model
from niwt.rundir import in_run_dir, versions, write_json
from niwt.training import predict_logits, seed_everything, train_classifier
from niwt.transfer import UnseenWeightOptimizer

__all__ = ["NIWTResult", "Prepared", "pretrain", "fit_seen", "niwt_transfer", "gzsl_scores",
           "penultimate_features", "select_transfer", "niwt_method", "baseline_method", "run_niwt", "load_dataset"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class NIWTResult:
    """What a NIWT run produced (the model carries the seen and unseen rows)."""

    report: GZSLReport
    model: Backbone
    mapper: ImportanceMapper
    optimizer: UnseenWeightOptimizer
    selection: dict[str, Any]
    seconds: dict[str, float]


def load_dataset(config: RunConfig) -> ZSLData:
    """The dataset of a run (the embedded shapes world)."""
    return make_shapes(config.data)


def _local_labels(labels: np.ndarray, classes: np.ndarray) -> torch.Tensor:
    lookup = {int(c): i for i, c in enumerate(classes)}
    return torch.tensor([lookup[int(c)] for c in labels], dtype=torch.long)


def pretrain(config: RunConfig, data: ZSLData, images: torch.Tensor, progress: bool = False) -> Backbone:
    """A backbone trained on the source classes (or untrained when there are none / 0 epochs)."""
    n_out = max(len(data.source_classes), 1)
    model = create_model(config.model.arch, n_out, width=config.model.width, hidden=config.model.hidden,
                         dropout=config.model.dropout, image_size=config.data.image_size)
    if len(data.source_idx) and config.train.pretrain_epochs:
        t = config.train
        train_classifier(model, images[data.source_idx], _local_labels(data.labels[data.source_idx], data.source_classes),
                         epochs=t.pretrain_epochs, lr=t.lr, batch_size=t.batch_size, weight_decay=t.weight_decay,
                         mode="finetuned", augment=t.augment,
                         generator=torch.Generator().manual_seed(config.seed), progress=progress, desc="pre-train")
    return model


def fit_seen(config: RunConfig, base: Backbone, images: torch.Tensor, labels: torch.Tensor, n_classes: int,
             progress: bool = False, desc: str = "seen") -> Backbone:
    """A copy of ``base`` with a fresh classifier, trained on seen classes (fixed or finetuned)."""
    model = copy.deepcopy(base)
    model.reset_classifier(n_classes)
    t = config.train
    train_classifier(model, images, labels, epochs=t.epochs, lr=t.lr, batch_size=t.batch_size,
                     weight_decay=t.weight_decay, mode=t.mode, augment=t.augment,
                     generator=torch.Generator().manual_seed(config.seed + 1), progress=progress, desc=desc)
    return model


def pool_images(config: RunConfig, data: ZSLData, images: torch.Tensor, seen_idx: np.ndarray) -> torch.Tensor:
    """The unlabeled images the transfer runs on."""
    pool = config.transfer.pool
    if pool == "source":
        if not len(data.source_idx):
            raise DataError("`transfer.pool = \"source\"` needs source images; this dataset has none, use \"seen\"")
        return images[data.source_idx]
    if pool == "seen":
        return images[seen_idx]
    gen = torch.Generator().manual_seed(config.seed + 7)
    return torch.rand(max(len(data.source_idx), 512), *images.shape[1:], generator=gen)


def niwt_transfer(config: RunConfig, model: Backbone, knowledge: np.ndarray, images: torch.Tensor,
                  labels: torch.Tensor, fit_classes: np.ndarray, new_classes: np.ndarray, pool: torch.Tensor,
                  grid: list[tuple[float, float]], progress: bool = False,
                  ) -> tuple[ImportanceMapper, np.ndarray, list[UnseenWeightOptimizer]]:
    """Importance -> mapping -> transfer for ``new_classes`` with each (Λ, lr) of ``grid``.

    ``labels`` index ``fit_classes`` (the model's seen rows). Returns the fitted mapper, the
    predicted target importances and one fitted optimizer per grid point.
    """
    alpha = neuron_importance(model, model.importance_layer, images, labels, config.importance.reduction,
                              batch_size=config.importance.batch_size)
    m = config.mapping
    mapper = ImportanceMapper(model=m.model, hidden=m.hidden, lr=m.lr, epochs=m.epochs, batch_size=m.batch_size,
                              weight_decay=m.weight_decay, n_holdout=min(m.n_holdout, len(fit_classes) - 1),
                              refit=m.refit, random_state=config.seed)
    mapper.fit(knowledge[fit_classes], alpha.numpy(), labels.numpy())
    targets = mapper.predict(knowledge[new_classes])
    t = config.transfer
    optimizers = []
    for lam, lr in grid:
        opt = UnseenWeightOptimizer(lam=lam, lr=lr, batch_size=t.batch_size, max_steps=t.max_steps,
                                    patience=t.patience, tol=t.tol, init=t.init, mode=t.mode,
                                    reduction=config.importance.reduction, random_state=config.seed,
                                    progress=progress)
        optimizers.append(opt.fit(model, pool, targets))
    return mapper, targets, optimizers


def gzsl_scores(model: Backbone, images: torch.Tensor, seen: np.ndarray, unseen: np.ndarray, n_classes: int) -> np.ndarray:
    """Logits of ``model`` (seen rows then unseen rows) spread into global class columns ``[N, C]``."""
    logits = predict_logits(model, images).double().numpy()
    scores = np.full((logits.shape[0], n_classes), -np.inf)
    scores[:, seen] = logits[:, : len(seen)]
    scores[:, unseen] = logits[:, len(seen) :]
    return scores


@torch.no_grad()
def penultimate_features(model: Backbone, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """The classifier's input features ``[N, D]`` (eval mode) — what the baselines are fitted on."""
    with eval_mode(model):
        return torch.cat([model.forward_head(model.forward_features(images[i : i + batch_size]))
                          for i in range(0, images.shape[0], batch_size)]).double().numpy()


def transfer_grid(config: RunConfig) -> list[tuple[float, float]]:
    """The (Λ, lr) points searched on validation (one point when selection is off)."""
    t = config.transfer
    lams = list(t.lam_grid) if t.select and t.lam_grid else [t.lam]
    lrs = list(t.lr_grid) if t.select and t.lr_grid else [t.lr]
    return list(itertools.product(lams, lrs))


class Prepared:
    """What every method of one run shares: data, knowledge, images and the trained backbones.

    ``val_model`` is trained on the seen *train* classes only (80 % of their training images), so the
    seen *val* classes can act as unseen when hyper-parameters are chosen; ``final_model`` is trained
    on every seen class. Both start from the same source-pretrained ``base`` and are trained on
    first use.
    """

    def __init__(self, config: RunConfig, data: ZSLData | None = None, base: Backbone | None = None,
                 progress: bool = False) -> None:
        seed_everything(config.seed)
        self.config, self.progress = config, progress
        self.data = data if data is not None else load_dataset(config)
        self.knowledge, _ = knowledge_vectors(self.data, config.knowledge.source, config.knowledge.normalize,
                                              config.knowledge.text_encoder)
        self.images = self.data.images_tensor(np.arange(len(self.data.labels)))
        self.seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        self.base = base if base is not None else pretrain(config, self.data, self.images, progress)
        self.seconds["pretrain"] = time.perf_counter() - t0
        d = self.data
        rng = np.random.default_rng(config.seed)
        tr_idx = rng.permutation(d.trainval_idx[np.isin(d.labels[d.trainval_idx], d.train_classes)])
        n_hold = max(1, len(tr_idx) // 5)
        self.hold_idx, self.fit_idx = np.sort(tr_idx[:n_hold]), np.sort(tr_idx[n_hold:])
        self.val_idx = d.trainval_idx[np.isin(d.labels[d.trainval_idx], d.val_classes)]
        self.eval_idx = np.concatenate([self.hold_idx, self.val_idx])
        self.test_idx = np.concatenate([d.test_seen_idx, d.test_unseen_idx])
        self._val_model: Backbone | None = None
        self._final_model: Backbone | None = None

    def _timed(self, key: str, fn):
        t0 = time.perf_counter()
        out = fn()
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0
        return out

    @property
    def val_model(self) -> Backbone:
        if self._val_model is None:
            d = self.data
            if len(d.val_classes) == 0:
                raise DataError("choosing hyper-parameters needs validation classes, but `val_classes` is empty; "
                                "set data.n_val > 0 or transfer.select = false")
            labels = _local_labels(d.labels[self.fit_idx], d.train_classes)
            self._val_model = self._timed("train_val", lambda: fit_seen(
                self.config, self.base, self.images[self.fit_idx], labels, len(d.train_classes), self.progress,
                desc="train (val)"))
        return self._val_model

    @property
    def final_model(self) -> Backbone:
        if self._final_model is None:
            d = self.data
            labels = _local_labels(d.labels[d.trainval_idx], d.seen_classes)
            self._final_model = self._timed("train_final", lambda: fit_seen(
                self.config, self.base, self.images[d.trainval_idx], labels, len(d.seen_classes), self.progress,
                desc="train (seen)"))
        return self._final_model

    def transfer(self, model: Backbone, grid: list[tuple[float, float]], *, final: bool,
                 ) -> tuple[ImportanceMapper, np.ndarray, list[UnseenWeightOptimizer]]:
        """:func:`niwt_transfer` on ``model`` in the final setting (seen -> unseen classes) or the
        validation one (train -> val classes), with that setting's training images and pool."""
        d = self.data
        idx, fit, new = ((d.trainval_idx, d.seen_classes, d.unseen_classes) if final
                         else (self.fit_idx, d.train_classes, d.val_classes))
        labels = _local_labels(d.labels[idx], fit)
        pool = pool_images(self.config, d, self.images, idx)
        return niwt_transfer(self.config, model, self.knowledge, self.images[idx], labels, fit, new, pool, grid,
                             self.progress)

    def val_report(self, scores_val: np.ndarray) -> GZSLReport:
        """GZSL report on the validation images (train classes seen, val classes unseen)."""
        d = self.data
        labels = d.labels[self.eval_idx]
        gamma = choose_calibration(scores_val, labels, d.train_classes, d.val_classes) if self.config.eval.calibrate else 0.0
        return evaluate_gzsl(scores_val, labels, d.train_classes, d.val_classes, calibration=gamma)


def _pick(rows: list[dict[str, Any]]) -> dict[str, Any]:
    best = rows[0]
    for row in rows[1:]:
        if row["H"] > best["H"]:
            best = row
    return best


def select_transfer(prep: Prepared, grid: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Choose Λ and the learning rate on the seen val classes acting as unseen (no test image used).

    The backbone is ``prep.val_model``; the held-out 20 % of the train classes' images and the val
    classes' training images form the validation GZSL test.
    """
    config, d = prep.config, prep.data
    grid = grid if grid is not None else transfer_grid(config)
    if len(grid) == 1 and not config.eval.calibrate:
        return {"grid": [{"lam": grid[0][0], "lr": grid[0][1]}], "lam": grid[0][0], "lr": grid[0][1],
                "validated": False}
    model = prep.val_model
    _, _, optimizers = prep.transfer(model, grid, final=False)
    rows = []
    for (lam, lr), opt in zip(grid, optimizers):
        opt.apply(model)
        rep = prep.val_report(gzsl_scores(model, prep.images[prep.eval_idx], d.train_classes, d.val_classes,
                                          d.n_classes))
        rows.append({"lam": lam, "lr": lr, "seen_acc": rep.seen_acc, "unseen_acc": rep.unseen_acc, "H": rep.H,
                     "calibration": rep.calibration})
        log.info("validation Λ=%g lr=%g: S=%.3f U=%.3f H=%.3f", lam, lr, rep.seen_acc, rep.unseen_acc, rep.H)
    best = _pick(rows)
    return {"grid": rows, "lam": best["lam"], "lr": best["lr"], "validated": True}


def niwt_method(prep: Prepared, selection: dict[str, Any] | None = None) -> NIWTResult:
    """NIWT on the final backbone with Λ/lr chosen on validation (or given in ``selection``)."""
    config, d = prep.config, prep.data
    t0 = time.perf_counter()
    selection = selection if selection is not None else select_transfer(prep)
    seconds = {"select": time.perf_counter() - t0}
    t0 = time.perf_counter()
    model = copy.deepcopy(prep.final_model)
    mapper, _, (opt,) = prep.transfer(model, [(selection["lam"], selection["lr"])], final=True)
    opt.apply(model)
    scores_test = gzsl_scores(model, prep.images[prep.test_idx], d.seen_classes, d.unseen_classes, d.n_classes)
    gamma = 0.0
    if config.eval.calibrate and selection.get("validated"):
        gamma = next(r["calibration"] for r in selection["grid"]
                     if (r["lam"], r["lr"]) == (selection["lam"], selection["lr"]))
    report = evaluate_gzsl(scores_test, d.labels[prep.test_idx], d.seen_classes, d.unseen_classes, calibration=gamma)
    seconds["final"] = time.perf_counter() - t0
    return NIWTResult(report, model, mapper, opt, selection, {**prep.seconds, **seconds})


def baseline_method(prep: Prepared, name: str, grid: dict[str, list[Any]] | None = None) -> tuple[GZSLReport, dict[str, Any]]:
    """A baseline on the penultimate features, its hyper-parameters chosen on validation classes.

    The grid is searched with features of ``prep.val_model`` (val classes unseen by it), the best
    point refitted on every seen class with features of ``prep.final_model``.
    """
    d = prep.data
    grid = grid if grid is not None else prep.config.compare.grid(name)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    seed = {"random_state": prep.config.seed} if "random_state" in get_baseline(name).get_params() else {}
    rows = []
    if len(points) > 1 or prep.config.eval.calibrate:
        f_fit = penultimate_features(prep.val_model, prep.images[prep.fit_idx])
        f_eval = penultimate_features(prep.val_model, prep.images[prep.eval_idx])
        for params in points:
            est = get_baseline(name, **params, **seed).fit(f_fit, d.labels[prep.fit_idx], prep.knowledge)
            rep = prep.val_report(est.decision_function(f_eval, prep.knowledge))
            rows.append({**params, "seen_acc": rep.seen_acc, "unseen_acc": rep.unseen_acc, "H": rep.H,
                         "calibration": rep.calibration})
        best = _pick(rows)
    else:
        best = {**points[0], "calibration": 0.0}
    params = {k: best[k] for k in grid}
    f_train = penultimate_features(prep.final_model, prep.images[d.trainval_idx])
    f_test = penultimate_features(prep.final_model, prep.images[prep.test_idx])
    est = get_baseline(name, **params, **seed).fit(f_train, d.labels[d.trainval_idx], prep.knowledge)
    report = evaluate_gzsl(est.decision_function(f_test, prep.knowledge), d.labels[prep.test_idx], d.seen_classes,
                           d.unseen_classes, calibration=best["calibration"])
    return report, {"grid": rows, "chosen": params, "calibration": best["calibration"], "validated": bool(rows)}


def run_niwt(config: RunConfig, data: ZSLData | None = None, progress: bool = False,
             base: Backbone | None = None) -> NIWTResult:
    """Run NIWT end to end and evaluate GZSL on the test images."""
    return niwt_method(Prepared(config, data, base, progress))


def save_niwt_outputs(staging: Path, config: RunConfig, result: NIWTResult) -> None:
    """Weights (safetensors), mapping and transfer records of a NIWT run."""
    from safetensors.torch import save_file

    (staging / "model").mkdir(exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(staging / "model" / "niwt.safetensors"), metadata={"arch": config.model.arch})
    mapper_state = {k: v.detach().contiguous() for k, v in result.mapper.net_.state_dict().items()}
    (staging / "mapping").mkdir(exist_ok=True)
    save_file(mapper_state, str(staging / "mapping" / "mapper.safetensors"))
    write_json(staging / "mapping" / "selection.json", {
        "best_epoch": result.mapper.best_epoch_, "val_spearman": result.mapper.val_spearman_,
        "holdout_classes": result.mapper.holdout_classes_.tolist(),
        "history": [{"loss": a, "spearman": b} for a, b in result.mapper.history_]})
    write_json(staging / "transfer" / "history.json", {
        "lam": result.optimizer.lam, "lr": result.optimizer.lr, "steps": result.optimizer.n_steps_,
        "stopped_early": result.optimizer.stopped_early_, "loss": result.optimizer.history_,
        "selection": result.selection})


def write_run(staging: Path, config: RunConfig, methods: dict[str, dict[str, float]], extra: dict[str, Any]) -> None:
    """``config.toml``, ``versions.json`` and ``metrics.json`` of a run."""
    save_config(config, staging / "config.toml")
    write_json(staging / "versions.json", versions())
    write_json(staging / "metrics.json", {"methods": methods, "config": to_dict(config), **extra})


def demo_config(seed: int = 0) -> RunConfig:
    """The defaults of ``niwt demo``."""
    return replace(RunConfig(), seed=seed)


def niwt_metrics(report: GZSLReport) -> dict[str, float]:
    """The spine's metric keys for one method."""
    d = report.as_dict()
    return {k: d[k] for k in ("seen_acc", "unseen_acc", "H", "zsl_acc", "ausuc")}


def run_to_dir(config: RunConfig, out: str | Path, *, force: bool = False, progress: bool = False) -> dict[str, Any]:
    """Run NIWT and write a complete run directory at ``out``; returns the metrics written."""

    def body(staging: Path) -> dict[str, Any]:
        result = run_niwt(config, progress=progress)
        methods = {"niwt": niwt_metrics(result.report)}
        save_niwt_outputs(staging, config, result)
        extra = {"selection": result.selection, "seconds": result.seconds}
        write_run(staging, config, methods, extra)
        return {"methods": methods, **extra}

    return in_run_dir(out, force, body, command="run")
