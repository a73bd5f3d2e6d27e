"""The rule registries: rules, prune criteria and grow criteria by name.

:func:`from_name`, ``topo train --rule``, its help and the docs read three
tables (:class:`~topo.utils.registry.Registry`):

* :data:`RULES` — name → factory of a :class:`~topo.rules.Rule`: ``set``,
  ``ctre-sim``, ``ctre-seq``, ``rigl``, ``static``;
* :data:`PRUNE` and :data:`GROW` — criteria that combine as ``"PRUNE+GROW"``
  (e.g. ``"magnitude+cosine"``): PRUNE ``magnitude`` (per sign, SET's),
  ``magnitude-global``, ``cosine``, ``random``; GROW ``random``, ``cosine``,
  ``gradient``.

A factory is called with the options of :func:`from_name` that it names in its
signature (``zeta``, ``mode``, ``pool_factor``, ``patience``; all of them if it
takes ``**options``); ``zeta`` is ``None`` when not given, so the rule keeps its
own default. Register your own with :func:`register`, :func:`register_prune` and
:func:`register_grow`:

>>> import topo.rules as R
>>> _ = R.register("set-half", lambda zeta=None: R.Rule(R.MagnitudePrune(0.5 if zeta is None else zeta),
...                                                      R.RandomGrow(), name="set-half"),
...                help="SET's magnitude rule at zeta 0.5")
>>> R.from_name("set-half").zeta, "set-half" in R.RULES.names()
(0.5, True)
>>> _ = R.RULES.unregister("set-half")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import ParameterError, ParameterTypeError
from ..utils.registry import Registry
from .compose import CTRE, SET, RigL, Rule, Static
from .grow import CosineGrow, GradientGrow, GrowCriterion, RandomGrow
from .prune import CosinePrune, MagnitudePrune, PruneCriterion, RandomPrune
from .scores import MODES

__all__ = ["RULES", "PRUNE", "GROW", "RULE_NAMES", "register", "register_prune", "register_grow", "from_name",
           "names"]

#: name → factory ``(zeta=None, **options) -> Rule``.
RULES: Registry[Callable[..., Rule]] = Registry("rule")
#: name → factory ``(zeta) -> PruneCriterion`` (the PRUNE of ``"PRUNE+GROW"``).
PRUNE: Registry[Callable[..., PruneCriterion]] = Registry("prune criterion")
#: name → factory ``(**options) -> GrowCriterion`` (the GROW of ``"PRUNE+GROW"``).
GROW: Registry[Callable[..., GrowCriterion]] = Registry("grow criterion")


def _check_factory(name: str, factory: Any) -> None:
    if not callable(factory):
        raise ParameterTypeError(f"the factory of {name!r} must be callable, got {factory!r}")
    if "+" in name:
        raise ParameterError(f"{name!r}: '+' joins PRUNE+GROW names and cannot be part of one")


def register(name: str, factory: Callable[..., Rule], *, help: str = "", replace: bool = False):
    """Register a rule factory under ``name`` (for :func:`from_name` and ``topo train --rule``)."""
    _check_factory(name, factory)
    return RULES.register(name, factory, help=help, replace=replace)


def register_prune(name: str, factory: Callable[..., PruneCriterion], *, help: str = "", replace: bool = False):
    """Register a prune criterion factory ``(zeta) -> PruneCriterion``, usable as ``"name+GROW"``."""
    _check_factory(name, factory)
    return PRUNE.register(name, factory, help=help, replace=replace)


def register_grow(name: str, factory: Callable[..., GrowCriterion], *, help: str = "", replace: bool = False):
    """Register a grow criterion factory ``(**options) -> GrowCriterion``, usable as ``"PRUNE+name"``."""
    _check_factory(name, factory)
    return GROW.register(name, factory, help=help, replace=replace)


def _call(factory: Callable[..., Any], **options: Any) -> Any:
    """Call ``factory`` with the options its signature names (all of them if it takes ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass everything
        return factory(**options)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return factory(**options)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return factory(**{k: v for k, v in options.items() if k in named})


def _zeta(zeta: float | None) -> dict:
    return {} if zeta is None else {"zeta": zeta}


register("set", lambda zeta=None, allow_regrow_pruned=False: SET(**_zeta(zeta),
                                                                allow_regrow_pruned=allow_regrow_pruned),
         help="SET (Mocanu et al. 2018): per-sign magnitude pruning, random regrowth, zeta 0.3")
register("ctre-sim", lambda zeta=None, mode="exact", pool_factor=10.0, allow_regrow_pruned=False: CTRE(
    **_zeta(zeta), variant="sim", mode=mode, pool_factor=pool_factor, allow_regrow_pruned=allow_regrow_pruned),
    help="CTRE (Atashgahi et al. 2022), simultaneous: magnitude pruning, cosine growth, zeta 0.2")
register("ctre-seq", lambda zeta=None, mode="exact", pool_factor=10.0, patience=40, allow_regrow_pruned=False: CTRE(
    **_zeta(zeta), variant="seq", patience=patience, mode=mode, pool_factor=pool_factor,
    allow_regrow_pruned=allow_regrow_pruned),
    help="CTRE, sequential: cosine growth until val_acc stalls, then random growth")
register("rigl", lambda zeta=None, mode="exact", pool_factor=10.0, allow_regrow_pruned=False: RigL(
    **_zeta(zeta), mode=mode, pool_factor=pool_factor, allow_regrow_pruned=allow_regrow_pruned),
         help="RigL (Evci et al. 2020): global magnitude pruning, gradient growth, zeta 0.3")
register("static", lambda: Static(), help="no evolution: the initial Erdos-Renyi topology stays")

register_prune("magnitude", lambda zeta: MagnitudePrune(zeta, per_sign=True),
               help="smallest |w| per sign (SET's)")
register_prune("magnitude-global", lambda zeta: MagnitudePrune(zeta, per_sign=False),
               help="smallest |w| over the layer")
register_prune("cosine", lambda zeta: CosinePrune(zeta), help="least activation-cosine similar pairs")
register_prune("random", lambda zeta: RandomPrune(zeta), help="uniformly random edges")
register_grow("random", lambda: RandomGrow(), help="uniformly random free positions")
register_grow("cosine", lambda mode="exact", pool_factor=10.0: CosineGrow(mode, pool_factor),
              help="most activation-cosine similar free pairs")
register_grow("gradient", lambda mode="exact", pool_factor=10.0: GradientGrow(mode, pool_factor),
              help="largest |dL/dW| of free positions (RigL's)")

#: The built-in rule names (a snapshot; :func:`names` also lists rules registered later).
RULE_NAMES = RULES.names()


def names() -> tuple[str, ...]:
    """Every registered rule name (besides the ``"PRUNE+GROW"`` combinations)."""
    return RULES.names()


def from_name(name: str, zeta: float | None = None, *, mode: str = "exact", pool_factor: float = 10.0,
              patience: int = 40, allow_regrow_pruned: bool | str = False) -> Rule:
    """The rule called ``name``: an entry of :data:`RULES`, or ``"PRUNE+GROW"`` of :data:`PRUNE` and :data:`GROW`.

    Built in: ``"set"``, ``"ctre-sim"``, ``"ctre-seq"``, ``"rigl"``, ``"static"``,
    or ``"PRUNE+GROW"`` with PRUNE in ``magnitude`` (per sign), ``magnitude-global``,
    ``cosine``, ``random`` and GROW in ``random``, ``cosine``, ``gradient``. ``zeta``
    defaults to the rule's own (0.2 for CTRE, else 0.3); ``mode`` (``"exact"``,
    ``"approx"``, ``"pool"``, ``"pool-uniform"``) and ``pool_factor`` apply to cosine and
    gradient growth, ``patience`` to CTRE-seq, ``allow_regrow_pruned`` (see
    :class:`~topo.rules.Rule`) to every rule that regrows (a registered factory
    receives the options its signature names).

    Examples
    --------
    >>> from_name("set")
    SET(zeta=0.3)
    >>> from_name("cosine+random", 0.2)
    Rule(prune=CosinePrune(zeta=0.2), grow=RandomGrow())
    """
    if not isinstance(name, str):
        raise ParameterTypeError(f"rule name must be a string, got {name!r}")
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {MODES}, got {mode!r}")
    key = name.strip().lower()
    options = {"mode": mode, "pool_factor": pool_factor, "patience": patience}
    if allow_regrow_pruned:
        options["allow_regrow_pruned"] = allow_regrow_pruned
    if key in RULES:
        return _call(RULES.get(key), zeta=zeta, **options)
    prune, _, grow = key.partition("+")
    if prune in PRUNE and grow in GROW:
        return Rule(_call(PRUNE.get(prune), zeta=0.3 if zeta is None else zeta, **options),
                    _call(GROW.get(grow), **options), name=key, allow_regrow_pruned=allow_regrow_pruned)
    combos = f"PRUNE+GROW with PRUNE in {sorted(PRUNE)} and GROW in {sorted(GROW)}"
    raise ParameterError(f"unknown rule {name!r}: expected one of {list(RULES.names())} or {combos}")
