"""Accepting a Topology, a History or a ``{epoch: Topology}`` dict wherever a function analyses topologies."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import topo

__all__ = ["iter_topologies", "resolve_epochs", "single_topology"]


def resolve_epochs(history: topo.History, epochs) -> list[float]:
    """Recorded epochs named by ``epochs`` (numbers, negative positions, ``"last"``, ``"mid"``), sorted, unique.

    ``None`` means every recorded epoch.
    """
    if epochs is None:
        return list(history.epochs)
    if isinstance(epochs, (str, int, float)):
        epochs = [epochs]
    out = set()
    for e in epochs:
        if isinstance(e, str) and e.strip().lower() in ("mid", "middle"):
            all_e = history.epochs
            out.add(all_e[len(all_e) // 2])
        else:
            out.add(history.resolve_epoch(e.strip() if isinstance(e, str) else e))
    return sorted(out)


def iter_topologies(obj, epochs=None) -> Iterator[tuple[float, topo.Topology]]:
    """``(epoch, topology)`` pairs for a Topology (epoch ``nan``), a History or a dict.

    A History is replayed once, incrementally (O(edges) per epoch), stopping
    after the last epoch asked for; the final epoch alone is read directly.
    """
    if isinstance(obj, topo.Topology):
        if epochs is not None:
            raise ValueError("epochs= only applies to a History or a {epoch: Topology} dict, got a Topology")
        yield math.nan, obj
    elif isinstance(obj, topo.History):
        wanted = resolve_epochs(obj, epochs)
        if wanted == [obj.epochs[-1]]:
            yield wanted[0], obj.final
            return
        todo = set(wanted)
        for e, t in obj:
            if e in todo:
                yield e, t
                todo.discard(e)
                if not todo:
                    return
    elif isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: float(kv[0]))
        if epochs is not None:
            keep = {float(e) for e in (epochs if isinstance(epochs, Iterable) and not isinstance(epochs, str)
                                       else [epochs])}
            missing = keep - {float(k) for k, _ in items}
            if missing:
                raise ValueError(f"epochs {sorted(missing)} are not keys of the dict (keys {[k for k, _ in items]})")
            items = [kv for kv in items if float(kv[0]) in keep]
        for e, t in items:
            if not isinstance(t, topo.Topology):
                raise ValueError(f"dict value for epoch {e!r} is a {type(t).__name__}, expected topo.Topology")
            yield float(e), t
    else:
        raise ValueError(f"expected a topo.Topology, topo.History or {{epoch: Topology}} dict, "
                         f"got {type(obj).__name__}")


def single_topology(obj, epoch="last") -> topo.Topology:
    """One topology: the object itself, or ``epoch`` of a History (default: the last)."""
    if isinstance(obj, topo.Topology):
        return obj
    if isinstance(obj, topo.History):
        return obj.topology(epoch)
    raise ValueError(f"expected a topo.Topology or topo.History, got {type(obj).__name__}")
