"""Optimizer parameter groups whose sparse weights learn as fast, per step, as dense ones would.

One SGD step changes a neuron's pre-activation by ``Δz_j = −lr · δ_j · Σ_{i ∈ in(j)} x_i²``: the sum
runs over the neuron's inputs, so a layer at density ``d`` moves its outputs ``d`` times as far per step
as the dense layer at the same learning rate (Adam's sign-like steps scale the same way). At SET's
ε = 20 the 784-1000-1000-1000 hidden layers are 4–4.6 % dense, and at the dense network's ``lr = 0.01``
SET is still climbing after 10 epochs (docs/results.md §7). :func:`param_groups` gives each sparse
layer's weight ``lr · d^(−power)``: ``power = 1`` restores the dense layer's step in function space,
``0`` is the plain learning rate; biases, dense layers and every other parameter keep ``lr``.
"""

from __future__ import annotations

import math

from torch import nn

from ..errors import ParameterError, ParameterTypeError

__all__ = ["param_groups", "layer_lr"]


def layer_lr(lr: float, density: float, power: float) -> float:
    """``lr · density^(−power)``: the learning rate of a sparse weight at ``density``.

    >>> layer_lr(0.01, 0.04, 0.5), layer_lr(0.01, 1.0, 1.0)
    (0.05, 0.01)
    """
    if not 0.0 < density <= 1.0:
        raise ParameterError(f"density must be in (0, 1], got {density!r}")
    return float(lr) * float(density) ** -float(power)


def param_groups(model: nn.Module, lr: float, power: float = 1.0) -> list[dict]:
    """Parameter groups for any torch optimizer: each :class:`~topo.nn.SparseLinear` weight at
    ``lr · density^(−power)``, all other parameters at ``lr``.

    The densities are the layers' when called; rewiring keeps each weight the same ``Parameter``, so
    the groups stay valid under SET-style rules (a rule that changes the density keeps the old rate).
    A weight shared by several layers is listed once, at its first layer's rate.

    Parameters
    ----------
    model : nn.Module
        Any module; its SparseLinear layers are found with ``model.modules()``.
    lr : float
        The learning rate of dense parameters.
    power : float
        ``0`` (every parameter at ``lr``) to ``1`` (a sparse neuron's pre-activation moves per step
        as a dense one's), or beyond.

    Returns
    -------
    list of dict
        ``{"params": [...], "lr": ...}`` groups (no empty group), one per sparse layer then the rest.

    Examples
    --------
    >>> import torch, topo
    >>> model = topo.compile(topo.erdos_renyi([100, 100, 10], density=0.04, seed=0), seed=0)
    >>> groups = topo.nn.param_groups(model, lr=0.01, power=0.5)
    >>> [round(g["lr"], 4) for g in groups]
    [0.05, 0.05, 0.01]
    >>> opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    """
    from .linear import SparseLinear

    if not isinstance(model, nn.Module):
        raise ParameterTypeError(f"model must be an nn.Module, got {type(model).__name__}")
    for name, v in (("lr", lr), ("power", power)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < 0 or (name == "lr" and v == 0):
            raise ParameterError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} finite "
                                 f"number, got {v!r}")
    groups, seen = [], set()
    for layer in model.modules():
        if isinstance(layer, SparseLinear) and id(layer.weight) not in seen and layer.weight.requires_grad:
            density = max(layer.num_edges, 1) / (layer.in_features * layer.out_features)
            groups.append({"params": [layer.weight], "lr": layer_lr(lr, min(density, 1.0), power)})
            seen.add(id(layer.weight))
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        groups.append({"params": rest, "lr": float(lr)})
    return groups
