"""Activations: the registry of names every part of topo accepts, and those ``torch.nn`` lacks.

**The registry.** :data:`ACTIVATIONS` names what ``compile``, ``Evolver``, the dense
baseline and ``topo train --activation`` accept:

=================  ==========================================
``relu``           :class:`torch.nn.ReLU` (the default)
``tanh``           :class:`torch.nn.Tanh`
``sigmoid``        :class:`torch.nn.Sigmoid`
``gelu``           :class:`torch.nn.GELU`
``identity``       :class:`torch.nn.Identity`
``leaky_relu``     :class:`torch.nn.LeakyReLU`
``elu``            :class:`torch.nn.ELU`
``silu``           :class:`torch.nn.SiLU`
``allrelu``        :class:`AllReLU` (``allrelu:ALPHA``; α 0.6 by default)
=================  ==========================================

A spec is ``NAME`` or ``NAME:ARG``. A factory is called with what its signature
names: ``arg`` (the text after ``:``, ``None`` without one) and ``position`` (the
hidden layer, 0 = first), so position-dependent activations such as AllReLU fit.
Add one with :func:`register_activation`; every place that takes an activation name
knows it from then on.

**AllReLU** is the alternating leaky activation of Curci, Mocanu & Pechenizkiy
(2021, "Truly Sparse Neural Networks at Scale"): ``f(x) = x`` for ``x ≥ 0`` and
``slope · x`` below, with the slope alternating ``-α, +α, -α, …`` from the first hidden
layer on. A negative slope makes negative pre-activations carry signal (as ``|x|``-like
units), which the very sparse layers of SET need more than dense ones do; the authors'
SET-MLP (``set_mlp_sequential.py`` in SelimaC/large-scale-sparse-neural-networks, class
``AlternatedLeftReLU``) uses α = 0.6 on Fashion-MNIST.

Examples
--------
>>> import torch
>>> make_activation("tanh"), make_activation("allrelu:0.5", position=1)
(Tanh(), AllReLU(alpha=0.5, position=1, slope=0.5))
>>> _ = register_activation("softplus2", lambda: torch.nn.Softplus(beta=2.0), help="softplus, beta 2")
>>> make_activation("softplus2")
Softplus(beta=2.0, threshold=20.0)
>>> _ = ACTIVATIONS.unregister("softplus2")
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Literal, overload

import torch
from torch import nn

from ..errors import ParameterError, ParameterTypeError
from ..utils.registry import Registry

__all__ = ["ACTIVATIONS", "register_activation", "make_activation", "AllReLU", "allrelu_slope", "parse_allrelu"]

#: α of the authors' Fashion-MNIST SET-MLP.
DEFAULT_ALPHA = 0.6


def allrelu_slope(alpha: float, position: int) -> float:
    """The negative-side slope of hidden layer ``position`` (0 = first hidden layer): ``-α`` at even
    positions, ``+α`` at odd ones.

    >>> allrelu_slope(0.6, 0), allrelu_slope(0.6, 1)
    (-0.6, 0.6)
    """
    return -float(alpha) if position % 2 == 0 else float(alpha)


def parse_allrelu(spec: str) -> float | None:
    """α of an ``"allrelu"`` / ``"allrelu:ALPHA"`` spec, ``None`` for any other string.

    >>> parse_allrelu("allrelu"), parse_allrelu("AllReLU:0.75"), parse_allrelu("relu")
    (0.6, 0.75, None)
    """
    if not isinstance(spec, str):
        return None
    name, _, arg = spec.strip().lower().partition(":")
    if name != "allrelu":
        return None
    if not arg:
        return DEFAULT_ALPHA
    try:
        alpha = float(arg)
    except ValueError:
        raise ParameterError(f"allrelu's α must be a number, got {arg!r} in {spec!r}") from None
    if not 0.0 <= alpha < 1.0 or alpha != alpha:
        raise ParameterError(f"allrelu's α must be in [0, 1), got {alpha!r} in {spec!r}")
    return alpha


class AllReLU(nn.Module):
    """``x`` for ``x ≥ 0``, ``slope · x`` below; one module per hidden layer (see the module docstring).

    Parameters
    ----------
    alpha : float
        Magnitude of the negative-side slope, in ``[0, 1)``.
    position : int
        Index of the hidden layer (0 = first): the slope is ``-alpha`` at even positions and
        ``+alpha`` at odd ones.

    Examples
    --------
    >>> import torch
    >>> AllReLU(0.5, position=0)(torch.tensor([-2.0, 3.0]))
    tensor([1., 3.])
    >>> AllReLU(0.5, position=1)(torch.tensor([-2.0, 3.0]))
    tensor([-1.,  3.])
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA, position: int = 0) -> None:
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 1.0:
            raise ParameterError(f"AllReLU alpha must be in [0, 1), got {alpha!r}")
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ParameterError(f"AllReLU position must be a non-negative int, got {position!r}")
        self.alpha, self.position = float(alpha), position
        self.slope = allrelu_slope(alpha, position)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # where() rather than leaky_relu: leaky_relu's slope must not be negative for its in-place form
        # and this keeps one kernel for both signs.
        return torch.where(x >= 0, x, x * self.slope)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, position={self.position}, slope={self.slope}"


#: name → factory of an ``nn.Module``, called with the ``arg``/``position`` it names.
ACTIVATIONS: Registry[Callable[..., nn.Module]] = Registry("activation")

for _name, _cls in (("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU),
                    ("identity", nn.Identity), ("leaky_relu", nn.LeakyReLU), ("elu", nn.ELU), ("silu", nn.SiLU)):
    ACTIVATIONS.register(_name, _cls, help=f"torch.nn.{_cls.__name__}")


def _allrelu(arg: str | None = None, position: int = 0) -> AllReLU:
    alpha = parse_allrelu("allrelu" if arg is None else f"allrelu:{arg}")
    return AllReLU(DEFAULT_ALPHA if alpha is None else alpha, position)


ACTIVATIONS.register("allrelu", _allrelu, help="SET's alternating leaky ReLU (Curci et al. 2021), allrelu[:ALPHA]")


def register_activation(name: str, factory: Callable[..., nn.Module], *, help: str = "",
                        replace: bool = False) -> Callable[..., nn.Module]:
    """Register ``factory`` (returning an ``nn.Module``; may take ``arg``, ``position``) as activation ``name``."""
    if not callable(factory):
        raise ParameterTypeError(f"an activation factory must be callable, got {factory!r}")
    return ACTIVATIONS.register(name, factory, help=help, replace=replace)


@overload
def make_activation(spec, allow: Literal["module"] = "module", position: int = 0) -> nn.Module: ...
@overload
def make_activation(spec, allow: str, position: int = 0) -> nn.Module | Callable: ...


def make_activation(spec, allow: str = "module", position: int = 0) -> nn.Module | Callable:
    """A fresh activation from a registered ``NAME[:ARG]``, or ``spec`` itself.

    ``allow="module"``: ``spec`` may be an ``nn.Module`` (deep-copied, so modules
    with parameters stay untied between positions); ``allow="callable"``: any
    callable is returned as is (the :class:`~topo.Evolver`'s activation function).
    ``position`` is the hidden layer the activation follows (0 = first). Unknown
    names raise :class:`~topo.errors.ParameterError` listing the registered ones.
    """
    if allow == "module" and isinstance(spec, nn.Module):
        return copy.deepcopy(spec)
    if allow == "callable" and callable(spec):
        return spec
    if isinstance(spec, str):
        name, sep, arg = spec.partition(":")
        factory = ACTIVATIONS.get(name)
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        kwargs = {k: v for k, v in (("arg", arg if sep else None), ("position", position)) if k in params}
        if sep and "arg" not in params:
            raise ParameterError(f"activation {name!r} takes no argument, got {spec!r}")
        return factory(**kwargs)
    what = "an nn.Module" if allow == "module" else "a callable"
    raise ParameterError(f"unknown activation {spec!r}; use {what} or one of {ACTIVATIONS.choices()}")
