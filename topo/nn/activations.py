"""Activations of sparse networks that ``torch.nn`` lacks.

:class:`AllReLU` is the alternating leaky activation of Curci, Mocanu & Pechenizkiy
(2021, "Truly Sparse Neural Networks at Scale"): ``f(x) = x`` for ``x ≥ 0`` and
``slope · x`` below, with the slope alternating ``-α, +α, -α, …`` from the first hidden
layer on. A negative slope makes negative pre-activations carry signal (as ``|x|``-like
units), which the very sparse layers of SET need more than dense ones do; the authors'
SET-MLP (``set_mlp_sequential.py`` in SelimaC/large-scale-sparse-neural-networks, class
``AlternatedLeftReLU``) uses α = 0.6 on Fashion-MNIST.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AllReLU", "allrelu_slope", "parse_allrelu"]

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
        raise ValueError(f"allrelu's α must be a number, got {arg!r} in {spec!r}") from None
    if not 0.0 <= alpha < 1.0 or alpha != alpha:
        raise ValueError(f"allrelu's α must be in [0, 1), got {alpha!r} in {spec!r}")
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
            raise ValueError(f"AllReLU alpha must be in [0, 1), got {alpha!r}")
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(f"AllReLU position must be a non-negative int, got {position!r}")
        self.alpha, self.position = float(alpha), position
        self.slope = allrelu_slope(alpha, position)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # where() rather than leaky_relu: leaky_relu's slope must not be negative for its in-place form
        # and this keeps one kernel for both signs.
        return torch.where(x >= 0, x, x * self.slope)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, position={self.position}, slope={self.slope}"
