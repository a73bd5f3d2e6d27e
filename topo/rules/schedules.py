"""When a rule runs and which ζ it uses: update cadence, decay of ζ, early stop."""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

from ..errors import ParameterError, ParameterTypeError

__all__ = ["Schedule", "DECAYS"]


def _constant(p: float) -> float:
    return 1.0


def _cosine(p: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * p))


def _linear(p: float) -> float:
    return 1.0 - p


#: Decay curves of ζ: factor of the base ζ as a function of progress ``p ∈ [0, 1]``.
DECAYS: dict[str, Callable[[float], float]] = {"constant": _constant, "cosine": _cosine, "linear": _linear}


class Schedule:
    """The cadence of evolution and the ζ of each update.

    Parameters
    ----------
    decay : {"constant", "cosine", "linear"} or callable
        ζ at position ``t`` is ``base_ζ · decay(p)`` with progress
        ``p = t / (stop_at · total)`` clipped to ``[0, 1]``: ``cosine`` is
        RigL's ``(1 + cos πp) / 2``, ``linear`` is ``1 - p``. A callable maps
        ``p`` to a factor in ``[0, 1]``.
    every : "epoch" or int
        Update at the end of every epoch (positions count epochs), or every
        ``every`` optimizer steps (positions count steps).
    stop_at : float in (0, 1]
        No updates at or after position ``stop_at · total`` (RigL: 0.75). With
        ``stop_at=1`` and ``every="epoch"`` that skips the last epoch, as SET does,
        once ``total`` is known (:class:`topo.Trainer` sets it to the run's length);
        without ``total`` every epoch is due.
    total : int, optional
        Training length in the units of ``every`` (epochs or steps); needed by
        a decay other than ``constant`` and by ``stop_at < 1``. Settable later
        (``schedule.total = n``) by a trainer that knows it.

    Examples
    --------
    >>> s = Schedule(decay="cosine", every=100, stop_at=0.75, total=1000)
    >>> s.due(step=100), s.due(step=150), s.due(step=800)
    (True, False, False)
    >>> round(s.zeta(0.3, 375), 4)  # half way to the stop: (1 + cos(pi/2)) / 2
    0.15
    """

    def __init__(self, decay: str | Callable[[float], float] = "constant", every: str | int = "epoch",
                 stop_at: float = 1.0, total: int | None = None) -> None:
        if isinstance(decay, str):
            if decay not in DECAYS:
                raise ParameterError(f"unknown decay {decay!r}: expected one of {sorted(DECAYS)} or a callable")
        elif not callable(decay):
            raise ParameterTypeError(f"decay must be one of {sorted(DECAYS)} or a callable, got {decay!r}")
        if every != "epoch" and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ParameterError(f"every must be 'epoch' or a positive int (optimizer steps), got {every!r}")
        if isinstance(stop_at, bool) or not isinstance(stop_at, Real) or not 0.0 < float(stop_at) <= 1.0:
            raise ParameterError(f"stop_at must be a fraction in (0, 1], got {stop_at!r}")
        self.decay: str | Callable[[float], float] = decay
        self.every: str | int = every
        self.stop_at: float = float(stop_at)
        self.total = total

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, total: int | None) -> None:
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
            raise ParameterError(f"total must be a positive int (epochs or steps), got {total!r}")
        self._total = total

    @property
    def per_epoch(self) -> bool:
        return self.every == "epoch"

    def _horizon(self, need: str) -> float | None:
        if self._total is None:
            if need:
                raise ParameterError(f"{need} needs the schedule's total training length: "
                                     f"Schedule(..., total=n) or schedule.total = n")
            return None
        return self.stop_at * self._total

    def due(self, *, epoch: float | None = None, step: int | None = None) -> bool:
        """Whether an update is due after ``epoch`` epochs (``every="epoch"``) or ``step`` optimizer steps."""
        position: float
        if isinstance(self.every, str):  # "epoch", the only string __init__ accepts
            if epoch is None:
                return False
            position = epoch
        else:
            if step is None or step <= 0 or step % self.every:
                return False
            position = step
        horizon = self._horizon("stop_at < 1" if self.stop_at < 1 else "")
        return horizon is None or position < horizon

    def last_position(self) -> float | None:
        """Position of the last update :meth:`due` allows (``None`` without ``total`` or when none is due).

        Examples
        --------
        >>> Schedule(total=10).last_position(), Schedule(every=100, stop_at=0.75, total=1000).last_position()
        (9, 700)
        """
        if self._total is None:
            return None
        horizon = self.stop_at * self._total
        below = math.ceil(horizon) - 1  # the largest whole position < horizon
        if isinstance(self.every, str):  # per epoch
            return below if below >= 1 else None
        last = self.every * (below // self.every)
        return last if last >= self.every else None

    def progress(self, position: float) -> float | None:
        """``position / last_position()`` clipped to ``[0, 1]``: ``k / n`` at the ``k``-th of ``n`` updates.

        Rules whose edge budget follows a schedule (:class:`~topo.rules.GMP`)
        read it; ``None`` when the schedule has no ``total``.

        Examples
        --------
        >>> s = Schedule(total=5)  # updates after epochs 1..4
        >>> [s.progress(e) for e in (1, 2, 4)]
        [0.25, 0.5, 1.0]
        """
        last = self.last_position()
        if last is None:
            return None
        return min(1.0, max(0.0, float(position) / last))

    def zeta(self, base: float, position: float) -> float:
        """ζ of the update at ``position`` (epochs or steps, as ``every`` says)."""
        if self.decay == "constant":
            return base
        horizon = self._horizon(f"decay={self.decay!r}")
        assert horizon is not None  # _horizon raises rather than answer None when a need is named
        p = min(1.0, max(0.0, position / horizon))
        factor = float(DECAYS[self.decay](p) if isinstance(self.decay, str) else self.decay(p))
        if not 0.0 <= factor <= 1.0:
            raise ParameterError(f"the decay returned {factor!r} at progress {p}, expected a factor in [0, 1]")
        return base * factor

    def state_dict(self) -> dict:
        return {"total": self._total}

    def load_state_dict(self, state: dict) -> None:
        self.total = state.get("total")

    def __repr__(self) -> str:
        decay = self.decay if isinstance(self.decay, str) else getattr(self.decay, "__name__", "custom")
        return f"Schedule(decay={decay!r}, every={self.every!r}, stop_at={self.stop_at}, total={self._total})"
