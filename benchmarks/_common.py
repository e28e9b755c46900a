"""Helpers shared by the benchmark scripts: memory peaks, run environment, result output.

Not part of the ``niwt`` package; the scripts next to this file import it directly.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Iterable

import torch

MIB = 1024.0 * 1024.0


def median(values: Iterable[float]) -> float:
    """Median of ``values`` (``nan`` when empty)."""
    values = list(values)
    return statistics.median(values) if values else float("nan")


def _status_kib(field: str) -> int | None:
    """A ``VmXXX`` field of ``/proc/self/status`` in KiB (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib() -> float:
    """Current resident set size of this process in MiB."""
    kib = _status_kib("VmRSS")
    if kib is None:  # not Linux: the lifetime peak is the best available figure
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return kib / 1024.0


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set size (MiB) since the last :func:`reset_peak_rss` (or since start)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return kib / 1024.0


class PeakMemory:
    """Peak resident memory used inside a ``with`` block, above the RSS at entry (``extra_mib``).

    Uses the kernel's resettable high-water mark when it can (exact); otherwise samples the RSS
    every ``interval`` seconds in a background thread (``method == "sampled"``).
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.extra_mib = float("nan")
        self.peak_mib = float("nan")
        self.method = "hwm"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0.0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled = max(self._sampled, rss_mib())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start_mib = rss_mib()
        if not reset_peak_rss():
            self.method = "sampled"
            self._sampled = self.start_mib
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mib = max(self._sampled, rss_mib())
        else:
            self.peak_mib = peak_rss_mib()
        self.extra_mib = max(0.0, self.peak_mib - self.start_mib)


def environment() -> dict:
    """Where and with what the numbers were measured."""
    return {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def log(msg: str = "") -> None:
    """Human-readable progress and tables go to stderr; stdout ends with the JSON result."""
    print(msg, file=sys.stderr, flush=True)


def emit(result: dict) -> None:
    """Print ``result`` as one JSON object on the last line of stdout."""
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    sys.stdout.flush()


def fmt_table(header: list[str], rows: list[list[object]]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)
