"""Measurement helpers shared by the benchmarks."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["RssPeak", "rss_bytes", "write_json"]


def write_json(path, obj) -> None:
    """Write a benchmark's results as indented JSON, atomically (no half-written file)."""
    import json

    from ..utils.atomic import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=1)


def rss_bytes() -> int:
    """Resident set size of this process now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class RssPeak:
    """Peak resident set over a ``with`` block, sampled in a thread every ``every`` seconds.

    After the block: ``base`` (RSS on entry), ``peak`` and ``growth = peak - base``.
    Sampling, not ru_maxrss, because ru_maxrss is a process-lifetime maximum.
    """

    def __init__(self, every: float = 0.005) -> None:
        self.every, self.base, self.peak, self.growth = every, 0, 0, 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.every)

    def __enter__(self) -> RssPeak:
        self.base = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.growth = self.peak - self.base
