"""Transfer: recovery of a known row, fast == reference, only unseen rows change, determinism."""

from __future__ import annotations

import pytest
import torch

from niwt.errors import ConfigError, DataError, NotFittedError
from niwt.importance import neuron_importance
from niwt.layers import eval_mode
from niwt.models import create_model
from niwt.training import EarlyStopping
from niwt.transfer import UnseenWeightOptimizer, init_unseen_weights


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1))


def test_seen_class_importance_as_target_recovers_its_row(gap_model):
    pool = torch.randn(16, 3, 6, 6, dtype=torch.float64)
    seen = gap_model.classifier.weight.detach()
    # The importance of seen class 2 on the pool (for a GAP + linear head it is its row exactly).
    target = neuron_importance(gap_model, "conv", pool, torch.full((16,), 2)).mean(0, keepdim=True)
    opt = UnseenWeightOptimizer(lam=0.0, lr=0.05, batch_size=8, max_steps=300, patience=300).fit(gap_model, pool, target)
    assert _cos(opt.weights_[0], seen[2]) > 0.95
    assert _cos(opt.init_weights_[0], seen[2]) < 0.9  # it had somewhere to go


def test_fast_and_reference_paths_agree_in_float64():
    torch.manual_seed(5)
    model = create_model("vgg", 5, width=4, hidden=12).double()
    pool = torch.rand(12, 3, 32, 32, dtype=torch.float64)
    targets = torch.randn(3, 16, dtype=torch.float64)
    kw = dict(lam=1e-2, lr=1e-2, batch_size=6, max_steps=6, patience=100, random_state=7)
    fast = UnseenWeightOptimizer(mode="fast", **kw).fit(model, pool, targets)
    ref = UnseenWeightOptimizer(mode="reference", **kw).fit(model, pool, targets)
    torch.testing.assert_close(torch.tensor(fast.history_), torch.tensor(ref.history_), rtol=1e-5, atol=0)
    torch.testing.assert_close(fast.weights_, ref.weights_, rtol=1e-5, atol=1e-12)
    # The gradient of one step, from both paths, on the same weights and pairs.
    w = targets.new_zeros(3, 12).normal_().requires_grad_(True)
    idx, cls = torch.arange(6), torch.tensor([0, 1, 2, 0, 1, 2])
    problem = fast.prepare(model, pool, targets)
    torch.testing.assert_close(problem.mean_seen, model.classifier.weight.detach().mean(0))
    with eval_mode(model):
        g_fast = torch.autograd.grad(fast.batch_loss(problem, w, idx, cls), w)[0]
        g_ref = torch.autograd.grad(fast.batch_loss(problem, w, idx, cls, mode="reference"), w)[0]
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-12)


def test_fast_and_reference_agree_on_a_resnet_with_batchnorm():
    torch.manual_seed(6)
    model = create_model("resnet", 4, width=4).double()
    pool = torch.rand(8, 3, 32, 32, dtype=torch.float64)
    targets = torch.randn(2, 16, dtype=torch.float64)
    kw = dict(lam=1e-3, lr=1e-2, batch_size=4, max_steps=4, patience=100, random_state=1)
    fast = UnseenWeightOptimizer(mode="fast", **kw).fit(model, pool, targets)
    ref = UnseenWeightOptimizer(mode="reference", **kw).fit(model, pool, targets)
    torch.testing.assert_close(fast.weights_, ref.weights_, rtol=1e-5, atol=1e-12)


def test_only_the_unseen_rows_change():
    torch.manual_seed(7)
    model = create_model("vgg", 4, width=4, hidden=8)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pool = torch.rand(8, 3, 32, 32)
    opt = UnseenWeightOptimizer(max_steps=5, batch_size=4).fit(model, pool, torch.randn(3, 16))
    assert model.training  # state restored
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed during fit"
    opt.apply(model)
    after = model.state_dict()
    changed = {k for k in after if k not in before or not torch.equal(after[k], before[k])}
    assert changed == {"classifier.unseen_weight", "classifier.unseen_bias"}
    assert model.classifier.n_unseen == 3
    torch.testing.assert_close(after["classifier.unseen_weight"], opt.weights_)
    assert torch.equal(after["classifier.unseen_bias"], torch.zeros(3))
    logits = model.eval()(pool)
    assert logits.shape == (8, 7) and torch.isfinite(logits).all()


def test_same_seed_same_numbers_and_no_nan():
    torch.manual_seed(8)
    model = create_model("vgg", 4, width=4, hidden=8)
    pool = torch.rand(8, 3, 32, 32)
    targets = torch.randn(2, 16)
    a = UnseenWeightOptimizer(max_steps=5, batch_size=4, random_state=3).fit(model, pool, targets)
    b = UnseenWeightOptimizer(max_steps=5, batch_size=4, random_state=3).fit(model, pool, targets)
    c = UnseenWeightOptimizer(max_steps=5, batch_size=4, random_state=4).fit(model, pool, targets)
    assert torch.equal(a.weights_, b.weights_) and a.history_ == b.history_
    assert not torch.equal(a.weights_, c.weights_)
    assert len(a.history_) == a.n_steps_ > 0 and all(map(lambda v: v == v, a.history_))


def test_regulariser_pulls_towards_the_mean_seen_row(gap_model):
    pool = torch.randn(8, 3, 5, 5, dtype=torch.float64)
    targets = torch.randn(2, 6, dtype=torch.float64)
    mu = gap_model.classifier.weight.detach().mean(0)
    dist = {}
    for lam in (0.0, 10.0):
        opt = UnseenWeightOptimizer(lam=lam, lr=0.05, max_steps=200, patience=200, batch_size=8).fit(gap_model, pool, targets)
        dist[lam] = float((opt.weights_ - mu).norm())
    assert dist[10.0] < 0.5 * dist[0.0]


def test_seen_centered_init_matches_seen_statistics():
    seen = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])  # mean (3, 10), std (1.633, 0)
    w = init_unseen_weights(seen, 4000, "seen_centered", torch.Generator().manual_seed(0))
    assert torch.allclose(w.mean(0), torch.tensor([3.0, 10.0]), atol=0.08)
    assert torch.allclose(w.std(0), torch.tensor([(8 / 3) ** 0.5, 0.0]), atol=0.08)
    assert torch.equal(init_unseen_weights(seen, 2, "mean"), torch.tensor([[3.0, 10.0]] * 2))


def test_early_stopping_rule_worked_by_hand():
    stop = EarlyStopping(patience=2, tol=0.1)
    # 10 -> 8.9 improves by 11 % (reset); 8.5 by 4.5 % (count 1); 8.1 by 9 % vs 8.9 (count 2: stop).
    assert [stop.step(v) for v in (10.0, 8.9, 8.5, 8.1)] == [False, False, False, True]


def test_errors_are_named(gap_model):
    pool = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        UnseenWeightOptimizer().apply(gap_model)
    with pytest.raises(ConfigError, match="`mode` must be one of"):
        UnseenWeightOptimizer(mode="turbo").fit(gap_model, pool, torch.randn(1, 6))
    with pytest.raises(DataError, match="NaN"):
        UnseenWeightOptimizer().fit(gap_model, pool, torch.full((1, 6), float("nan")))
    with pytest.raises(DataError, match="6 channels"):
        UnseenWeightOptimizer().fit(gap_model, pool, torch.randn(1, 5))


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
def test_shifted_head_matches_the_head_and_its_shift_gradient_is_the_summed_importance(arch):
    torch.manual_seed(9)
    model = create_model(arch, 5, width=4, **({"hidden": 12} if arch == "vgg" else {})).double().eval()
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    acts = model.forward_features(x).requires_grad_(True)
    shift = torch.zeros(3, acts.shape[1], dtype=torch.float64, requires_grad=True)
    shifted = model.forward_head_shifted(model.head_cache(acts), shift)
    torch.testing.assert_close(shifted, model.forward_head(acts))
    w = torch.randn(shifted.shape[1], dtype=torch.float64)
    (g_shift,) = torch.autograd.grad(shifted @ w, shift, torch.ones(3, dtype=torch.float64))
    (g_acts,) = torch.autograd.grad(model.forward_head(acts) @ w, acts, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(g_shift, g_acts.sum((2, 3)))


def test_fast_and_reference_agree_with_mean_reduction():
    torch.manual_seed(10)
    model = create_model("vgg", 4, width=4, hidden=12).double()
    pool = torch.rand(8, 3, 32, 32, dtype=torch.float64)
    targets = torch.randn(2, 16, dtype=torch.float64)
    kw = dict(lam=1e-2, lr=1e-2, batch_size=4, max_steps=4, patience=100, reduction="mean", random_state=2)
    fast = UnseenWeightOptimizer(mode="fast", **kw).fit(model, pool, targets)
    ref = UnseenWeightOptimizer(mode="reference", **kw).fit(model, pool, targets)
    torch.testing.assert_close(torch.tensor(fast.history_), torch.tensor(ref.history_), rtol=1e-5, atol=0)
    torch.testing.assert_close(fast.weights_, ref.weights_, rtol=1e-5, atol=1e-12)
