"""Rules: a prune criterion and a grow criterion, and the named rules of the literature.

A :class:`Rule` is called on one weighted :class:`~topo.LayerGraph` and
returns the rewired graph with the births and deaths. It keeps the edge
count exactly: it grows as many edges as it pruned, never an existing edge,
never an edge it pruned in the same step. When a layer has fewer free
positions than edges to replace (a nearly dense layer), only as many edges as
can regrow are pruned, the most prunable first; a dense layer is left as is.
"""

from __future__ import annotations

import torch

from ..errors import ParameterError, ParameterTypeError, TopologyError
from ..graph.layer import LayerGraph
from .base import RuleContext, RuleResult, check_zeta
from .grow import CosineGrow, GradientGrow, GrowCriterion, RandomGrow, SequentialGrow
from .prune import CosinePrune, MagnitudePrune, PruneCriterion, RandomPrune
from .scores import in_sorted

__all__ = ["Rule", "Static", "SET", "CTRE", "RigL"]

_EMPTY = torch.empty(2, 0, dtype=torch.int64)


def _edge_list(keys: torch.Tensor, n_in: int) -> torch.Tensor:
    return torch.stack([keys % n_in, torch.div(keys, n_in, rounding_mode="floor")])


class Rule:
    """Prune with ``prune``, regrow as many edges with ``grow``.

    Parameters
    ----------
    prune : PruneCriterion
        E.g. ``MagnitudePrune(0.3)``, ``CosinePrune(0.3)``, ``RandomPrune(0.3)``;
        its ``zeta`` is the rule's default fraction.
    grow : GrowCriterion
        E.g. ``RandomGrow()``, ``CosineGrow()``, ``GradientGrow()``.
    name : str, optional
        Defaults to ``"<prune>+<grow>"``, the form :func:`~topo.rules.from_name` parses.

    Examples
    --------
    >>> import topo
    >>> from topo.rules import Rule, CosinePrune, RandomGrow
    >>> rule = Rule(prune=CosinePrune(0.5), grow=RandomGrow())
    >>> rule.name, sorted(rule.needs)
    ('cosine+random', ['activations'])
    >>> g = topo.erdos_renyi([20, 10], density=0.3, seed=0)[0]
    >>> g = g.with_weight(torch.randn(g.num_edges, generator=torch.Generator().manual_seed(0)))
    >>> r = topo.rules.SET(0.3)(g, 0)  # a seed, a torch.Generator or a RuleContext
    >>> r.graph.num_edges == g.num_edges, r.births.shape[1], r.deaths.shape[1]
    (True, 18, 18)
    """

    def __init__(self, prune: PruneCriterion, grow: GrowCriterion, name: str | None = None) -> None:
        if not callable(prune) or not hasattr(prune, "zeta"):
            raise ParameterTypeError(f"prune must be a prune criterion (e.g. MagnitudePrune(0.3)), got {prune!r}")
        if not callable(grow):
            raise ParameterTypeError(f"grow must be a grow criterion (e.g. RandomGrow()), got {grow!r}")
        self.prune, self.grow = prune, grow
        self.name = name or f"{_part_name(prune)}+{_part_name(grow)}"

    @property
    def zeta(self) -> float:
        return self.prune.zeta

    @property
    def needs(self) -> frozenset:
        """Score sources this rule will use in its next call: ``"activations"``, ``"gradients"``."""
        return frozenset(getattr(self.prune, "needs", ())) | frozenset(getattr(self.grow, "needs", ()))

    def __call__(self, graph: LayerGraph, context=None, zeta: float | None = None) -> RuleResult:
        """Rewire one layer; ``context`` is a :class:`RuleContext`, a seed, a generator or ``None``."""
        if not isinstance(graph, LayerGraph):
            raise ParameterTypeError(f"a rule rewires a LayerGraph, got {type(graph).__name__}")
        context = RuleContext.coerce(context)
        zeta = self.zeta if zeta is None else check_zeta(zeta)
        n_in, space, n_edges = graph.n_in, graph.n_in * graph.n_out, graph.num_edges
        capacity = space - n_edges
        if capacity == 0 or n_edges == 0 or zeta == 0.0:
            return RuleResult(graph.copy(), _EMPTY.clone(), _EMPTY.clone())
        drop = self.prune(graph, zeta, context)[:capacity]
        if drop.numel() and (int(drop.min()) < 0 or int(drop.max()) >= n_edges):
            raise TopologyError(f"{self.prune!r} returned edge positions out of range [0, {n_edges})")
        alive = torch.ones(n_edges, dtype=torch.bool)
        alive[drop] = False
        if n_edges - int(alive.sum()) != drop.numel():
            raise TopologyError(f"{self.prune!r} returned repeated edge positions")
        keys = graph.keys()
        dead = torch.sort(keys[drop]).values
        kept = LayerGraph(n_in, graph.n_out, graph.src[alive], graph.dst[alive],
                          None if graph.weight is None else graph.weight.detach()[alive.to(graph.weight.device)])
        context.pruned = dead
        born = self.grow(kept, drop.numel(), context, dead)
        self._check_births(born, drop.numel(), kept, dead)
        weight = None
        if kept.weight is not None:
            weight = torch.cat([kept.weight, kept.weight.new_zeros(born.numel())])
        new = LayerGraph.from_keys(n_in, graph.n_out, torch.cat([kept.keys(), born]), weight)
        return RuleResult(new, _edge_list(born, n_in), _edge_list(dead, n_in))

    def _check_births(self, born: torch.Tensor, n: int, kept: LayerGraph, dead: torch.Tensor) -> None:
        # Cheap guards so a faulty custom criterion fails here, not inside a training run.
        if born.numel() != n:
            raise TopologyError(f"{self.grow!r} grew {born.numel()} edges, {n} were pruned")
        if n and (int(born.min()) < 0 or int(born.max()) >= kept.n_in * kept.n_out
                  or bool((born[1:] == born[:-1]).any()) or bool(in_sorted(born, kept.keys()).any())
                  or bool(in_sorted(born, dead).any())):
            raise TopologyError(f"{self.grow!r} grew a duplicate, existing, just-pruned or out-of-range edge")

    def observe(self, metrics: dict) -> None:
        """Pass validation metrics (e.g. ``{"val_acc": 0.91}``) to the criteria that use them."""
        for part in (self.prune, self.grow):
            if hasattr(part, "observe"):
                part.observe(metrics)

    def state_dict(self) -> dict:
        return {"name": self.name, "prune": _state(self.prune), "grow": _state(self.grow)}

    def load_state_dict(self, state: dict) -> None:
        for key, part in (("prune", self.prune), ("grow", self.grow)):
            if hasattr(part, "load_state_dict"):
                part.load_state_dict(state.get(key, {}))

    def __repr__(self) -> str:
        return f"Rule(prune={self.prune!r}, grow={self.grow!r})"


def _state(part) -> dict:
    return part.state_dict() if hasattr(part, "state_dict") else {}


def _part_name(part) -> str:
    if isinstance(part, MagnitudePrune):
        return "magnitude" if part.per_sign else "magnitude-global"
    if isinstance(part, SequentialGrow):
        return f"{_part_name(part.first)}-then-{_part_name(part.then)}"
    for cls, name in ((CosinePrune, "cosine"), (RandomPrune, "random"), (RandomGrow, "random"),
                      (CosineGrow, "cosine"), (GradientGrow, "gradient")):
        if isinstance(part, cls):
            return name
    return type(part).__name__


class Static(Rule):
    """No evolution: the topology stays as initialised (the fixed random sparse baseline)."""

    def __init__(self) -> None:
        self.prune, self.grow, self.name = None, None, "static"

    zeta = 0.0
    needs = frozenset()

    def __call__(self, graph, context=None, zeta=None) -> RuleResult:
        if not isinstance(graph, LayerGraph):
            raise ParameterTypeError(f"a rule rewires a LayerGraph, got {type(graph).__name__}")
        return RuleResult(graph.copy(), _EMPTY.clone(), _EMPTY.clone())

    def observe(self, metrics):
        pass

    def state_dict(self):
        return {"name": self.name}

    def load_state_dict(self, state):
        pass

    def __repr__(self) -> str:
        return "Static()"


class SET(Rule):
    """SET (Mocanu et al. 2018): per-sign magnitude pruning of ``ζ``, uniform random regrowth."""

    def __init__(self, zeta: float = 0.3) -> None:
        super().__init__(MagnitudePrune(zeta, per_sign=True), RandomGrow(), name="set")

    def __repr__(self) -> str:
        return f"SET(zeta={self.zeta})"


class CTRE(Rule):
    """CTRE (Atashgahi et al. 2022): magnitude pruning, growth by activation cosine similarity.

    ``variant="sim"`` ranks all free positions and the just-pruned edges by
    ``|cos|`` and replaces each re-selected pruned edge by a random one;
    ``variant="seq"`` grows by ``|cos|`` (passing over just-pruned edges) until
    ``monitor`` (default ``"val_acc"``, fed through ``observe`` or
    ``Evolver.step(metrics=...)``) stalls for ``patience`` evaluations, then
    grows at random. Pruning is SET's per-sign magnitude rule. ``mode`` and
    ``pool_factor`` choose exact or pooled cosine ranking
    (:class:`~topo.rules.CosineGrow`).
    """

    def __init__(self, zeta: float = 0.2, variant: str = "sim", patience: int = 40, mode: str = "exact",
                 pool_factor: float = 10.0, monitor: str = "val_acc") -> None:
        if variant == "sim":
            grow = CosineGrow(mode, pool_factor, on_pruned="random")
        elif variant == "seq":
            grow = SequentialGrow(CosineGrow(mode, pool_factor), RandomGrow(), patience=patience, monitor=monitor)
        else:
            raise ParameterError(f"CTRE variant must be 'sim' or 'seq', got {variant!r}")
        super().__init__(MagnitudePrune(zeta, per_sign=True), grow, name=f"ctre-{variant}")
        self.variant = variant

    def __repr__(self) -> str:
        return f"CTRE(zeta={self.zeta}, variant={self.variant!r})"


class RigL(Rule):
    """RigL (Evci et al. 2020): prune the smallest ``|w|``, grow the largest ``|dL/dW|`` of non-edges.

    Pair it with its schedule: ``Schedule(decay="cosine", every=100, stop_at=0.75, total=steps)``.
    """

    def __init__(self, zeta: float = 0.3, mode: str = "exact", pool_factor: float = 10.0) -> None:
        super().__init__(MagnitudePrune(zeta, per_sign=False), GradientGrow(mode, pool_factor), name="rigl")

    def __repr__(self) -> str:
        return f"RigL(zeta={self.zeta})"
