"""Progress: a few log lines without a terminal, a throttled bar on one, nothing when disabled."""

from __future__ import annotations

import io
import logging
import sys

import pytest
import torch

from niwt.errors import ConfigError
from niwt.progress import StageProgress, is_terminal
from niwt.training import optimize

LOGGER = "niwt.progress"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture()
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_without_a_terminal_a_1000_step_stage_writes_a_few_lines(records):
    stream = io.StringIO()
    with StageProgress("transfer (fast)", 1000, unit="step", stream=stream) as bar:
        for i in range(1000):
            bar.update(loss=1.0 / (i + 1))
    lines = _messages(records)
    assert 3 <= len(lines) <= 6, lines
    assert lines[0] == "transfer (fast): started, 1000 steps"
    assert lines[1].startswith("transfer (fast): 250/1000 steps (25 %) after ")
    assert lines[-1].startswith("transfer (fast): 1000/1000 steps in ") and lines[-1].endswith("s, loss 0.001")
    assert stream.getvalue() == ""  # no bar


def test_checkpoints_fall_on_the_quarters(records):
    with StageProgress("train (seen)", 8, unit="epoch", stream=io.StringIO()) as bar:
        for _ in range(8):
            bar.update()
    done = [m.split(": ")[1].split(" ")[0] for m in _messages(records)]
    assert done == ["started,", "2/8", "4/8", "6/8", "8/8"]  # 25, 50, 75 %, then the final line


def test_a_jump_logs_one_checkpoint_and_update_to_counts_absolutely(records):
    with StageProgress("importance", 100, unit="image", stream=io.StringIO()) as bar:
        bar.update_to(60)  # past 25 % and 50 % at once: one line
        bar.update_to(100)
    lines = _messages(records)
    assert len(lines) == 3 and "60/100 images (60 %)" in lines[1] and "100/100 images in" in lines[2]


def test_disabled_writes_nothing(records):
    stream = FakeTerminal()
    with StageProgress("train", 1000, stream=stream, enabled=False) as bar:
        for _ in range(1000):
            bar.update(loss=0.5)
    assert _messages(records) == [] and stream.getvalue() == ""


def test_the_final_line_says_how_far_and_why_it_stopped(records):
    bar = StageProgress("transfer (fast)", 400, stream=io.StringIO())
    bar.update(137, loss=0.25)
    bar.close("stopped early")
    bar.close()  # closing twice writes once
    last = _messages(records)[-1]
    assert last.startswith("transfer (fast): 137/400 steps in ") and last.endswith(", loss 0.25 (stopped early)")
    assert len(_messages(records)) == 3  # started, 137/400 (past 25 %), the final line


def test_a_failure_inside_the_stage_writes_no_final_line(records):
    with pytest.raises(RuntimeError), StageProgress("train", 10, stream=io.StringIO()) as bar:
        bar.update()
        raise RuntimeError("boom")
    assert _messages(records) == ["train: started, 10 steps"]


def test_on_a_terminal_the_bar_is_throttled(records):
    stream = FakeTerminal()
    with StageProgress("train", 1000, stream=stream, min_interval=60.0) as bar:
        for _ in range(1000):
            bar.update(loss=0.5)
    assert stream.getvalue().count("\r") <= 4  # first draw and the clearing on close, no redraw per step
    assert len(_messages(records)) == 1 and "1000/1000 steps in" in _messages(records)[0]


def test_is_terminal():
    closed = io.StringIO()
    closed.close()  # its isatty() raises ValueError
    assert is_terminal(FakeTerminal())
    assert not is_terminal(io.StringIO()) and not is_terminal(closed) and not is_terminal(object())


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="`total` must be an integer >= 0, got -1"):
        StageProgress("x", -1)
    with pytest.raises(ConfigError, match="`min_interval`"):
        StageProgress("x", 1, min_interval=-1.0)
    with pytest.raises(ConfigError, match="`checkpoints`"):
        StageProgress("x", 1, checkpoints=0)


def test_the_loop_logs_a_few_lines_for_a_long_run(records, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimize([x], lambda _: (x - 3.0) ** 2, lambda: [None], torch.optim.SGD([x], lr=0.01), epochs=1000,
             size=lambda _: 1, progress=True, desc="quadratic", unit="step")
    lines = _messages(records)
    assert 3 <= len(lines) <= 6 and lines[-1].startswith("quadratic: 1000/1000 steps in ")
    assert sys.stderr.getvalue() == ""
