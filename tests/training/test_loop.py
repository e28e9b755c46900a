"""The optimisation loop (niwt.training.optimize), checked against iterates worked out by hand.

Most tests minimise the 1-d quadratic f(x) = (x - 3)² (+ 1) with plain SGD at lr 0.25 from x = 0,
one batch per epoch. The gradient is 2(x - 3), so x_{k+1} = x_k - 0.5 (x_k - 3) = x_k / 2 + 1.5:
x = 0, 1.5, 2.25, 2.625, 2.8125, ... and (x - 3)² = 9, 2.25, 0.5625, 0.140625, 0.03515625, ...
Every number is exact in binary floating point, so the tests compare with ``==``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from niwt.errors import ConfigError, DataError
from niwt.training import EarlyStopping, EpochEnd, OptimizeResult, StepEnd, optimize


def _quadratic(floor: float = 0.0, lr: float = 0.25):
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    return x, torch.optim.SGD([x], lr=lr), (lambda _batch: (x - 3.0) ** 2 + floor)


def _value(x: torch.Tensor) -> float:
    return float(x.detach())


def _one_batch():
    return [None]


def _unit(_batch: object) -> int:
    return 1


def test_sgd_on_a_quadratic_gives_the_hand_computed_iterates():
    x, opt, loss = _quadratic()
    seen: list[StepEnd] = []
    result = optimize([x], loss, _one_batch, opt, epochs=3, size=_unit, on_step=seen.append)
    assert _value(x) == 2.625  # 0 -> 1.5 -> 2.25 -> 2.625
    assert result.step_losses == (9.0, 2.25, 0.5625)  # the loss before each update
    assert result.epoch_losses == (9.0, 2.25, 0.5625)
    assert (result.steps, result.epochs, result.stopped_by) == (3, 3, None)
    assert [s.step for s in seen] == [0, 1, 2] and [s.epoch for s in seen] == [0, 1, 2]
    assert [float(s.grads[0]) for s in seen] == [-6.0, -3.0, -1.5]  # 2 (x - 3) at 0, 1.5, 2.25
    assert seen[0].params[0] is x and all(s.seconds >= 0 for s in seen)
    assert x.grad is None  # the loop clears the gradient after every update


def test_a_stale_grad_is_overwritten_not_accumulated():
    x, opt, loss = _quadratic()
    x.grad = torch.tensor(100.0, dtype=torch.float64)  # .backward() would add to this
    optimize([x], loss, _one_batch, opt, epochs=1, size=_unit)
    assert _value(x) == 1.5


def test_the_scheduler_is_stepped_after_every_update():
    x, opt, loss = _quadratic()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # lr 0.25, 0.125, 0.0625
    optimize([x], loss, _one_batch, opt, epochs=3, size=_unit, scheduler=sched)
    # 0 + 0.25*6 = 1.5; 1.5 + 0.125*3 = 1.875; 1.875 + 0.0625*2.25 = 2.015625
    assert _value(x) == 2.015625


def test_the_epoch_loss_is_the_size_weighted_mean_of_its_batches():
    x = torch.zeros((), requires_grad=True, dtype=torch.float64)
    opt = torch.optim.SGD([x], lr=0.0)
    batches = [torch.tensor([2.0]), torch.tensor([4.0, 4.0, 4.0])]  # losses 2 (1 example) and 4 (3 examples)
    result = optimize([x], lambda b: x * 0 + b.mean(), lambda: batches, opt, epochs=2)
    assert result.step_losses == (2.0, 4.0, 2.0, 4.0)
    assert result.epoch_losses == (3.5, 3.5)  # (2*1 + 4*3) / 4


def test_early_stopping_stops_at_the_hand_computed_step():
    x, opt, loss = _quadratic(floor=1.0)
    # losses 10, 3.25, 1.5625, 1.140625, 1.03515625: relative improvements 67.5 %, 51.9 %, 27.0 %,
    # then 1 - 1.03515625 / 1.140625 = 9.25 % < 10 %: with patience 1 the fifth step stops the run.
    result = optimize([x], loss, _one_batch, opt, epochs=50, size=_unit,
                      early_stopping=EarlyStopping(patience=1, tol=0.1))
    assert result.step_losses == (10.0, 3.25, 1.5625, 1.140625, 1.03515625)
    assert (result.steps, result.stopped_by) == (5, "early_stopping")
    assert _value(x) == 2.90625  # after five updates


def test_on_step_can_stop_the_run_after_the_step_it_saw():
    x, opt, loss = _quadratic()
    result = optimize([x], loss, _one_batch, opt, epochs=10, size=_unit, on_step=lambda s: s.step == 1)
    assert (result.steps, result.stopped_by) == (2, "on_step")
    assert _value(x) == 2.25  # the second update was applied, no third


def test_a_stop_in_the_middle_of_an_epoch_leaves_that_epoch_out():
    x = torch.zeros((), requires_grad=True, dtype=torch.float64)
    opt = torch.optim.SGD([x], lr=0.0)
    batches = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([3.0])]
    result = optimize([x], lambda b: x * 0 + b.mean(), lambda: batches, opt, epochs=3, on_step=lambda s: s.step == 4)
    assert result.step_losses == (1.0, 2.0, 3.0, 1.0, 2.0)
    assert result.epoch_losses == (2.0,)  # the second epoch was cut short


def test_on_epoch_sees_every_epoch_and_can_stop():
    x, opt, loss = _quadratic()
    seen: list[EpochEnd] = []

    def on_epoch(end: EpochEnd) -> bool:
        seen.append(end)
        return end.epoch == 2

    result = optimize([x], loss, _one_batch, opt, epochs=10, size=_unit, on_epoch=on_epoch)
    assert seen == [EpochEnd(0, 9.0, 1), EpochEnd(1, 2.25, 2), EpochEnd(2, 0.5625, 3)]
    assert result.stopped_by == "on_epoch"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_raises_a_data_error_naming_the_stage_and_step(bad: float):
    x, opt, _ = _quadratic()
    calls = iter(range(100))

    def loss(_batch: object) -> torch.Tensor:
        return (x - 3.0) ** 2 * (bad if next(calls) == 2 else 1.0)

    with pytest.raises(DataError, match=rf"quadratic: the loss became {bad} at step 2 \(epoch 2\)"):
        optimize([x], loss, _one_batch, opt, epochs=5, size=_unit, desc="quadratic")
    assert _value(x) == 2.25  # the bad step updated nothing


def test_gradients_are_on_even_under_no_grad():
    x, opt, loss = _quadratic()
    with torch.no_grad():
        optimize([x], loss, _one_batch, opt, epochs=1, size=_unit)
    assert _value(x) == 1.5


def test_zero_epochs_is_an_empty_run():
    x, opt, loss = _quadratic()
    result = optimize([x], loss, _one_batch, opt, epochs=0)
    assert result == OptimizeResult((), (), None, result.seconds) and _value(x) == 0.0


def test_bad_arguments_are_named():
    x, opt, loss = _quadratic()
    with pytest.raises(ConfigError, match="`epochs` must be an integer >= 0, got -1"):
        optimize([x], loss, _one_batch, opt, epochs=-1)
    with pytest.raises(ConfigError, match="`params` is empty"):
        optimize([], loss, _one_batch, opt, epochs=1)
    with pytest.raises(DataError, match="epoch 0 yielded no examples"):
        optimize([x], loss, lambda: [], opt, epochs=1)


def test_the_records_are_frozen():
    x, opt, loss = _quadratic()
    result = optimize([x], loss, _one_batch, opt, epochs=1, size=_unit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.stopped_by = "x"  # type: ignore[misc]
