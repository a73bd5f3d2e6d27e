"""The evolution of a topology: births and deaths of edges per epoch and layer."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..errors import ParameterError, ParameterTypeError, TopologyError
from . import history_files
from .alloc import copy
from .change import LayerChange
from .keyset import apply, contains, is_increasing, linear_keys, locate, merge
from .layer import LayerGraph
from .serialize import index_dtype
from .topology import Topology

__all__ = ["LayerChange", "History", "HistoryWeights", "parse_history_weights"]

# numpy (the .npz) has no bfloat16, so half precision means float16.
_WEIGHT_DTYPES = {"float32": torch.float32, "f32": torch.float32, "float16": torch.float16, "f16": torch.float16}


@dataclass(frozen=True)
class HistoryWeights:
    """Which updates record weights (``every``: each ``every``-th; 0: none) and in which dtype."""

    every: int = 1
    dtype: torch.dtype = torch.float32

    def due(self, update: int) -> bool:
        """Whether the ``update``-th update (1-based) records its weights."""
        return self.every > 0 and update % self.every == 0


def parse_history_weights(spec) -> HistoryWeights:
    """Parse ``"all"``, ``"every:K"``, ``"none"`` (or an int ``K``), optionally suffixed ``":float16"``.

    Examples
    --------
    >>> parse_history_weights("every:5:float16")
    HistoryWeights(every=5, dtype=torch.float16)
    >>> parse_history_weights("none").every, parse_history_weights("all").dtype
    (0, torch.float32)
    """
    if isinstance(spec, HistoryWeights):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = f"every:{spec}"
    if not isinstance(spec, str):
        raise TopologyError(f"history weights must be 'all', 'every:K' or 'none' (optionally ':float16'), "
                            f"got {spec!r}")
    parts = spec.strip().lower().split(":")
    dtype = torch.float32
    if len(parts) > 1 and parts[-1] in _WEIGHT_DTYPES:
        dtype = _WEIGHT_DTYPES[parts.pop()]
    if parts == ["all"]:
        return HistoryWeights(1, dtype)
    if parts == ["none"]:
        return HistoryWeights(0, dtype)
    if len(parts) == 2 and parts[0] == "every" and parts[1].isdigit() and int(parts[1]) >= 1:
        return HistoryWeights(int(parts[1]), dtype)
    raise TopologyError(f"history weights must be 'all', 'every:K' (K >= 1) or 'none', optionally followed by "
                        f"':float16', got {spec!r}")


class _Events(NamedTuple):
    """One layer's births and deaths as a History holds them: ``[2, k]`` rows of the narrowest
    index dtype the topology's sizes allow (int32 below 2**31 neurons: half of LayerChange's int64)."""

    births: torch.Tensor
    deaths: torch.Tensor
    seconds: float

    def change(self) -> LayerChange:
        return LayerChange(self.births.long(), self.deaths.long(), self.seconds)


@dataclass
class _Step:
    epoch: float
    changes: list[_Events]
    weights: list[torch.Tensor | None] | None
    step: int | None = None


def _keys_of(edges: torch.Tensor, n_in: int) -> torch.Tensor:
    """Sorted keys ``dst * n_in + src`` of a ``[2, k]`` edge list (sorted only if it is not already)."""
    keys = linear_keys(edges[0], edges[1], n_in)
    return keys if is_increasing(keys, strict=False) else torch.sort(keys).values


def _topology(layers: Sequence[LayerGraph], keys_list: Sequence[torch.Tensor]) -> Topology:
    """Unweighted layers of the sizes of ``layers`` holding the sorted, checked ``keys_list``."""
    return Topology([LayerGraph._trusted_keys(g.n_in, g.n_out, k) for g, k in zip(layers, keys_list)])


class History:
    """Epoch-by-epoch record of an evolving :class:`Topology`.

    Epoch 0 is the initial topology; :meth:`record` appends the births and
    deaths of each later evolution step (and, optionally, the weights of every
    layer after it). Any epoch's topology can be rebuilt, edge lifetimes
    extracted for timelines, and the whole saved pickle-free.

    Examples
    --------
    >>> import topo, torch
    >>> t0 = topo.from_edges([2, 2], [([0, 1], [0, 1])])
    >>> h = topo.History(t0)
    >>> h.record(1, [topo.LayerChange(births=[[1], [0]], deaths=[[0], [0]])])
    >>> h.epochs, h.topology(1)[0].src.tolist()
    ([0.0, 1.0], [1, 1])
    """

    def __init__(self, initial: Topology, meta: dict | None = None) -> None:
        if not isinstance(initial, Topology):
            raise ParameterTypeError(f"initial must be a Topology, got {type(initial).__name__}")
        self.initial = initial.copy()
        self.meta = dict(meta or {})
        self._steps: list[_Step] = []
        # The edges after the last step as sorted keys (8 B per edge): what record() checks changes
        # against and merges them into, without a full Topology (16 B per edge) rebuilt per step.
        self._last = [g.keys().clone() for g in self.initial.layers]
        self._index_dtype = torch.int32 if index_dtype(self.initial.sizes) == np.int32 else torch.int64

    # -- recording ------------------------------------------------------------------
    def record(self, epoch: float, changes: Sequence[LayerChange],
               weights: Sequence[torch.Tensor | None] | None = None, step: int | None = None, *,
               copy_changes: bool = True) -> None:
        """Append one evolution step; ``weights`` (one tensor per layer) are of the topology after it.

        ``step``: optimizer steps of training before this update (``None``: unknown). With
        step-wise schedules ``epoch`` is fractional (``step / steps_per_epoch``).
        ``copy_changes=False`` keeps the births and deaths tensors themselves instead of copies (the
        :class:`~topo.Evolver` hands over fresh ones): the caller must not modify them afterwards.
        """
        epoch = float(epoch)
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0):
            raise TopologyError(f"step must be a non-negative int or None, got {step!r}")
        if not math.isfinite(epoch) or epoch <= self.epochs[-1]:
            raise ParameterError(f"epoch {epoch} must be finite and after the last recorded epoch {self.epochs[-1]}")
        changes = list(changes)
        if len(changes) != len(self.initial):
            raise TopologyError(f"got changes for {len(changes)} layers, the topology has {len(self.initial)}")
        for k, c in enumerate(changes):
            if not isinstance(c, LayerChange):
                raise ParameterTypeError(f"changes[{k}] is a {type(c).__name__}, expected LayerChange")
        changes = [LayerChange(c.births.cpu(), c.deaths.cpu(), float(c.seconds)) for c in changes]
        new_keys = self._apply_keys(self.initial.layers, self._last, changes)
        # Own copies (narrowed to the index dtype, which copies anyway): callers pass live tensors
        # (reused buffers) that training keeps updating in place, which would rewrite this record.
        events = [_Events(self._held(c.births, copy_changes), self._held(c.deaths, copy_changes), c.seconds)
                  for c in changes]
        counts = [k.numel() for k in new_keys]
        if weights is not None:
            weights = [None if w is None else copy(torch.as_tensor(w)) for w in weights]
            if len(weights) != len(counts):
                raise TopologyError(f"got weights for {len(weights)} layers, the topology has {len(counts)}")
            for k, (w, e) in enumerate(zip(weights, counts)):
                if w is not None and w.shape != (e,):
                    raise TopologyError(f"weights of layer {k} have shape {tuple(w.shape)}, expected ({e},)")
        self._steps.append(_Step(epoch, events, weights, None if step is None else int(step)))
        self._last = new_keys

    def _held(self, e: torch.Tensor, copy_changes: bool) -> torch.Tensor:
        if e.dtype != self._index_dtype:
            return e.to(self._index_dtype)
        return copy(e) if copy_changes else e

    @staticmethod
    def _apply(t: Topology, changes: Sequence[LayerChange]) -> Topology:
        """The topology ``t`` after ``changes`` (unweighted)."""
        return _topology(t.layers, History._apply_keys(t.layers, [g.keys() for g in t.layers], changes))

    @staticmethod
    def _apply_keys(layers: Sequence[LayerGraph], keys_list: Sequence[torch.Tensor],
                    changes: Sequence[LayerChange | _Events]) -> list[torch.Tensor]:
        """Sorted keys of each layer after ``changes``, checked: deaths alive, births new.

        One walk over the sorted keys drops the deaths and merges the births in, O(E + k log k) per
        layer (the sort only for change lists out of order; topo's rules give them sorted); when it
        finds a bad change, the step-by-step checks below name it.
        """
        out = []
        for k, (g, keys, c) in enumerate(zip(layers, keys_list, changes)):
            for name, e in (("births", c.births), ("deaths", c.deaths)):
                # An index out of range would alias another edge through the key dst * n_in + src.
                for row, n, what in ((0, g.n_in, "src"), (1, g.n_out, "dst")) if e.shape[1] else ():
                    lo, hi = int(e[row].min()), int(e[row].max())
                    if lo < 0 or hi >= n:
                        raise TopologyError(
                            f"layer {k}: {name} {what} index {lo if lo < 0 else hi} out of range [0, {n})")
            dk, bk = _keys_of(c.deaths, g.n_in), _keys_of(c.births, g.n_in)
            fast = apply(keys, dk, bk) if dk.numel() or bk.numel() else keys
            if fast is not None:  # one walk; where it fails the checks below name the bad edge
                out.append(fast)
                continue
            if c.deaths.shape[1]:
                if not is_increasing(dk):
                    raise TopologyError(f"layer {k}: deaths list an edge twice")
                pos = locate(keys, dk)
                if keys.numel() == 0 or int(pos[-1]) >= keys.numel() or \
                        not bool((keys[pos.clamp(max=keys.numel() - 1)] == dk).all()):
                    raise TopologyError(f"layer {k}: a death names an edge that is not alive")
                keep = torch.ones(keys.numel(), dtype=torch.bool)
                keep[pos] = False
                keys = torch.from_numpy(keys.numpy()[keep.numpy()])
            if c.births.shape[1]:
                hit = torch.zeros(bk.numel(), dtype=torch.bool)
                hit[1:] = bk[1:] == bk[:-1]
                hit |= contains(keys, bk)
                if bool(hit.any()):
                    bad = int(bk[hit.nonzero()[0, 0]])
                    raise TopologyError(f"layer {k}: births clash with live edges (duplicate edge "
                                        f"(src={bad % g.n_in}, dst={bad // g.n_in}))")
                keys = merge(keys, bk)[0]
            out.append(keys)
        return out

    # -- reading ----------------------------------------------------------------------
    @property
    def epochs(self) -> list[float]:
        return [0.0] + [s.epoch for s in self._steps]

    @property
    def steps(self) -> list[int | None]:
        """Optimizer steps before each recorded update (``0`` for the initial topology, ``None`` if unknown)."""
        return [0] + [s.step for s in self._steps]

    @property
    def recorded_nbytes(self) -> int:
        """Bytes held for the recorded steps: births and deaths (``[2, k]`` rows, int32 below 2**31
        neurons) and the weights kept; what grows with every update (the initial topology not counted).

        Examples
        --------
        >>> import topo
        >>> h = topo.History(topo.from_edges([2, 2], [([0, 1], [0, 1])]))
        >>> h.record(1, [topo.LayerChange(births=[[1], [0]], deaths=[[0], [0]])])
        >>> h.recorded_nbytes                  # two int32 pairs
        16
        """
        n = 0
        for s in self._steps:
            n += sum(e.births.nbytes + e.deaths.nbytes for e in s.changes)
            n += sum(w.nbytes for w in s.weights or () if w is not None)
        return n

    @property
    def num_layers(self) -> int:
        return len(self.initial)

    def __len__(self) -> int:
        return len(self._steps) + 1

    def changes(self, epoch: float) -> list[LayerChange]:
        """The per-layer changes recorded at ``epoch`` (not 0), as int64 :class:`LayerChange` s."""
        return [e.change() for e in self._steps[self._step_index(epoch)].changes]

    def _step_index(self, epoch: float) -> int:
        for i, s in enumerate(self._steps):
            if s.epoch == float(epoch):
                return i
        raise ParameterError(f"epoch {epoch!r} is not in this history (epochs {self._span()})")

    def _span(self) -> str:
        e = self.epochs
        return f"{e[0]:g}..{e[-1]:g}, {len(e)} in all" if len(e) > 1 else "0 only"

    def resolve_epoch(self, epoch) -> float:
        """Map ``"last"``, negative positions (``-1``) or an epoch number to a recorded epoch."""
        e = self.epochs
        if epoch in (None, "last"):
            return e[-1]
        if isinstance(epoch, str):
            try:
                epoch = float(epoch)
            except ValueError:
                raise ParameterError(f"epoch {epoch!r} is neither a number nor 'last'") from None
        if epoch < 0 and -len(e) <= epoch and float(epoch).is_integer():
            return e[int(epoch)]
        if float(epoch) not in e:
            raise ParameterError(f"epoch {epoch!r} is not in this history (epochs {self._span()})")
        return float(epoch)

    def __iter__(self) -> Iterator[tuple[float, Topology]]:
        """``(epoch, topology)`` pairs, rebuilt incrementally (O(edges) per epoch)."""
        layers = self.initial.layers
        keys = [g.keys() for g in layers]
        yield 0.0, self.initial.copy()
        for s in self._steps:
            keys = self._apply_keys(layers, keys, s.changes)
            t = _topology(layers, keys)
            yield s.epoch, (t.with_weights(self._clone(s.weights)) if s.weights is not None else t)

    @staticmethod
    def _clone(weights):
        # Hand out copies so a caller editing a returned topology cannot edit the record.
        return [None if w is None else w.clone() for w in weights]

    def topology(self, epoch=None) -> Topology:
        """The topology at ``epoch`` (a recorded epoch, ``-1``, ``"last"``/``None``), with its weights if recorded."""
        target = self.resolve_epoch(epoch)
        if target == self.epochs[-1] and self._steps:
            s = self._steps[-1]
            last = _topology(self.initial.layers, [k.clone() for k in self._last])  # the record stays its own
            return last.with_weights(self._clone(s.weights)) if s.weights is not None else last
        for e, t in self:
            if e == target:
                return t
        raise AssertionError("unreachable")

    def weights(self, epoch=None) -> list[torch.Tensor | None] | None:
        """Copies of the per-layer weights recorded at ``epoch`` (``None`` if none were), cheaply.

        Each tensor is aligned with the edges of ``topology(epoch)``; no topology
        is rebuilt. Epoch 0 gives the initial topology's weights.
        """
        target = self.resolve_epoch(epoch)
        if target == self.epochs[0]:
            ws = [g.weight for g in self.initial.layers]
            return None if all(w is None for w in ws) else self._clone(ws)
        s = self._steps[self._step_index(target)]
        return None if s.weights is None else self._clone(s.weights)

    @property
    def final(self) -> Topology:
        return self.topology("last")

    def frame(self):
        """Per step and layer: ``epoch, layer, births, deaths, num_edges, seconds`` and ``step`` (the
        optimizer step of the update, NaN where unknown) as a pandas DataFrame."""
        import pandas as pd

        rows = [{"epoch": 0.0, "layer": k, "births": g.num_edges, "deaths": 0, "num_edges": g.num_edges,
                 "seconds": 0.0, "step": 0.0} for k, g in enumerate(self.initial.layers)]
        edges = [g.num_edges for g in self.initial.layers]
        for s in self._steps:
            for k, c in enumerate(s.changes):
                edges[k] += c.births.shape[1] - c.deaths.shape[1]
                rows.append({"epoch": s.epoch, "layer": k, "births": c.births.shape[1],
                             "deaths": c.deaths.shape[1], "num_edges": edges[k], "seconds": c.seconds,
                             "step": math.nan if s.step is None else float(s.step)})
        return pd.DataFrame(rows)

    def edge_intervals(self, layer: int) -> dict[str, np.ndarray]:
        """Alive intervals ``[start, end)`` of every edge ever in ``layer``.

        Returns numpy arrays ``src``, ``dst``, ``start``, ``end`` (``end`` is
        ``inf`` for edges alive at the last epoch), sorted by (dst, src, start).
        An edge that dies and is reborn has one row per life.
        """
        if not 0 <= layer < self.num_layers:
            raise ParameterError(f"layer {layer} out of range [0, {self.num_layers})")
        g0 = self.initial[layer]
        n_in = g0.n_in
        keys, times, kinds = [g0.keys()], [torch.zeros(g0.num_edges, dtype=torch.float64)], \
            [torch.ones(g0.num_edges, dtype=torch.int8)]
        for s in self._steps:
            c = s.changes[layer]
            for e, kind in ((c.deaths, 0), (c.births, 1)):
                keys.append(linear_keys(e[0], e[1], n_in))
                times.append(torch.full((e.shape[1],), s.epoch, dtype=torch.float64))
                kinds.append(torch.full((e.shape[1],), kind, dtype=torch.int8))
        k, t, d = (torch.cat(x).numpy() for x in (keys, times, kinds))
        order = np.lexsort((d, t, k))  # deaths before births at the same epoch
        k, t, d = k[order], t[order], d[order]
        b = np.flatnonzero(d == 1)
        nxt = b + 1
        closed = np.zeros(b.size, dtype=bool)
        ok = nxt < k.size
        closed[ok] = (k[nxt[ok]] == k[b[ok]]) & (d[nxt[ok]] == 0)
        end = np.full(b.size, np.inf)
        end[closed] = t[nxt[closed]]
        kb = k[b]
        return {"src": kb % n_in, "dst": kb // n_in, "start": t[b], "end": end}

    # -- persistence (topo.graph.history_files) ---------------------------------------
    def save(self, path: str | os.PathLike, append: bool | None = None) -> None:
        """Write to a pickle-free ``.npz`` (format ``topo.history``); see :meth:`load`.

        The layout is one group of arrays per step (``step000001.epoch``,
        ``step000001.layer0.births``, ...), so saving again after more steps
        *appends* the new groups to the zip instead of rewriting it: the
        old central directory stays in place and a new one follows the new
        arrays, so a crash mid-append leaves the previous history readable
        (:meth:`load` finds it). ``append=None`` appends when ``path`` holds
        a prefix of this history (checked by chained digests), ``False``
        always rewrites (atomically), ``True`` insists.
        """
        history_files.save(self, path, append)

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`save` (either layout); corrupt files raise :class:`TopologyFormatError`."""
        return history_files.load(cls, path)

    def __repr__(self) -> str:
        return f"History(sizes={list(self.initial.sizes)}, epochs={self._span()})"
