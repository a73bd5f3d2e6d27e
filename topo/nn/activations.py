"""The activation registry: the names ``compile``, ``Evolver``, ``topo train --activation`` accept.

=================  ==========================================
``relu``           :class:`torch.nn.ReLU` (the default)
``tanh``           :class:`torch.nn.Tanh`
``sigmoid``        :class:`torch.nn.Sigmoid`
``gelu``           :class:`torch.nn.GELU`
``identity``       :class:`torch.nn.Identity`
``leaky_relu``     :class:`torch.nn.LeakyReLU`
``elu``            :class:`torch.nn.ELU`
``silu``           :class:`torch.nn.SiLU`
=================  ==========================================

Add one with :func:`register_activation` (a zero-argument factory returning an
``nn.Module``); every place that takes an activation name knows it from then on.

Examples
--------
>>> import torch
>>> from topo.nn.activations import make_activation, register_activation, ACTIVATIONS
>>> make_activation("tanh")
Tanh()
>>> _ = register_activation("softplus2", lambda: torch.nn.Softplus(beta=2.0), help="softplus, beta 2")
>>> make_activation("softplus2")
Softplus(beta=2.0, threshold=20.0)
>>> _ = ACTIVATIONS.unregister("softplus2")
"""

from __future__ import annotations

import copy
from typing import Callable

from torch import nn

from ..utils.registry import Registry

__all__ = ["ACTIVATIONS", "register_activation", "make_activation"]

#: name → zero-argument factory of an ``nn.Module``.
ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")

for _name, _cls in (("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU),
                    ("identity", nn.Identity), ("leaky_relu", nn.LeakyReLU), ("elu", nn.ELU), ("silu", nn.SiLU)):
    ACTIVATIONS.register(_name, _cls, help=f"torch.nn.{_cls.__name__}")


def register_activation(name: str, factory: Callable[[], nn.Module], *, help: str = "",
                        replace: bool = False) -> Callable[[], nn.Module]:
    """Register ``factory`` (called with no arguments, returning an ``nn.Module``) as activation ``name``."""
    if not callable(factory):
        from ..errors import ParameterTypeError
        raise ParameterTypeError(f"an activation factory must be callable, got {factory!r}")
    return ACTIVATIONS.register(name, factory, help=help, replace=replace)


def make_activation(spec, allow: str = "module") -> nn.Module | Callable:
    """A fresh activation from a registered name, or ``spec`` itself.

    ``allow="module"``: ``spec`` may be an ``nn.Module`` (deep-copied, so modules
    with parameters stay untied between positions); ``allow="callable"``: any
    callable is returned as is (the :class:`~topo.Evolver`'s activation function).
    Unknown names raise :class:`~topo.errors.ParameterError` listing the registered ones.
    """
    if allow == "module" and isinstance(spec, nn.Module):
        return copy.deepcopy(spec)
    if allow == "callable" and callable(spec):
        return spec
    if isinstance(spec, str):
        return ACTIVATIONS.get(spec)()
    from ..errors import ParameterError
    what = "an nn.Module" if allow == "module" else "a callable"
    raise ParameterError(f"unknown activation {spec!r}; use {what} or one of {ACTIVATIONS.choices()}")
