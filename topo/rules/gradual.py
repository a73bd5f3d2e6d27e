"""Density-changing rules: gradual magnitude pruning (Zhu & Gupta 2017) and GraNet (Liu et al. 2021).

Both follow the cubic sparsity schedule of Zhu & Gupta, *To prune, or not to
prune* (2017), eq. 1, written as a density::

    d(p) = d_f + (d_i - d_f) · (1 - p)³,    p = min(1, progress / end)

where ``progress`` is ``k / n`` for the ``k``-th of the ``n`` updates the
:class:`~topo.rules.Schedule` makes (:meth:`~topo.rules.Schedule.progress`),
so the last update reaches ``d_f`` (with ``end < 1``, the ``end``-th fraction
of them does). The edge budget of a layer at an update is ``round(d(p) ·
n_in · n_out)`` (half up), never more than it has: pruning only.
"""

from __future__ import annotations

import math
from numbers import Real

from ..errors import ParameterError
from ..graph.layer import LayerGraph
from .base import RuleContext, count_for
from .compose import Rule
from .grow import GradientGrow, GrowMode, RandomGrow
from .prune import MagnitudePrune

__all__ = ["cubic_density", "GMP", "GraNet"]


def _fraction(value, name: str, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) \
            or not (0.0 < float(value) if low_open else 0.0 <= float(value)) or float(value) > 1.0:
        raise ParameterError(f"{name} must be a number in {'(0' if low_open else '[0'}, 1], got {value!r}")
    return float(value)


def cubic_density(progress: float, initial_density: float, final_density: float) -> float:
    """Zhu & Gupta's cubic schedule as a density: ``d_f + (d_i - d_f)(1 - p)³`` for ``p`` clipped to ``[0, 1]``.

    Examples
    --------
    >>> cubic_density(0.0, 1.0, 0.1), cubic_density(0.5, 1.0, 0.2), cubic_density(1.0, 1.0, 0.1)
    (1.0, 0.30000000000000004, 0.1)
    """
    p = min(1.0, max(0.0, float(progress)))
    return final_density + (initial_density - final_density) * (1.0 - p) ** 3


class _Gradual(Rule):
    """The shared edge budget of GMP and GraNet."""

    def _schedule(self, final_density, initial_density, end) -> None:
        self.final_density = _fraction(final_density, "final_density")
        self.initial_density = _fraction(initial_density, "initial_density")
        if self.final_density > self.initial_density:
            raise ParameterError(f"final_density {final_density!r} must not exceed initial_density "
                                 f"{initial_density!r} (these rules only prune)")
        self.end = _fraction(end, "end", low_open=True)

    def density(self, progress: float) -> float:
        """Target density at schedule progress ``progress``."""
        return cubic_density(min(1.0, float(progress) / self.end), self.initial_density, self.final_density)

    def target_edges(self, graph: LayerGraph, context: RuleContext) -> int:
        if context.progress is None:
            raise ParameterError(f"{self.name} follows a pruning schedule and needs the update's progress: "
                                 f"give the Evolver's Schedule its total (Schedule(..., total=n)) or pass "
                                 f"RuleContext(progress=p) / budget=")
        space = graph.n_in * graph.n_out
        return min(graph.num_edges, count_for(self.density(context.progress), space))


class GMP(_Gradual):
    """Gradual magnitude pruning (Zhu & Gupta 2017): prune to the cubic schedule's density, never regrow.

    Parameters
    ----------
    final_density : float in [0, 1]
        Density every layer reaches at the end of the schedule (``1 - s_f``).
    initial_density : float in [0, 1]
        Density at progress 0 (``1 - s_i``); ``1.0`` is the paper's dense start.
    end : float in (0, 1]
        Fraction of the schedule's updates over which pruning happens; later
        updates keep ``final_density``.
    per_sign : bool
        ``False`` (the paper, and GraNet's ``GMP_uniform``): the smallest
        ``|w|`` of the layer go; ``True``: SET's per-sign ranking.

    Notes
    -----
    Each layer is pruned to its own budget, as in the paper and GraNet's
    ``pruning_uniform`` (``CIFAR/sparselearning/core.py``). GraNet's
    ``--method GMP`` instead thresholds ``|w|`` globally over all layers
    (``Masking.pruning``). Train a dense start as sparse layers
    (``topo.compile(topo.erdos_renyi(sizes, density=1.0))``) and give the
    Evolver a schedule with a ``total``.

    Examples
    --------
    >>> import topo, torch
    >>> g = topo.erdos_renyi([20, 10], density=1.0, seed=0)[0]
    >>> g = g.with_weight(torch.randn(200, generator=torch.Generator().manual_seed(0)))
    >>> rule = GMP(final_density=0.1)
    >>> [rule(g, topo.rules.RuleContext(progress=p)).graph.num_edges for p in (0.25, 1.0)]
    [96, 20]
    """

    def __init__(self, final_density: float, initial_density: float = 1.0, end: float = 1.0,
                 per_sign: bool = False) -> None:
        super().__init__(MagnitudePrune(0.0, per_sign=per_sign), RandomGrow(), name="gmp")
        self._schedule(final_density, initial_density, end)

    def __repr__(self) -> str:
        return f"GMP(final_density={self.final_density}, initial_density={self.initial_density}, end={self.end})"


class GraNet(_Gradual):
    """GraNet (Liu et al. 2021): gradual magnitude pruning plus zero-initialised gradient regrowth.

    At every update the layer is pruned to the cubic schedule's budget ``B``
    and, on top of that, ``ζ·B`` more of its smallest ``|w|`` are swapped for
    the free positions of largest ``|dL/dW|`` (RigL's growth), which start at
    zero. ``ζ`` follows the Evolver's schedule (GraNet decays it by cosine
    over the whole run: ``Schedule(decay="cosine", ...)``). After ``end`` the
    density stays at ``final_density`` and only the swaps go on.

    Parameters
    ----------
    final_density, initial_density, end
        As in :class:`GMP` (GraNet's ``--final-density``, ``--init-density``,
        ``--final-prune-epoch`` as a fraction).
    zeta : float
        Swap fraction (GraNet's ``--prune-rate``, default 0.5).
    mode, pool_factor
        Search of the gradient ranking (:class:`~topo.rules.GradientGrow`).
    allow_regrow_pruned : bool, "reinit" or "keep"
        GraNet's code grows among all positions of mask 0, pruned ones
        included (``truncate_weights`` → ``gradient_growth``); an edge pruned
        by ``magnitude_death`` and regrown keeps its value there (``"keep"``).

    Notes
    -----
    Differences from the code (``VITA-Group/GraNet``,
    ``CIFAR/sparselearning/core.py``): the budget is per layer, as its
    ``GraNet_uniform`` method (``--method GraNet`` thresholds ``|w|``
    globally over layers); the swap count rounds half up where
    ``magnitude_death`` takes ``ceil(ζ·nonzeros)``.
    """

    init = "zeros"

    def __init__(self, final_density: float, initial_density: float = 1.0, zeta: float = 0.5, end: float = 1.0,
                 mode: GrowMode = "exact", pool_factor: float = 10.0, allow_regrow_pruned: bool | str = False) -> None:
        super().__init__(MagnitudePrune(zeta, per_sign=False), GradientGrow(mode, pool_factor), name="granet",
                         allow_regrow_pruned=allow_regrow_pruned)
        self._schedule(final_density, initial_density, end)

    def __repr__(self) -> str:
        return (f"GraNet(final_density={self.final_density}, initial_density={self.initial_density}, "
                f"zeta={self.zeta}, end={self.end})")
