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

__all__ = ["rule_names", "rule_help", "parse_hidden", "check_rule", "dense_mlp", "build_model", "build_dae",
           "build_evolver", "build_schedule"]


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


def check_rule(name: str, zeta: float | None = None, **options):
    """The :class:`topo.rules.Rule` called ``name`` (``None`` for ``"dense"``); unknown names raise.

    ``options`` (``mode``, ``patience``, ...) go to :func:`topo.rules.from_name`.
    """
    from .. import rules

    if zeta is not None:
        rules.check_zeta(zeta)
    if isinstance(name, str) and name.strip().lower() == "dense":
        return None
    try:
        return rules.from_name(name, zeta, **options)
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


#: What ``"auto"`` means for ``topo train``'s activation, initial and regrown weights. SET and its
#: static baseline follow SET's own code (SelimaC/large-scale-sparse-neural-networks,
#: ``set_mlp_sequential.py``: ``AlternatedLeftReLU(∓0.6)``, He-uniform on the dense fan-in for initial
#: *and* regrown weights); +1.8 points on Fashion-MNIST at 10 epochs (docs/results.md §6). The other
#: rules keep the settings their own studies were tuned with (ε = 1 cosine rules do not train from a
#: dense-fan start: docs/results.md §2); the dense MLP is an ordinary torch MLP with ReLU.
#: ``lr_density_power`` 0.5 gives SET's 4 %-dense layers 5× the learning rate (topo.nn.param_groups):
#: at lr 0.01 they are still climbing after 10 epochs; +1.9 points on Fashion-MNIST, 3 seeds (docs/results.md §7).
_SET_CODE = {"activation": "allrelu", "init": "kaiming_uniform_dense", "regrow_init": "kaiming_uniform_dense",
             "lr_density_power": 0.5}
_OTHER = {"activation": "relu", "init": "kaiming_uniform", "regrow_init": "zeros", "lr_density_power": 0.0}
RECIPES = {"set": _SET_CODE, "static": _SET_CODE, "dense": _OTHER}


def resolve_auto(settings: dict) -> dict:
    """``settings`` with every ``"auto"`` activation/init/regrow_init/lr_density_power replaced by its
    rule's recipe.

    Examples
    --------
    >>> resolve_auto({"rule": "set", "activation": "auto", "init": "auto", "regrow_init": "zeros"})["init"]
    'kaiming_uniform_dense'
    >>> resolve_auto({"rule": "rigl", "activation": "auto", "init": "auto", "regrow_init": "auto"})["activation"]
    'relu'
    """
    rule = str(settings.get("rule", "")).strip().lower()
    recipe = RECIPES.get(rule, _OTHER)
    out = dict(settings)
    for key, value in recipe.items():
        if out.get(key) == "auto":
            out[key] = value
    return out


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


def build_dae(n_features: int, n_hidden: int, rule: str, epsilon: float | None = None,
              density: float | None = None, noise: float = 0.2, dropout: float = 0.2, output: str = "linear",
              backend: str = "auto", seed: int = 0, init="normal:0.1", regrow_init="zeros") -> nn.Module:
    """A :class:`topo.nn.SparseDAE` (``rule="dense"``: fully connected, the dense baseline).

    Examples
    --------
    >>> dae = build_dae(20, 8, "set", epsilon=2, seed=0)
    >>> type(dae).__name__, dae.noise, [m.out_features for m in dae.sparse_layers]
    ('SparseDAE', 0.2, [8, 20])
    """
    from ..nn import SparseDAE
    from ..nn.init import check_init

    dense = rule.strip().lower() == "dense"
    return SparseDAE(n_features, n_hidden, epsilon=None if dense else epsilon, density=1.0 if dense else density,
                     noise=noise, dropout=dropout, output=output, init=check_init(init),
                     regrow_init=check_init(regrow_init), backend="dense" if dense else backend, seed=seed)


def build_evolver(model: nn.Module, rule, seed: int = 0, **options):
    """A :class:`topo.Evolver` applying ``rule`` (a name or rule) to ``model``; ``None`` for dense models.

    ``options`` (``schedule``, ``max_samples``, ...) go to the Evolver.
    """
    from ..evolve import Evolver

    if isinstance(rule, str):
        rule = check_rule(rule)
    if rule is None:
        return None
    return Evolver(model, rule, seed=seed, **options)


def build_schedule(every="epoch", until: float = 1.0, decay: str = "constant"):
    """A :class:`topo.rules.Schedule` from ``topo train``'s ``--update-every``/``--update-until``/``--zeta-decay``.

    Examples
    --------
    >>> build_schedule("100", 0.75, "cosine")
    Schedule(decay='cosine', every=100, stop_at=0.75, total=None)
    """
    from ..rules import Schedule

    if isinstance(every, str) and every.strip().lower() != "epoch":
        try:
            every = int(every)
        except ValueError:
            raise ParameterError(f"--update-every must be 'epoch' or a positive number of optimizer steps, "
                                 f"got {every!r}") from None
    elif isinstance(every, str):
        every = "epoch"
    return Schedule(decay=decay, every=every, stop_at=until)
