"""Rules: a prune criterion and a grow criterion, and the named rules of the literature.

A :class:`Rule` is called on one weighted :class:`~topo.LayerGraph` and
returns the rewired graph with the births and deaths. It rewires to an
explicit edge budget (by default the current count, so births = deaths;
density-changing rules such as :class:`~topo.rules.GMP` and
:class:`~topo.rules.GraNet` set their own), never grows an existing edge and,
unless ``allow_regrow_pruned`` says otherwise, never an edge it pruned in the
same step. When a layer has fewer free positions than edges to replace (a
nearly dense layer), only as many edges as can regrow are pruned, the most
prunable first; a dense layer at constant budget is left as is.
"""

from __future__ import annotations

import inspect
from numbers import Integral

import torch

from ..errors import ParameterError, ParameterTypeError, TopologyError
from ..graph.alloc import zeros
from ..graph.keyset import compact, contains, edge_list, insert, interleave, is_increasing, merge
from ..graph.layer import LayerGraph
from .base import RuleContext, RuleResult, check_zeta, count_for
from .grow import CosineGrow, GradientGrow, GrowCriterion, GrowMode, RandomGrow, SequentialGrow
from .prune import CosinePrune, MagnitudePrune, PruneCriterion, RandomPrune

__all__ = ["Rule", "Static", "SET", "CTRE", "RigL"]

_EMPTY = torch.empty(2, 0, dtype=torch.int64)
_NO_KEYS = torch.empty(0, dtype=torch.int64)


def _zeros_like(w: torch.Tensor, n: int) -> torch.Tensor:
    return zeros(n, w.dtype) if w.device.type == "cpu" else w.new_zeros(n)


def _insert(graph: LayerGraph, keys: torch.Tensor, edges: torch.Tensor, values: torch.Tensor | None) -> LayerGraph:
    """``graph`` plus the edges of the sorted ``keys`` (none of them edges yet; ``edges`` their ``[2, k]`` list),
    with ``values``: a merge, O(E)."""
    if not graph._keys_only:
        fused = insert(graph.keys(), graph.src, graph.dst, graph.weight, keys, edges, values)
        if fused is not None:
            merged, src, dst, weight = fused
            return LayerGraph._trusted(graph.n_in, graph.n_out, src, dst, weight, merged)
    merged, at = merge(graph.keys(), keys)
    weight = None if graph.weight is None or values is None else interleave(graph.weight, values, at)
    if graph._keys_only:  # the kept edges of a step: keys and values alone, rows split only if asked for
        return LayerGraph._trusted_keys(graph.n_in, graph.n_out, merged, weight)
    return LayerGraph._trusted(graph.n_in, graph.n_out, interleave(graph.src, edges[0], at),
                               interleave(graph.dst, edges[1], at), weight, merged)


class Rule:
    """Prune with ``prune``, regrow with ``grow``, to an explicit edge budget.

    Parameters
    ----------
    prune : PruneCriterion
        E.g. ``MagnitudePrune(0.3)``, ``CosinePrune(0.3)``, ``RandomPrune(0.3)``;
        its ``zeta`` is the rule's default fraction.
    grow : GrowCriterion
        E.g. ``RandomGrow()``, ``CosineGrow()``, ``GradientGrow()``.
    name : str, optional
        Defaults to ``"<prune>+<grow>"``, the form :func:`~topo.rules.from_name` parses.
    allow_regrow_pruned : bool, "reinit" or "keep"
        ``False`` (topo's default): growth never picks an edge pruned in the
        same step. ``True``/``"reinit"``: it may, and such an edge is reborn
        as a birth with a fresh value and zero optimizer state — SET's code
        (``set_mlp_sparse_data_structures.py``, ``weightsEvolution``: random
        positions are drawn until one is absent from the kept matrix, so a
        just-pruned one can come back with a new ``randn()/10``).
        ``"keep"``: a re-selected edge keeps its value and optimizer state and
        is recorded as neither birth nor death — RigL's code
        (``rigl/sparse_optimizers_base.py``, ``_get_update_op`` with
        ``reinit_when_same=False``).

    The edge budget
    ---------------
    A call rewires the layer to ``budget`` edges (default:
    :meth:`target_edges`, which keeps the count): with ``E`` edges now and
    ``B`` wanted, ``E - B`` extra edges die when ``B < E`` and ``B - E``
    extra edges are born when ``B > E``; on top of that ``ζ`` of the smaller
    of the two counts is swapped (pruned and regrown). ``result.graph`` has
    exactly ``B`` edges. Without regrowth of pruned edges a layer can only
    swap as many edges as it has free positions (a nearly dense layer
    prunes the most prunable first; a dense layer at constant budget is left
    as is).

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
    >>> r = topo.rules.SET(0.3)(g, 0, budget=40)  # 60 edges down to 40: 20 die, ζ·40 = 12 are swapped
    >>> r.graph.num_edges, r.births.shape[1], r.deaths.shape[1]
    (40, 12, 32)
    """

    #: Values of births this rule asks for (e.g. ``"zeros"``); ``None`` leaves it to the Evolver/model.
    init: str | None = None
    #: The criteria; ``None`` in :class:`Static`, which rewires nothing.
    prune: PruneCriterion | None
    grow: GrowCriterion | None

    def __init__(self, prune: PruneCriterion, grow: GrowCriterion, name: str | None = None,
                 allow_regrow_pruned: bool | str = False) -> None:
        if not callable(prune) or not hasattr(prune, "zeta"):
            raise ParameterTypeError(f"prune must be a prune criterion (e.g. MagnitudePrune(0.3)), got {prune!r}")
        if not callable(grow):
            raise ParameterTypeError(f"grow must be a grow criterion (e.g. RandomGrow()), got {grow!r}")
        self.prune, self.grow = prune, grow
        self.name = name or f"{_part_name(prune)}+{_part_name(grow)}"
        self.allow_regrow_pruned = _check_regrow(allow_regrow_pruned)

    @property
    def zeta(self) -> float:
        return 0.0 if self.prune is None else self.prune.zeta

    @property
    def needs(self) -> frozenset:
        """Score sources this rule will use in its next call: ``"activations"``, ``"gradients"``."""
        return frozenset(getattr(self.prune, "needs", ())) | frozenset(getattr(self.grow, "needs", ()))

    def target_edges(self, graph: LayerGraph, context: RuleContext) -> int:
        """The edge budget of the next call on ``graph``; the base rule keeps the count."""
        return graph.num_edges

    def __call__(self, graph: LayerGraph, context=None, zeta: float | None = None,
                 budget: int | None = None) -> RuleResult:
        """Rewire one layer; ``context`` is a :class:`RuleContext`, a seed, a generator or ``None``.

        ``budget`` overrides :meth:`target_edges`: the number of edges of the result.
        """
        if not isinstance(graph, LayerGraph):
            raise ParameterTypeError(f"a rule rewires a LayerGraph, got {type(graph).__name__}")
        prune, grow = self.prune, self.grow
        if prune is None or grow is None:
            raise TopologyError(f"{self!r} has no prune and grow criteria to rewire with")
        context = RuleContext.coerce(context)
        zeta = self.zeta if zeta is None else check_zeta(zeta)
        n_in, space, n_edges = graph.n_in, graph.n_in * graph.n_out, graph.num_edges
        target = self.target_edges(graph, context) if budget is None else budget
        if isinstance(target, bool) or not isinstance(target, Integral) or not 0 <= int(target) <= space:
            raise ParameterError(f"edge budget must be an int in [0, {space}] for a {n_in}->{graph.n_out} "
                                 f"layer, got {target!r}")
        target = int(target)
        regrow = bool(self.allow_regrow_pruned)
        # The pruned edges are used as a set, in CSR order, except where only a prefix of the most prunable
        # ones can be replaced (fewer free positions than edges): only then is the criterion's ranking needed.
        ordered = not regrow and space - target < n_edges
        if target >= n_edges:
            if n_edges == 0 or zeta == 0.0 or (target == space and not regrow):
                drop = torch.empty(0, dtype=torch.int64)
            else:
                drop = self._prune(graph, zeta, context, None, ordered)
                if not regrow:
                    drop = drop[:space - target]
            n_grow = drop.numel() + target - n_edges
        else:
            swap = count_for(zeta, target)
            if not regrow:
                swap = min(swap, space - n_edges)
            drop = self._prune(graph, zeta, context, n_edges - target + swap, False)
            n_grow = swap
        if drop.numel() == 0 and n_grow == 0:
            return RuleResult(graph.copy(), _EMPTY.clone(), _EMPTY.clone())
        if not is_increasing(drop):
            drop = torch.sort(drop).values
            if not is_increasing(drop):
                raise TopologyError(f"{self.prune!r} returned repeated edge positions")
        if drop.numel() and (int(drop[0]) < 0 or int(drop[-1]) >= n_edges):
            raise TopologyError(f"{self.prune!r} returned edge positions out of range [0, {n_edges})")
        # Positions increase, so do their keys: the dead keys and the kept ones come out sorted, and the
        # new layer is a merge of the kept edges with the births, never a re-sort of E keys.
        keys = graph.keys()
        dead = torch.from_numpy(keys.numpy()[drop.numpy()]) if keys.device.type == "cpu" else keys[drop]
        w = None if graph.weight is None else graph.weight.detach()
        # The kept edges as keys alone: src/dst are split from them only if the grow criterion asks.
        kept_keys, *kept_w = compact([keys] + ([] if w is None else [w]), drop)
        kept = LayerGraph._trusted_keys(n_in, graph.n_out, kept_keys, kept_w[0] if kept_w else None)
        context.pruned = dead
        exclude = _NO_KEYS if regrow else dead
        born = self._check_births(grow(kept, n_grow, context, exclude), n_grow, kept, exclude)
        back = contains(dead, born) if regrow else torch.zeros(born.numel(), dtype=torch.bool)
        reborn = born[back]
        if self.allow_regrow_pruned == "keep" and reborn.numel():
            # RigL's code: a re-selected edge simply stays, value and state included.
            again = contains(reborn, dead)
            born, dead = born[~back], dead[~again]
            back_w = None if w is None else w[drop[again].to(w.device)]
            births = edge_list(born, n_in)
            new = _insert(_insert(kept, reborn, edge_list(reborn, n_in), back_w), born, births,
                          None if w is None else _zeros_like(w, born.numel()))
            return RuleResult(new, births, edge_list(dead, n_in))
        births = edge_list(born, n_in)
        new = _insert(kept, born, births, None if w is None else _zeros_like(w, born.numel()))
        return RuleResult(new, births, edge_list(dead, n_in), edge_list(reborn, n_in))

    def _prune(self, graph: LayerGraph, zeta: float, context: RuleContext, count: int | None,
               ordered: bool) -> torch.Tensor:
        prune = self.prune
        assert prune is not None  # checked by __call__
        kw: dict = {} if count is None else {"count": count}
        if _takes_ordered(prune):
            kw["ordered"] = ordered  # increasing positions when the ranking is not needed: O(E), no sort
        return torch.as_tensor(prune(graph, zeta, context, **kw), dtype=torch.int64).reshape(-1)

    def _check_births(self, born, n: int, kept: LayerGraph, dead: torch.Tensor) -> torch.Tensor:
        """``born`` as sorted int64 keys, checked: cheap guards so a faulty custom criterion fails here,
        not inside a training run."""
        born = torch.as_tensor(born, dtype=torch.int64).reshape(-1)
        if born.numel() != n:
            raise TopologyError(f"{self.grow!r} grew {born.numel()} edges, {n} were asked for")
        if not is_increasing(born, strict=False):
            born = torch.sort(born).values
        if n and (int(born[0]) < 0 or int(born[-1]) >= kept.n_in * kept.n_out or not is_increasing(born)
                  or bool(contains(kept.keys(), born).any()) or bool(contains(dead, born).any())):
            raise TopologyError(f"{self.grow!r} grew a duplicate, existing, just-pruned or out-of-range edge")
        return born

    def observe(self, metrics: dict) -> None:
        """Pass validation metrics (e.g. ``{"val_acc": 0.91}``) to the criteria that use them."""
        for part in (self.prune, self.grow):
            if part is not None and hasattr(part, "observe"):
                part.observe(metrics)

    def state_dict(self) -> dict:
        return {"name": self.name, "prune": _state(self.prune), "grow": _state(self.grow)}

    def load_state_dict(self, state: dict) -> None:
        for key, part in (("prune", self.prune), ("grow", self.grow)):
            if part is not None and hasattr(part, "load_state_dict"):
                part.load_state_dict(state.get(key, {}))

    def __repr__(self) -> str:
        extra = "" if not self.allow_regrow_pruned else f", allow_regrow_pruned={self.allow_regrow_pruned!r}"
        return f"Rule(prune={self.prune!r}, grow={self.grow!r}{extra})"


def _check_regrow(value) -> bool | str:
    if value is True:
        return "reinit"
    if value is False or value in ("reinit", "keep"):
        return value
    raise ParameterError(f"allow_regrow_pruned must be False, True, 'reinit' or 'keep', got {value!r}")


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
        self.allow_regrow_pruned = False

    zeta = 0.0
    needs = frozenset()

    def __call__(self, graph, context=None, zeta=None, budget=None) -> RuleResult:
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
    """SET (Mocanu et al. 2018): per-sign magnitude pruning of ``ζ``, uniform random regrowth.

    ``allow_regrow_pruned=True`` is the reference code's regrowth: SET's
    ``weightsEvolution`` (``SET-MLP-Sparse-Python-Data-Structures``) and
    ``rewireMask`` (``SET-MLP-Keras-Weights-Mask``) draw random positions until
    one is absent from the *kept* edges, so a just-pruned edge may come back
    (reinitialised: ``randn()/10``, resp. 0). Their prune counts come from
    thresholds at sorted positions ``int((1 - ζ)·n_neg)`` and
    ``int(last_zero + ζ·n_pos)`` (truncation); topo rounds ``ζ·n`` half up.
    """

    def __init__(self, zeta: float = 0.3, allow_regrow_pruned: bool | str = False) -> None:
        super().__init__(MagnitudePrune(zeta, per_sign=True), RandomGrow(), name="set",
                         allow_regrow_pruned=allow_regrow_pruned)

    def __repr__(self) -> str:
        extra = f", allow_regrow_pruned={self.allow_regrow_pruned!r}" if self.allow_regrow_pruned else ""
        return f"SET(zeta={self.zeta}{extra})"


class CTRE(Rule):
    """CTRE (Atashgahi et al. 2022): magnitude pruning, growth by activation cosine similarity.

    ``variant="sim"`` ranks all free positions and the just-pruned edges by
    ``|cos|`` and replaces each re-selected pruned edge by a random one;
    ``variant="seq"`` grows by ``|cos|`` (passing over just-pruned edges) until
    ``monitor`` (default ``"val_acc"``, fed through ``observe`` or
    ``Evolver.step(metrics=...)``) stalls for ``patience`` evaluations, then
    grows at random. ``mode`` and ``pool_factor`` choose how the cosine
    ranking is searched (:class:`~topo.rules.CosineGrow`).

    Differences from CTRE's code (``zahraatashgahi/CTRE``,
    ``code/sparse_optimizers.py``, ``generic_mask_update`` and
    ``_get_update_op`` of ``SparseCTEOptimizer``/``SparseCTREsimOptimizer``),
    each an option here:

    * ``per_sign=True`` (default) prunes with SET's per-sign rule;
      ``per_sign=False`` is the code's: one ranking of ``|w|`` over the
      whole layer (plus ``N(0, 1e-5)`` noise there; ties by position here).
    * The code ranks the cosine scores over every position not kept, so
      CTRE-seq may regrow a just-pruned edge: ``allow_regrow_pruned="keep"``
      (the code's ``reinit_when_same=False`` keeps its value). CTRE-sim
      replaces such edges by random ones in both.
    * The code prunes ``int(ζ·E)`` edges (truncation); topo rounds half up.
    """

    def __init__(self, zeta: float = 0.2, variant: str = "sim", patience: int = 40, mode: GrowMode = "exact",
                 pool_factor: float = 10.0, monitor: str = "val_acc", per_sign: bool = True,
                 allow_regrow_pruned: bool | str = False) -> None:
        if variant == "sim":
            if allow_regrow_pruned:
                raise ParameterError("CTRE-sim replaces re-selected pruned edges by random ones; "
                                     "allow_regrow_pruned applies to variant='seq' only")
            grow: GrowCriterion = CosineGrow(mode, pool_factor, on_pruned="random")
        elif variant == "seq":
            grow = SequentialGrow(CosineGrow(mode, pool_factor), RandomGrow(), patience=patience, monitor=monitor)
        else:
            raise ParameterError(f"CTRE variant must be 'sim' or 'seq', got {variant!r}")
        super().__init__(MagnitudePrune(zeta, per_sign=per_sign), grow, name=f"ctre-{variant}",
                         allow_regrow_pruned=allow_regrow_pruned)
        self.variant = variant

    prune: MagnitudePrune  # CTRE always prunes by magnitude

    @property
    def per_sign(self) -> bool:
        return self.prune.per_sign

    def __repr__(self) -> str:
        extra = "" if self.per_sign else ", per_sign=False"
        extra += f", allow_regrow_pruned={self.allow_regrow_pruned!r}" if self.allow_regrow_pruned else ""
        return f"CTRE(zeta={self.zeta}, variant={self.variant!r}{extra})"


class RigL(Rule):
    """RigL (Evci et al. 2020): prune the smallest ``|w|``, grow the largest ``|dL/dW|`` of non-edges.

    Pair it with its schedule: ``Schedule(decay="cosine", every=100, stop_at=0.75, total=steps)``.
    ``allow_regrow_pruned="keep"`` is the reference code's growth
    (``google-research/rigl``, ``rigl/sparse_optimizers_base.py``,
    ``SparseRigLOptimizerBase.generic_mask_update`` → ``_get_update_op``):
    gradients are ranked over every position not kept, and a dropped edge
    that is grown again keeps its weight and momentum
    (``reinit_when_same=False``). The code drops ``int(ζ·E)`` edges with
    ``N(0, 1e-5)`` noise on ``|w|``; topo rounds half up and breaks ties by position.
    """

    def __init__(self, zeta: float = 0.3, mode: GrowMode = "exact", pool_factor: float = 10.0,
                 allow_regrow_pruned: bool | str = False) -> None:
        super().__init__(MagnitudePrune(zeta, per_sign=False), GradientGrow(mode, pool_factor), name="rigl",
                         allow_regrow_pruned=allow_regrow_pruned)

    def __repr__(self) -> str:
        extra = f", allow_regrow_pruned={self.allow_regrow_pruned!r}" if self.allow_regrow_pruned else ""
        return f"RigL(zeta={self.zeta}{extra})"


def _takes_ordered(prune) -> bool:
    """Whether ``prune`` accepts ``ordered=``: topo's criteria do; a user's ``__call__`` (even on a
    :class:`PruneCriterion` subclass) may not, and is then called as the rule contract documents."""
    call = type(prune).__call__ if not inspect.isfunction(prune) else prune
    if call is PruneCriterion.__call__:
        return True
    try:
        params = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    return "ordered" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
