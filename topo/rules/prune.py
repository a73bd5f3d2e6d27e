"""Prune criteria: which edges of a layer die.

A prune criterion is called as ``criterion(graph, zeta, context)`` and returns
the positions (indices into the graph's edges) to drop, ordered from the most
to the least prunable; the :class:`~topo.rules.Rule` keeps a prefix of that
order when a layer has fewer free positions than edges to replace. With
``ordered=False`` it returns the same positions in increasing order, which
:class:`MagnitudePrune` finds in ``O(E)`` (a partition for the ``ζ``
threshold, no sort).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError, TopologyError
from ..graph.layer import LayerGraph
from .base import Criterion, RuleContext, check_zeta, count_for
from .select import smallest

__all__ = ["PruneCriterion", "MagnitudePrune", "CosinePrune", "RandomPrune"]


def _ascending(values: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Positions ordered by increasing value, ties by increasing position (deterministic)."""
    if positions is None:
        positions = torch.arange(values.numel())
    order = torch.argsort(values, stable=True)  # positions are increasing, so stable = ties by position
    return positions[order]


class PruneCriterion(Criterion):
    """Base of prune criteria; ``zeta`` is the fraction pruned when the caller gives none."""

    def __init__(self, zeta: float = 0.3) -> None:
        self.zeta = check_zeta(zeta)

    def __call__(self, graph: LayerGraph, zeta: float | None = None, context=None, *,
                 count: int | None = None, ordered: bool = True) -> torch.Tensor:
        """Positions to drop: a fraction ``zeta`` of the edges, or exactly ``count``.

        ``ordered=True``: most prunable first. ``ordered=False``: the same positions, increasing.
        """
        context = RuleContext.coerce(context)
        # ``zeta`` is only read without ``count`` (then it is checked); with it the count decides.
        z = self.zeta if zeta is None or count is not None else check_zeta(zeta)
        if count is not None:
            e = graph.num_edges
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= e:
                raise ParameterError(f"count must be an int in [0, {e}], got {count!r}")
            if count == 0:
                return torch.empty(0, dtype=torch.int64)
        fast = self._increasing(graph, z, count)
        if fast is not None:
            return fast if not ordered else self._order(graph, fast)
        if count is None:
            drop = self._positions(graph, self.select(graph, z, context))
        else:
            drop = self._positions(graph, self.select_count(graph, count, context))
            if drop.numel() < count:
                raise TopologyError(f"{type(self).__name__} selected {drop.numel()} edges, "
                                    f"the edge budget needs {count}")
            drop = drop[:count]
        return drop if ordered else torch.sort(drop).values

    def _increasing(self, graph: LayerGraph, zeta, count: int | None) -> torch.Tensor | None:
        """The positions :meth:`select`/:meth:`select_count` give, increasing, where a criterion finds them
        without ranking every edge; ``None`` (the default) when it does not."""
        return None

    def _order(self, graph: LayerGraph, positions: torch.Tensor) -> torch.Tensor:
        """Increasing ``positions`` put most prunable first (criteria with an :meth:`_increasing` path)."""
        raise NotImplementedError

    def _positions(self, graph: LayerGraph, drop) -> torch.Tensor:
        drop = torch.as_tensor(drop)
        if drop.dtype == torch.bool:
            if drop.shape != (graph.num_edges,):
                raise TopologyError(f"{type(self).__name__} returned a mask of shape {tuple(drop.shape)}, "
                                    f"expected ({graph.num_edges},)")
            drop = drop.nonzero().squeeze(1)
        return drop.to(torch.int64).reshape(-1)

    def select_count(self, graph: LayerGraph, count: int, context: RuleContext) -> torch.Tensor:
        """At least ``count`` positions, most prunable first; by default ``select`` at ``ζ = count / E``.

        ``round(ζ·E)`` gives back ``count`` for criteria that rank all edges
        at once; criteria that round several groups apart override this.
        """
        return self.select(graph, min(1.0, count / graph.num_edges), context)

    def select(self, graph: LayerGraph, zeta: float, context: RuleContext) -> torch.Tensor:
        """Edge positions (or a bool mask) to drop; subclasses implement it."""
        raise NotImplementedError


#: Weight dtypes the O(E) magnitude selection reads through numpy (others take the sorting path).
_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _smallest(values: np.ndarray, among: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` smallest ``values`` where ``among`` holds, ties to the lowest positions.

    The same edges as a stable ranking's first ``k``, in ``O(n)``: the ``k``-th smallest value ``t``
    from a partition, every value below ``t``, then the first positions holding ``t`` itself.
    """
    mask = np.zeros(values.size, dtype=bool)
    if k <= 0:
        return mask
    cand = values[among]
    if k >= cand.size:
        return among.copy()
    t = np.partition(cand, k - 1)[k - 1]
    np.less(values, t, out=mask)
    mask &= among
    short = k - int(mask.sum())
    if short:
        tie = np.flatnonzero((values == t) & among)[:short]
        mask[tie] = True
    return mask


def _weights(graph: LayerGraph, who: str) -> torch.Tensor:
    if graph.weight is None:
        raise ParameterError(f"{who} needs a weighted LayerGraph (graph.with_weight(...))")
    return graph.weight.detach().cpu()


class MagnitudePrune(PruneCriterion):
    """Drop the weights closest to zero.

    ``per_sign=True`` is SET's exact rule: among the ``n_pos`` non-negative
    weights drop the ``round(ζ·n_pos)`` smallest, among the ``n_neg`` negative
    weights the ``round(ζ·n_neg)`` largest (closest to zero). Counts are
    rounded half up; a weight of exactly 0 counts as non-negative, where it is
    the smallest, so freshly born zero weights go first. ``per_sign=False``
    drops the ``round(ζ·E)`` edges of smallest ``|w|`` (RigL). Ties go to the
    earlier edge in CSR order.

    Examples
    --------
    >>> g = LayerGraph(5, 1, [0, 1, 2, 3, 4], [0] * 5, weight=[0.1, 0.2, 0.3, -0.9, -0.8])
    >>> MagnitudePrune(0.4)(g).tolist()  # one of 3 positives, one of 2 negatives
    [0, 4]
    >>> MagnitudePrune(0.4, per_sign=False)(g).tolist()
    [0, 1]
    """

    def __init__(self, zeta: float = 0.3, per_sign: bool = True) -> None:
        super().__init__(zeta)
        self.per_sign = bool(per_sign)

    def select(self, graph, zeta, context):
        w = _weights(graph, "MagnitudePrune")
        if not self.per_sign:
            return _ascending(w.abs())[:count_for(zeta, w.numel())]
        pos = (w >= 0).nonzero().squeeze(1)
        neg = (w < 0).nonzero().squeeze(1)
        return self._per_sign(w, pos, neg, count_for(zeta, pos.numel()), count_for(zeta, neg.numel()))

    def select_count(self, graph, count, context):
        if not self.per_sign:
            return super().select_count(graph, count, context)
        # Per sign, with the count split in proportion to the signs (rounded half up, the rest negative).
        w = _weights(graph, "MagnitudePrune")
        pos = (w >= 0).nonzero().squeeze(1)
        neg = (w < 0).nonzero().squeeze(1)
        k_pos = min(pos.numel(), count_for(pos.numel() / w.numel(), count))
        k_neg = count - k_pos
        if k_neg > neg.numel():
            k_pos, k_neg = count - neg.numel(), neg.numel()
        return self._per_sign(w, pos, neg, k_pos, k_neg)

    def _increasing(self, graph, zeta, count):
        cls = type(self)
        if graph.weight is None or graph.weight.dtype not in _NUMPY_FLOATS or \
                cls.select is not MagnitudePrune.select or cls.select_count is not MagnitudePrune.select_count:
            return None  # a subclass that ranks otherwise keeps its own select
        weight = _weights(graph, "MagnitudePrune")
        w = weight.numpy()
        e = w.size
        if not self.per_sign:
            k = count_for(zeta, e) if count is None else count
            fast = smallest(weight, False, k)  # radix select (topo.rules.select); None: NaN or no kernel
            if fast is not None:
                return fast
            a = np.abs(w)
            if np.isnan(a).any():
                return None  # NaN ranks last in a sort but breaks a threshold: leave it to the ranking
            return torch.from_numpy(np.flatnonzero(_smallest(a, np.ones(e, dtype=bool), k)))
        is_pos = w >= 0
        is_neg = w < 0  # NaN is neither, as in select()
        n_pos, n_neg = int(np.count_nonzero(is_pos)), int(np.count_nonzero(is_neg))
        if count is None:
            k_pos, k_neg = count_for(zeta, n_pos), count_for(zeta, n_neg)
        else:  # the split of select_count
            k_pos = min(n_pos, count_for(n_pos / e, count))
            k_neg = count - k_pos
            if k_neg > n_neg:
                k_pos, k_neg = count - n_neg, n_neg
        fast = smallest(weight, True, k_pos, k_neg)
        if fast is not None:
            return fast
        mask = _smallest(w, is_pos, k_pos)
        mask |= _smallest(-w, is_neg, k_neg)
        return torch.from_numpy(np.flatnonzero(mask))

    def _order(self, graph, positions):
        # The ranking of select(): by |w|, ties by position (positions are increasing: a stable sort).
        return _ascending(_weights(graph, "MagnitudePrune")[positions].abs(), positions)

    @staticmethod
    def _per_sign(w, pos, neg, k_pos: int, k_neg: int) -> torch.Tensor:
        drop = torch.cat([_ascending(w[pos], pos)[:k_pos], _ascending(-w[neg], neg)[:k_neg]])
        # Most prunable first across both signs: by |w|, then position.
        drop = torch.sort(drop).values
        return _ascending(w[drop].abs(), drop)


class CosinePrune(PruneCriterion):
    """Drop the ``round(ζ·E)`` edges whose endpoints' activations have the lowest ``|cos|`` (Pieterse & Mocanu 2019).

    Needs activations in the context; scores are computed for existing edges only (``O(E·S)``).
    """

    needs = frozenset({"activations"})

    def select(self, graph, zeta, context):
        return _ascending(context.cosine().edges(graph))[:count_for(zeta, graph.num_edges)]


class RandomPrune(PruneCriterion):
    """Drop ``round(ζ·E)`` edges chosen uniformly at random with the context's generator."""

    def select(self, graph, zeta, context):
        return torch.randperm(graph.num_edges, generator=context.generator)[:count_for(zeta, graph.num_edges)]
