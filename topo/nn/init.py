"""Initial values for the edges of a sparse layer.

A sparse layer's neuron sees ``in_degree`` inputs, not ``n_in``; the effective
fan-in is the layer's *mean in-degree* ``E / n_out`` and the effective fan-out
its mean out-degree ``E / n_in``. The schemes are the usual ones with those fans:

* ``"kaiming_uniform"`` (He): ``U(-b, b)``, ``b = sqrt(6 / fan_in)`` (gain √2, for ReLU);
* ``"xavier_uniform"`` (Glorot): ``b = sqrt(6 / (fan_in + fan_out))``;
* ``"zeros"``; ``("normal", sigma)``: ``N(0, sigma²)`` (SET's SciPy code uses σ = 0.1).

``"kaiming_uniform_dense"`` and ``"xavier_uniform_dense"`` use the *dense* fans
``n_in`` and ``n_out`` instead, i.e. the bounds of the same-shape ``nn.Linear`` or
Keras ``Dense`` layer. They are what SET's Keras code (``glorot_uniform`` on a
masked ``Dense``) and CTRE's code (``xavier_initializer`` on a masked layer) start
from: at ε = 20 their weights are ≈ 6× smaller than the effective-fan ones, which
decides whether regrown zero weights can outgrow the survivors within an epoch (see
docs/results.md §1).

The bias follows ``nn.Linear``: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, with the
effective fan-in (the dense fan-in for the ``_dense`` schemes).
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from ..errors import ParameterError
from ..graph.alloc import empty, zeros

__all__ = ["INIT_SCHEMES", "check_init", "fans", "init_values", "bias_bound"]

_UNIFORM = ("kaiming_uniform", "xavier_uniform", "kaiming_uniform_dense", "xavier_uniform_dense")
INIT_SCHEMES = (*_UNIFORM, "zeros", "normal")
_ALIASES = {"he_uniform": "kaiming_uniform", "glorot_uniform": "xavier_uniform", "zero": "zeros",
            "he_uniform_dense": "kaiming_uniform_dense", "glorot_uniform_dense": "xavier_uniform_dense"}


def check_init(init):
    """Normalise an init spec to a name or ``("normal", sigma)``; raise naming a bad one.

    ``"normal:0.1"`` is accepted for ``("normal", 0.1)`` (command lines, JSON configs).

    >>> check_init("glorot_uniform_dense"), check_init("normal:0.1")
    ('xavier_uniform_dense', ('normal', 0.1))
    """
    if isinstance(init, str) and init.startswith("normal:"):  # the command-line spelling of ("normal", sigma)
        try:
            init = ("normal", float(init[len("normal:"):]))
        except ValueError:
            raise ParameterError(f"init {init!r}: expected 'normal:SIGMA' with a number, e.g. 'normal:0.1'") from None
    if isinstance(init, str):
        name = _ALIASES.get(init, init)
        if name in _UNIFORM or name == "zeros":
            return name
        if name == "normal":
            raise ParameterError("init 'normal' needs a standard deviation: pass ('normal', sigma)")
    elif isinstance(init, (tuple, list)) and len(init) == 2 and init[0] == "normal":
        sigma = init[1]
        if isinstance(sigma, bool) or not isinstance(sigma, Real) or not math.isfinite(sigma) or sigma < 0:
            raise ParameterError(f"('normal', sigma) needs a finite sigma >= 0, got {sigma!r}")
        return ("normal", float(sigma))
    raise ParameterError(f"unknown init {init!r}; use one of {', '.join(map(repr, _UNIFORM))}, 'zeros' "
                         f"or ('normal', sigma) / 'normal:SIGMA'")


def fans(n_in: int, n_out: int, num_edges: int) -> tuple[float, float]:
    """Effective ``(fan_in, fan_out)`` of a sparse layer: mean in- and out-degree, at least 1."""
    return max(num_edges / n_out, 1.0), max(num_edges / n_in, 1.0)


def _fans_of(init, n_in: int, n_out: int, num_edges: int) -> tuple[float, float]:
    dense = isinstance(init, str) and init.endswith("_dense")
    return (float(n_in), float(n_out)) if dense else fans(n_in, n_out, num_edges)


def bias_bound(n_in: int, n_out: int, num_edges: int, init="kaiming_uniform") -> float:
    """Half-width of the ``nn.Linear``-style uniform bias init with the fan-in of ``init``."""
    return 1.0 / math.sqrt(_fans_of(check_init(init), n_in, n_out, num_edges)[0])


def init_values(count: int, n_in: int, n_out: int, num_edges: int, init="kaiming_uniform",
                generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                device=None) -> torch.Tensor:
    """``count`` fresh edge values for a layer with ``num_edges`` edges (the fans come from the whole layer).

    Values are drawn on the CPU from ``generator`` (same generator state → same
    values on every device), then moved to ``device``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> v = init_values(1000, 100, 50, 1000, "kaiming_uniform", g)   # fan_in = 20
    >>> bool(v.abs().max() <= (6 / 20) ** 0.5)
    True
    >>> w = init_values(1000, 100, 50, 1000, "xavier_uniform_dense", g)   # nn.Linear-sized bounds
    >>> bool(w.abs().max() <= (6 / 150) ** 0.5)
    True
    """
    init = check_init(init)
    dtype = dtype or torch.get_default_dtype()
    fan_in, fan_out = _fans_of(init, n_in, n_out, num_edges)
    # numpy-backed memory: huge pages for the layer's values (topo.graph.alloc); the same draws.
    if init == "zeros":
        out = zeros(count, dtype)
    elif init in _UNIFORM:
        bound = math.sqrt(6.0 / fan_in) if init.startswith("kaiming") else math.sqrt(6.0 / (fan_in + fan_out))
        out = empty(count, dtype).uniform_(-bound, bound, generator=generator)
    else:
        out = empty(count, dtype).normal_(0.0, init[1], generator=generator)
    return out.to(device) if device is not None else out
