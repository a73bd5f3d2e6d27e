"""The exclusive lock of a run directory: one writer at a time, released on exit or crash.

The lock is an ``fcntl.flock`` on a lock file inside the run directory. The
kernel drops it when the holding process exits in any way (``kill -9``
included), so a stale lock file never blocks a later run; while it is held,
the file records who holds it (PID, host, command, start time) so that the
refused process can say so. The file itself stays (removing it would race a
process that has just opened it); an empty lock file means "not held".
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import TopologyError

__all__ = ["RunLock", "RunLockedError"]


class RunLockedError(TopologyError):
    """The run directory is locked by another process (or another :class:`RunDir` of this one).

    ``lock_path`` is the lock file, ``holder`` what it records about the
    holder (``{"pid", "host", "command", "since"}``; empty if unreadable).
    """

    def __init__(self, message: str, lock_path: str = "", holder: dict | None = None) -> None:
        super().__init__(message)
        self.lock_path, self.holder = lock_path, dict(holder or {})

    def __reduce__(self):
        return (type(self), (str(self), self.lock_path, self.holder))


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``path`` (created when missing).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), ".lock")
    >>> a, b = RunLock(path), RunLock(path)
    >>> a.acquire(); a.held
    True
    >>> try:
    ...     b.acquire()
    ... except RunLockedError as err:
    ...     err.holder["pid"] == os.getpid()
    True
    >>> a.release(); b.acquire(); b.release()
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock at once, or raise :class:`RunLockedError` naming the lock file and its holder."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            self._flock(fd, fcntl.LOCK_EX)
        except BlockingIOError:
            os.close(fd)
            raise self._locked_error() from None
        except BaseException:
            os.close(fd)
            raise
        try:
            info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                    "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)  # closing drops the flock
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (and the holder record). Releasing a lock not held does nothing."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # still held: nobody else can be writing their record yet
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the flock

    def check_free(self) -> None:
        """Raise :class:`RunLockedError` if another holder has the lock; never creates the lock file."""
        if self._fd is not None or not self.path.is_file():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            self._flock(fd, fcntl.LOCK_SH)  # shared: probes of several processes never refuse each other
        except BlockingIOError:
            raise self._locked_error() from None
        finally:
            os.close(fd)

    def _flock(self, fd: int, kind: int) -> None:
        # A holder without a record is either a probe (check_free) or an acquirer between its flock and
        # its record: both let go or write within milliseconds, so wait briefly before calling it held.
        deadline = time.monotonic() + 1.0
        while True:
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if "pid" in self.holder() or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def holder(self) -> dict:
        """What the lock file records about its holder (``{}`` when free or unreadable)."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
            info = json.loads(text) if text else {}
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def _locked_error(self) -> RunLockedError:
        info = self.holder()
        who = f"PID {info['pid']}" if "pid" in info else "another process (PID not recorded yet)"
        if info.get("pid") == os.getpid():
            who += " (this process)"
        extra = ", ".join(f"{k} {info[k]}" for k in ("host", "since") if info.get(k))
        cmd = f", running {info['command']!r}" if info.get("command") else ""
        return RunLockedError(
            f"run directory {str(self.path.parent)!r} is in use: its lock {str(self.path)!r} is held by "
            f"{who}{f' ({extra})' if extra else ''}{cmd}; wait for it to finish or choose another directory",
            str(self.path), info)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)  # absent when __init__ raised
        if fd is not None:
            os.close(fd)
