"""Grow criteria: which empty positions of a layer get new edges.

A grow criterion is called as ``criterion(graph, n, context, exclude)`` on the
layer *after* pruning and returns ``n`` sorted int64 keys (``dst * n_in +
src``) that are neither edges of ``graph`` nor in ``exclude`` (the keys just
pruned: rules never regrow an edge in the step that killed it).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from ..errors import ParameterError, TopologyError
from ..graph.keyset import contains, is_increasing, union
from ..graph.layer import LayerGraph
from ..graph.sampling import sample_keys
from .base import Criterion, RuleContext
from .scores import DEFAULT_BLOCK_BYTES, MODES, PairScores, in_sorted

__all__ = ["GrowCriterion", "RandomGrow", "CosineGrow", "GradientGrow", "SequentialGrow"]

#: How a scored grow criterion searches the free positions (:data:`topo.rules.scores.MODES`).
GrowMode = Literal["exact", "approx", "pool", "pool-uniform"]


def _taken(graph: LayerGraph, exclude: torch.Tensor, *more: torch.Tensor) -> torch.Tensor:
    """Sorted keys of the edges plus ``exclude`` and ``more``: merged, not re-sorted (all are sorted or small)."""
    return union(graph.keys(), exclude, *more)


def _without(keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``keys[~mask]`` (numpy's boolean indexing on CPU: several times torch's)."""
    if not bool(mask.any()):
        return keys
    if keys.device.type == "cpu":
        return torch.from_numpy(keys.numpy()[~mask.numpy()])
    return keys[~mask]


class GrowCriterion(Criterion):
    """Base of grow criteria."""

    def __call__(self, graph: LayerGraph, n: int, context=None, exclude=None) -> torch.Tensor:
        context = RuleContext.coerce(context)
        exclude = (torch.empty(0, dtype=torch.int64) if exclude is None
                   else torch.as_tensor(exclude, dtype=torch.int64).reshape(-1))
        if not is_increasing(exclude):  # a Rule passes its pruned keys sorted and unique
            exclude = torch.unique(exclude)
        exclude = _without(exclude, contains(graph.keys(), exclude))  # edges are excluded anyway
        n = int(n)
        free = graph.n_in * graph.n_out - graph.num_edges - exclude.numel()
        if n < 0 or n > free:
            raise TopologyError(f"cannot grow {n} edges in a {graph.n_in}->{graph.n_out} layer "
                                f"with {free} free positions")
        if n == 0:
            return torch.empty(0, dtype=torch.int64)
        born = torch.as_tensor(self.select(graph, n, context, exclude), dtype=torch.int64)
        return born if is_increasing(born, strict=False) else torch.sort(born).values

    def select(self, graph: LayerGraph, n: int, context: RuleContext, exclude: torch.Tensor) -> torch.Tensor:
        """``n`` new keys; subclasses implement it (``exclude`` is sorted and unique)."""
        raise NotImplementedError


class RandomGrow(GrowCriterion):
    """Grow uniformly at random among the free positions (SET), in ``O(E)`` memory."""

    def select(self, graph, n, context, exclude):
        # The edges and `exclude` are disjoint (GrowCriterion.__call__): rejected against each, no union built.
        return sample_keys(graph.n_in * graph.n_out, n, context.generator, exclude=(graph.keys(), exclude))


class _ScoredGrow(GrowCriterion):
    """Top-``n`` free positions by a bilinear score, exact (blockwise) or over a random pool."""

    def __init__(self, mode: GrowMode = "exact", pool_factor: float = 10.0,
                 block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        if mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(pool_factor, bool) or not isinstance(pool_factor, (int, float)) \
                or not math.isfinite(pool_factor) or pool_factor < 1:
            raise ParameterError(f"pool_factor must be a number >= 1, got {pool_factor!r}")
        if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes <= 0:
            raise ParameterError(f"block_bytes must be a positive int, got {block_bytes!r}")
        self.mode, self.pool_factor, self.block_bytes = mode, float(pool_factor), block_bytes

    def scores(self, context: RuleContext) -> PairScores:
        raise NotImplementedError

    def _top(self, graph, n, context, exclude):
        return self.scores(context).top_nonedges(graph, n, exclude, mode=self.mode, pool_factor=self.pool_factor,
                                                 generator=context.generator, block_bytes=self.block_bytes)

    def select(self, graph, n, context, exclude):
        return self._top(graph, n, context, exclude)


class CosineGrow(_ScoredGrow):
    """Grow the free positions whose endpoints' activations have the highest ``|cos|`` (CTRE).

    Parameters
    ----------
    mode : {"exact", "approx", "pool", "pool-uniform"}
        ``"exact"`` ranks every free position in blocks of at most
        ``block_bytes`` of scores; ``"approx"`` finds candidates by a
        similarity search in a subspace of the activations (a global
        threshold on blocked products, the ``2·k`` best estimates) and ranks
        them exactly, sub-quadratic with high recall of the exact ranking;
        ``"pool-uniform"`` ranks a uniform random pool of
        ``pool_factor · n`` free positions, ``O(pool · samples)``;
        ``"pool"`` ranks a pool of the same size laid out as random
        row-group × column-group blocks, scored by dense products (see
        :meth:`~topo.rules.PairScores.top_nonedges`). Pools are cheap but
        recall little of the exact top ranking.
    on_pruned : {"skip", "random"}
        What happens when the ranking reaches an edge pruned in this step.
        ``"skip"`` passes over it to the next best position. ``"random"`` is
        CTRE-sim: rank the pruned edges too, and replace each one the ranking
        re-selects by a uniformly random free position.
    """

    needs = frozenset({"activations"})

    def __init__(self, mode: GrowMode = "exact", pool_factor: float = 10.0,
                 on_pruned: Literal["skip", "random"] = "skip", block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        super().__init__(mode, pool_factor, block_bytes)
        if on_pruned not in ("skip", "random"):
            raise ParameterError(f"on_pruned must be 'skip' or 'random', got {on_pruned!r}")
        self.on_pruned = on_pruned

    def scores(self, context):
        return context.cosine()

    def select(self, graph, n, context, exclude):
        if self.on_pruned == "skip" or exclude.numel() == 0:
            return self._top(graph, n, context, exclude)
        chosen = self._top(graph, n, context, torch.empty(0, dtype=torch.int64))
        keep = chosen[~in_sorted(chosen, exclude)]
        fill = sample_keys(graph.n_in * graph.n_out, n - keep.numel(), context.generator,
                           exclude=_taken(graph, exclude, keep))
        return torch.cat([keep, fill])


class GradientGrow(_ScoredGrow):
    """Grow the free positions of largest ``|dL/dW|`` (RigL), computed blockwise from input and output gradient.

    ``mode``, ``pool_factor`` and ``block_bytes`` as in :class:`CosineGrow`.
    """

    needs = frozenset({"gradients"})

    def scores(self, context):
        return context.gradient()


class SequentialGrow(GrowCriterion):
    """Grow with ``first`` until a monitored metric stalls for ``patience`` evaluations, then with ``then`` (CTRE-seq).

    Feed it metrics with :meth:`observe` (the :class:`~topo.Evolver` does so
    from ``step(metrics=...)``). An evaluation that does not beat the best
    value so far by more than ``min_delta`` counts as stalled; the switch is
    permanent.
    """

    def __init__(self, first: GrowCriterion, then: GrowCriterion, patience: int = 40,
                 monitor: str = "val_acc", higher_is_better: bool = True, min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ParameterError(f"patience must be a positive int, got {patience!r}")
        self.first, self.then, self.patience = first, then, patience
        self.monitor, self.higher_is_better, self.min_delta = monitor, bool(higher_is_better), float(min_delta)
        self.best: float | None = None
        self.stalled = 0
        self.switched = False

    @property
    def current(self) -> GrowCriterion:
        return self.then if self.switched else self.first

    @property
    def needs(self) -> frozenset:
        return self.current.needs

    def observe(self, metrics: dict) -> None:
        self.first.observe(metrics)
        self.then.observe(metrics)
        if self.switched or self.monitor not in metrics:
            return
        value = float(metrics[self.monitor])
        if self.best is None:
            improved = True
        else:
            gain = value - self.best if self.higher_is_better else self.best - value
            improved = gain > self.min_delta
        if improved:
            self.best, self.stalled = value, 0
        else:
            self.stalled += 1
            self.switched = self.stalled >= self.patience

    def select(self, graph, n, context, exclude):
        return self.current.select(graph, n, context, exclude)

    def state_dict(self) -> dict:
        return {"best": self.best, "stalled": self.stalled, "switched": self.switched,
                "first": self.first.state_dict(), "then": self.then.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.stalled, self.switched = state["best"], int(state["stalled"]), bool(state["switched"])
        self.first.load_state_dict(state.get("first", {}))
        self.then.load_state_dict(state.get("then", {}))

    def __repr__(self) -> str:
        return (f"SequentialGrow(first={self.first!r}, then={self.then!r}, patience={self.patience}, "
                f"monitor={self.monitor!r})")
