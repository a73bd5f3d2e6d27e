"""SIGINT and SIGTERM as one exception, so that a stopped run cleans up the same way whichever signal stopped it.

Python turns only SIGINT into :class:`KeyboardInterrupt`; SIGTERM (what ``kill``,
systemd, Slurm and ``docker stop`` send) kills the process on the spot, skipping
every ``finally``: temporary files stay behind and launched ranks are orphaned.
Inside :func:`stop_on_signals` both raise :class:`Interrupted`, a
``KeyboardInterrupt`` that remembers the signal, so ``except KeyboardInterrupt``
code keeps working and the CLI can exit ``128 + signum`` (130 / 143) as shells do.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Interrupted", "STOP_SIGNALS", "stop_on_signals", "exit_code"]

#: The signals that ask a run to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` is the signal and ``exit_code`` the shell's ``128 + signum``.

    Examples
    --------
    >>> err = Interrupted(signal.SIGTERM)
    >>> isinstance(err, KeyboardInterrupt), err.exit_code, str(err)
    (True, 143, 'interrupted by SIGTERM')
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __reduce__(self):
        # Keep the signal when the exception crosses a process boundary.
        return (type(self), (self.signum,))


def exit_code(err: BaseException) -> int:
    """The exit status of a process stopped by ``err``: ``128 + signum``, 130 for a plain KeyboardInterrupt."""
    return err.exit_code if isinstance(err, Interrupted) else 128 + signal.SIGINT


@contextlib.contextmanager
def stop_on_signals(once: bool = False) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread.

    With ``once=True`` only the first signal raises and later ones are ignored, so
    that the cleanup it starts (removing temporary files, stopping ranks) is not cut
    short by the second signal a Ctrl-C in a terminal delivers to a rank (one from
    the terminal, one forwarded by its launcher). The previous handlers are restored
    on exit. Outside the main thread (where Python cannot install handlers) this
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if once:
            for s in STOP_SIGNALS:
                signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
