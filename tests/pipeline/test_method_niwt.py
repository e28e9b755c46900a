"""NIWT's variants and ablation knobs: shared transfers, the importance layer, the pool size."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from niwt.config import RunConfig, resolve_config
from niwt.data.shapes import make_shapes
from niwt.errors import ConfigError, DataError
from niwt.importance import neuron_importance
from niwt.models import create_model
from niwt.models.contract import check_backbone
from niwt.pipeline import niwt_method, open_run, run_methods, seed_context, select_niwt
from niwt.pipeline.presets import quick_config


@pytest.fixture(scope="module")
def tiny_context():
    config = resolve_config(replace(quick_config(RunConfig()), seed=2))
    return seed_context(open_run(config, make_shapes(config.data)))


def test_niwt_and_niwt_bal_share_their_transfers(tiny_context, monkeypatch):
    import niwt.pipeline.method_niwt

    calls = []
    original = niwt.pipeline.method_niwt.niwt_transfer

    def counting(config, model, knowledge, images, labels, fit, new, pool, grid, progress=False, **kwargs):
        calls.append(len(grid))
        return original(config, model, knowledge, images, labels, fit, new, pool, grid, progress, **kwargs)

    monkeypatch.setattr(niwt.pipeline.method_niwt, "niwt_transfer", counting)
    results = run_methods(tiny_context, ("niwt", "niwt-bal"))
    assert [r.method for r in results] == ["niwt", "niwt-bal"]
    grid = len(tiny_context.config.transfer.lam_grid)
    chosen = {tuple(r.selection.params.items()) for r in results}
    # One validation transfer over the grid, then one final transfer per distinct chosen point.
    assert calls == [grid] + [1] * len(chosen)
    # Sharing changes no number: each variant alone gives the same report.
    calls.clear()
    for result in results:
        alone = niwt_method(tiny_context, select_niwt(tiny_context, variant=result.method), variant=result.method)
        assert alone.report == result.report
        assert alone.selection.params == result.selection.params


def test_vgg_importance_at_an_earlier_layer_keeps_the_logits_and_the_contract():
    torch.manual_seed(0)
    model = create_model("vgg", 5, width=4, hidden=16).double().eval()
    x = torch.rand(6, 3, 32, 32, dtype=torch.float64)
    reference = model(x)
    default_importance = neuron_importance(model, "features.10", x, torch.arange(6) % 5, "sum")
    assert model.importance_layers() == ("features.2", "features.6", "features.10", "features")
    model.set_importance_layer("features.10")
    assert model.importance_layer == "features.10"
    torch.testing.assert_close(model(x), reference, rtol=0, atol=1e-12)
    assert model.forward_features(x).shape == (6, 16, 8, 8)  # the third block: 4 * width channels at 8 x 8
    # The fast transfer path's gradient is the importance at the new layer.
    check_backbone(model, x, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(neuron_importance(model, model.importance_layer, x, torch.arange(6) % 5, "sum"),
                               default_importance)
    with pytest.raises(ConfigError, match=r"importance.layer` must be one of \['features.2'"):
        model.set_importance_layer("fc.0")
    resnet = create_model("resnet", 5, width=4)
    with pytest.raises(ConfigError, match="takes importance only at 'stage3.0'"):
        resnet.set_importance_layer("stage2.0")


def test_transfer_pool_size_draws_a_fixed_subset(tiny_context):
    ctx = tiny_context
    full = ctx.pool(ctx.final)
    small_config = replace(ctx.config, transfer=replace(ctx.config.transfer, pool_size=5))
    small = replace(ctx, config=small_config)
    pool = small.pool(small.final)
    assert pool.shape == (5, *full.shape[1:])
    # Every image of the small pool is one of the full pool's, and the draw repeats.
    matches = [int(((full - img).abs().flatten(1).sum(1) == 0).sum()) for img in pool]
    assert all(m >= 1 for m in matches)
    torch.testing.assert_close(small.pool(small.final), pool)
    assert np.isfinite(pool.numpy()).all()
    with pytest.raises(ConfigError, match="pool_size"):
        replace(ctx.config.transfer, pool_size=-1)


def test_more_validation_splits_draw_other_val_classes_and_choose_by_the_mean_h():
    from niwt.data.settings import validation_splits
    from niwt.evaluate import choose_common_calibration, evaluate_gzsl

    config = resolve_config(replace(quick_config(RunConfig()), seed=2))
    config = replace(config, eval=replace(config.eval, val_splits=3))
    data = make_shapes(config.data)  # 6 seen classes, 2 of them val classes
    splits = validation_splits(data, config.seed, 3)
    assert [s.name for s in splits] == ["validation 2", "validation 3"]
    first = set(data.val_classes.tolist())
    second = set(splits[0].new_classes.tolist())
    assert len(second) == 2 and not second & first  # the classes the first split left out come first
    assert set(splits[1].new_classes.tolist()) == set(data.seen_classes.tolist()) - first - second
    for s in splits:  # every split: the other seen classes train, none of their images is a test image twice
        assert set(s.fit_classes.tolist()) | set(s.new_classes.tolist()) == set(data.seen_classes.tolist())
        assert not set(s.train_idx.tolist()) & set(s.test_idx.tolist())
        assert np.isin(data.labels[s.train_idx], s.fit_classes).all()
    again = validation_splits(data, config.seed, 3)
    assert all(np.array_equal(a.test_idx, b.test_idx) for a, b in zip(splits, again))

    ctx = seed_context(open_run(config, data))
    assert len(ctx.validations) == 3 and len(ctx.models.more_validation) == 2
    assert set(ctx.models.keys) >= {"train_val", "train_val2", "train_val3"}
    rng = np.random.default_rng(0)
    scores = tuple(rng.normal(size=(len(s.test_idx), data.n_classes)) for s in ctx.validations)
    point = ctx.grid_point({"lam": 0.0}, scores)
    problems = [(sc, data.labels[s.test_idx], s.fit_classes, s.new_classes) for sc, s in zip(scores, ctx.validations)]
    assert point.calibrated_gamma == choose_common_calibration(problems)
    reports = [evaluate_gzsl(*p) for p in problems]  # eval.calibrate is off: plain stacking on each split
    assert point.report.H == pytest.approx(np.mean([r.H for r in reports]))
    assert point.report.zsl_acc == pytest.approx(np.mean([r.zsl_acc for r in reports]))
    with pytest.raises(DataError, match=r"^`scores` must hold one array per validation split \(3\), got 1$"):
        ctx.grid_point({"lam": 0.0}, scores[:1])
    results = run_methods(ctx, ("niwt", "eszsl"))
    assert [r.method for r in results] == ["niwt", "eszsl"]
    assert all(r.calibrated is not None and np.isfinite(r.report.H) for r in results)
