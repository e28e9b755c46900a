"""Fault injection for testing that killed runs resume exactly.

Long stages call :func:`failpoint` with a name at every point where a run may be killed and must
resume (after each training epoch, after each finished stage, while the run directory is written).
When the environment variable ``NIWT_FAILPOINT`` equals that name, the process kills itself with
SIGKILL there, as an out-of-memory killer or a cluster's pre-emption would: no cleanup runs. With
the variable unset (always, outside tests) a failpoint does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["ENV", "failpoint"]

ENV = "NIWT_FAILPOINT"

log = logging.getLogger(__name__)


def failpoint(name: str) -> None:
    """SIGKILL this process if ``NIWT_FAILPOINT`` names this point."""
    if os.environ.get(ENV) == name:
        log.warning("failpoint %r: killing the process with SIGKILL", name)
        os.kill(os.getpid(), signal.SIGKILL)
