"""Models and evolvers from run settings: what ``topo train`` and ``topo demo`` build.

``rule="dense"`` is an ordinary torch MLP of ``nn.Linear`` layers (the dense
baseline); every other rule is a :class:`topo.nn.SparseMLP` on an Erdős–Rényi
topology (SET's ``epsilon`` or a ``density``, the output layer included)
evolved by :func:`topo.rules.from_name` ``(rule)`` — ``"static"`` never changes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError, TopoError

__all__ = ["rule_names", "rule_help", "parse_hidden", "check_rule", "dense_mlp", "build_model", "build_evolver"]


def rule_names() -> tuple[str, ...]:
    """What ``topo train --rule`` takes besides ``PRUNE+GROW``: the rule registry's names and ``"dense"``."""
    from .. import rules

    return (*rules.names(), "dense")


def rule_help() -> str:
    """The ``--rule`` help, read off the rule registries (:mod:`topo.rules.registry`)."""
    from .. import rules

    return (f"{', '.join(rule_names())} (the dense torch baseline) or PRUNE+GROW with PRUNE in "
            f"{', '.join(rules.PRUNE.names())} and GROW in {', '.join(rules.GROW.names())} (default set)")


def parse_hidden(spec) -> list[int]:
    """``"1000,1000"`` (or a sequence of ints) → ``[1000, 1000]``; empty or non-positive sizes raise.

    Examples
    --------
    >>> parse_hidden("100, 50")
    [100, 50]
    """
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    if not items or items == [""]:
        raise ParameterError(f"hidden layer sizes are empty ({spec!r}); give e.g. --hidden 1000,1000,1000")
    out = []
    for s in items:
        try:
            n = int(s)
        except (TypeError, ValueError):
            raise ParameterError(f"hidden layer size {s!r} in {spec!r} is not an integer") from None
        if n <= 0 or (isinstance(s, float) and s != n):
            raise ParameterError(f"hidden layer sizes must be positive integers, got {s!r} in {spec!r}")
        out.append(n)
    return out


def check_rule(name: str, zeta: float | None = None):
    """The :class:`topo.rules.Rule` called ``name`` (``None`` for ``"dense"``); unknown names raise."""
    from .. import rules

    if zeta is not None:
        rules.check_zeta(zeta)
    if isinstance(name, str) and name.strip().lower() == "dense":
        return None
    try:
        return rules.from_name(name, zeta)
    except TopoError as err:
        raise type(err)(f"{err} (or 'dense' for the dense torch baseline)") from None


def dense_mlp(sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0,
              seed: int | None = None) -> nn.Sequential:
    """``Linear → activation → dropout`` per hidden layer, then a ``Linear`` to logits.

    ``seed`` makes ``nn.Linear``'s own init reproducible: the layers are built under a forked
    RNG seeded with it (:func:`torch.random.fork_rng`), so the weights are those of
    ``torch.manual_seed(seed)`` followed by the same constructors, and the caller's global
    RNG state is left as it was. ``seed=None`` draws from the global RNG, like ``nn.Linear``.

    Examples
    --------
    >>> [type(m).__name__ for m in dense_mlp([4, 8, 2], dropout=0.1)]
    ['Linear', 'ReLU', 'Dropout', 'Linear']
    """
    from ..nn.mlp import _activation

    if not isinstance(activation, str):
        raise ParameterTypeError(f"activation must be a name, got {activation!r}")
    _activation(activation)  # an unknown name fails before any weight is drawn
    if seed is None:
        return _dense_layers(sizes, activation, dropout)
    # nn.Linear initialises from the global RNG only; fork it (CPU state; no CUDA state is touched, the
    # layers are built on CPU) so the seed reaches the init without leaking into the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _dense_layers(sizes, activation, dropout)


def _dense_layers(sizes: Sequence[int], activation: str, dropout: float) -> nn.Sequential:
    from ..nn.activations import make_activation

    mods: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            mods += [make_activation(activation, position=k), nn.Dropout(dropout)]
    return nn.Sequential(*mods)


def build_model(sizes: Sequence[int], rule: str, epsilon: float | None = None, density: float | None = None,
                activation: str = "relu", dropout: float = 0.0, backend: str = "auto", seed: int = 0,
                device=None, init="kaiming_uniform", regrow_init="zeros") -> nn.Module:
    """The model of a run: :func:`dense_mlp` for ``rule="dense"`` (``init`` unused), else a compiled ER topology."""
    from ..graph import erdos_renyi
    from ..nn import compile

    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ParameterError(f"dropout must be in [0, 1), got {dropout!r}")
    if rule.strip().lower() == "dense":
        model = dense_mlp(sizes, activation, dropout, seed=seed)
        return model if device is None else model.to(device)
    if epsilon is None and density is None:
        raise ParameterError("a sparse model needs epsilon or density")
    topology = erdos_renyi(sizes, epsilon=epsilon, density=density, seed=seed)
    return compile(topology, activation=activation, dropout=dropout, backend=backend, device=device, seed=seed,
                   init=init, regrow_init=regrow_init)


def build_evolver(model: nn.Module, rule, seed: int = 0):
    """A :class:`topo.Evolver` applying ``rule`` (a name or rule) to ``model``; ``None`` for dense models."""
    from ..evolve import Evolver

    if isinstance(rule, str):
        rule = check_rule(rule)
    if rule is None:
        return None
    return Evolver(model, rule, seed=seed)
