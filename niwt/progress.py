"""Progress of a long stage, in the form that suits where it is shown.

* On a terminal (the stream is a TTY): a tqdm bar, redrawn at most every ``min_interval`` seconds,
  with its postfix (the latest loss) updated at most as often.
* Elsewhere (a file, a pipe, a CI log): a few ``logging`` INFO lines on the ``niwt.progress``
  logger: one when the stage starts, one at roughly every quarter, and one when it ends with how
  far it got and how long it took, e.g. ``train (seen): 12/12 epochs in 8.1 s, loss 0.213``.
* Disabled: nothing at all.

The final line is logged on a terminal too, once the bar is gone, so that a finished stage leaves
one line behind.

Example:
    >>> with StageProgress("train (seen)", 12, unit="epoch") as bar:  # doctest: +SKIP
    ...     for epoch in range(12):
    ...         bar.update(loss=train_one_epoch())
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

from niwt.errors import ConfigError

__all__ = ["StageProgress", "is_terminal"]

log = logging.getLogger(__name__)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an open interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except ValueError:  # a closed stream
        return False


def _format_loss(loss: float | None) -> str:
    return "" if loss is None else f", loss {loss:.4g}"


class StageProgress:
    """Progress of one stage of ``total`` units (epochs, steps, images).

    Args:
        desc: name of the stage, first on every line (``"train (seen)"``).
        total: units the stage will run at most, >= 0.
        unit: singular name of a unit; an ``s`` is added for the count.
        enabled: show anything at all.
        stream: where the bar goes and whose ``isatty`` decides between bar and log lines
            (default ``sys.stderr``).
        min_interval: seconds between two redraws of the bar (and of its postfix), >= 0.
        checkpoints: without a terminal, log a line each time another ``1/checkpoints`` of
            ``total`` is done (4: every 25 %), >= 1.
        initial: units already done when the stage starts (a resumed stage); the time left is
            estimated from the units done since.

    Attributes:
        done: units done so far; loss: the latest loss given; note: said last on the final line.

    Raises:
        ConfigError: for a negative ``total`` or ``min_interval``, or ``checkpoints`` < 1.
    """

    def __init__(self, desc: str, total: int, *, unit: str = "step", enabled: bool = True,
                 stream: TextIO | None = None, min_interval: float = 0.5, checkpoints: int = 4,
                 initial: int = 0) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ConfigError(f"`total` must be an integer >= 0, got {total!r}")
        if not min_interval >= 0:
            raise ConfigError(f"`min_interval` must be >= 0 seconds, got {min_interval!r}")
        if isinstance(checkpoints, bool) or not isinstance(checkpoints, int) or checkpoints < 1:
            raise ConfigError(f"`checkpoints` must be an integer >= 1, got {checkpoints!r}")
        self.desc, self.total, self.unit, self.enabled = desc, total, unit, enabled
        self.min_interval, self.checkpoints = min_interval, checkpoints
        self.done = self._start_done = int(initial)  # a resumed stage starts part-way
        self.loss: float | None = None
        self.note = ""
        self._start = time.perf_counter()
        self._closed = not enabled
        self._next_checkpoint = self.done * checkpoints // total + 1 if total else 1
        self._last_postfix = -float("inf")
        self._bar: tqdm | None = None
        if not enabled:
            return
        stream = sys.stderr if stream is None else stream
        if is_terminal(stream):
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream, mininterval=min_interval,
                             leave=False, dynamic_ncols=True, initial=self.done)
        else:
            log.info("%s: started, %d %ss%s", desc, total, unit, f" ({self.done} done before)" if self.done else "")

    @property
    def seconds(self) -> float:
        """Seconds since the stage started."""
        return time.perf_counter() - self._start

    def update(self, n: int = 1, *, loss: float | None = None) -> None:
        """Advance by ``n`` units; ``loss`` (if given) is shown with the progress."""
        self.update_to(self.done + n, loss=loss)

    def update_to(self, done: int, *, loss: float | None = None) -> None:
        """Set the units done to ``done`` (usable as a callback that reports a running count)."""
        if loss is not None:
            self.loss = loss
        advance, self.done = done - self.done, done
        if self._closed:
            return
        if self._bar is not None:
            self._draw(advance)
        else:
            self._log_checkpoint()

    def _draw(self, advance: int) -> None:
        # The postfix is refreshed only when the bar is due to be redrawn (tqdm stamps its last
        # redraw in ``last_print_t``, in ``time.time()`` seconds), so it is never older than a redraw.
        now = time.time()
        due = now - getattr(self._bar, "last_print_t", self._last_postfix) >= self.min_interval
        if self.loss is not None and (due or self._last_postfix < 0):
            self._bar.set_postfix(loss=f"{self.loss:.4g}", refresh=False)
            self._last_postfix = now
        self._bar.update(advance)

    def _log_checkpoint(self) -> None:
        if self.total == 0 or self.done >= self.total:
            return  # the final line is written by close()
        reached = self.done * self.checkpoints // self.total
        if reached < self._next_checkpoint:
            return
        self._next_checkpoint = reached + 1
        eta = self.seconds * (self.total - self.done) / max(self.done - self._start_done, 1)
        log.info("%s: %d/%d %ss (%d %%) after %.1f s, about %.0f s left%s", self.desc, self.done, self.total,
                 self.unit, 100 * self.done // self.total, self.seconds, eta, _format_loss(self.loss))

    def close(self, note: str | None = None) -> None:
        """End the stage: remove the bar and log how far it got, how long it took and ``note``.

        Args:
            note: said last, in brackets (``"stopped early"``); default the ``note`` attribute.
        """
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        note = self.note if note is None else note
        suffix = f" ({note})" if note else ""
        log.info("%s: %d/%d %ss in %.1f s%s%s", self.desc, self.done, self.total, self.unit, self.seconds,
                 _format_loss(self.loss), suffix)

    def abort(self) -> None:
        """End the stage after a failure: remove the bar and log nothing."""
        if self._bar is not None:
            self._bar.close()
        self._closed = True

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
