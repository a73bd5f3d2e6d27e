"""Constructors of topologies: Erdős–Rényi (SET), ERK (RigL), from masks and edge lists."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from numbers import Real

import numpy as np
import torch

from ..errors import ParameterError, TopoError, TopologyError
from .layer import LayerGraph, check_key_space
from .sampling import make_generator, sample_keys
from .topology import Topology, check_sizes

__all__ = ["set_density", "erdos_renyi", "erk_densities", "erk", "from_dense_masks", "from_edges"]


def set_density(n_in: int, n_out: int, epsilon: float) -> float:
    """SET's density ``ε(n_in + n_out) / (n_in · n_out)``, capped at 1 (a dense layer).

    Examples
    --------
    >>> round(set_density(784, 1000, 20), 5)
    0.04551
    """
    return min(1.0, epsilon * (n_in + n_out) / (n_in * n_out))


def _check_density(d, name="density") -> float:
    if isinstance(d, bool) or not isinstance(d, Real) or not (0.0 < float(d) <= 1.0):
        raise ParameterError(f"{name} must be in (0, 1], got {d!r}")
    return float(d)


def erdos_renyi(sizes: Sequence[int], epsilon: float | None = None, density=None,
                seed=None, exact: bool = True) -> Topology:
    """Erdős–Rényi bipartite layers, as SET initialises them.

    Parameters
    ----------
    sizes : sequence of int
        Neuron layer sizes, inputs first.
    epsilon : float, optional
        SET's ε: layer density ``ε(n_in+n_out)/(n_in·n_out)``, capped at 1.
    density : float or sequence of float, optional
        Density in (0, 1] for every layer, or one per layer. Give exactly one
        of ``epsilon`` and ``density``.
    seed : int or torch.Generator, optional
        Same seed, same topology.
    exact : bool
        ``True`` draws exactly ``round(density · n_in · n_out)`` edges per layer
        (uniformly among such edge sets); ``False`` keeps each possible edge
        independently with probability ``density`` (G(n, p)).

    Time and memory are O(edges): a 100 000 → 100 000 layer never allocates
    anything of size ``n_in · n_out``.

    Examples
    --------
    >>> t = erdos_renyi([64, 100, 10], epsilon=10, seed=0)
    >>> [g.num_edges for g in t.layers]
    [1640, 1000]
    """
    sizes = check_sizes(sizes)
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        check_key_space(n_in, n_out)  # before sampling: torch cannot draw keys beyond int64
    densities = _layer_densities(sizes, epsilon, density)
    pairs = list(zip(sizes[:-1], sizes[1:]))
    _check_fits(pairs, densities)
    g = make_generator(seed)
    layers = []
    for k, ((n_in, n_out), d) in enumerate(zip(pairs, densities)):
        space = n_in * n_out
        if exact:
            m = min(space, int(round(d * space)))
        else:
            m = int(torch.binomial(torch.tensor(float(space), dtype=torch.float64),
                                   torch.tensor(d, dtype=torch.float64), generator=g))
        if m < n_out:
            warnings.warn(f"layer {k} ({n_in}->{n_out}) gets {m} edges at density {d:.3g}, fewer than its {n_out} "
                          f"output neurons: at least {n_out - m} of them receive no input; raise the density "
                          f"or epsilon", RuntimeWarning, stacklevel=2)
        layers.append(LayerGraph.from_keys(n_in, n_out, sample_keys(space, m, g)))
    return Topology(layers)


def _check_fits(pairs, densities) -> None:
    """Refuse, before sampling, edge sets that cannot fit in memory (instead of a bare allocator error).

    A lower bound, so nothing that fits is refused: 16 bytes per edge for the
    layers' int64 ``src``/``dst``, plus the sampling scratch of the largest layer
    (8 bytes per cell when the whole key space is enumerated, else 24 per edge).
    """
    from ..utils.resources import check_memory

    edges = [min(a * b, round(d * a * b)) for (a, b), d in zip(pairs, densities)]
    scratch = max(8 * a * b if m > 0.25 * a * b else 24 * m for (a, b), m in zip(pairs, edges))
    needed = 16 * sum(edges) + scratch
    if needed > 2**30:  # reading /proc/meminfo is cheap, but small topologies need no check at all
        check_memory(needed, f"an Erdős–Rényi topology of sizes {[pairs[0][0], *(b for _, b in pairs)]} "
                             f"({sum(edges):,} edges)")


def _layer_densities(sizes, epsilon, density) -> list[float]:
    if (epsilon is None) == (density is None):
        raise ParameterError(
            f"give exactly one of epsilon and density (got epsilon={epsilon!r}, density={density!r})")
    pairs = list(zip(sizes[:-1], sizes[1:]))
    if epsilon is not None:
        if isinstance(epsilon, bool) or not isinstance(epsilon, Real) or not math.isfinite(epsilon) \
                or epsilon <= 0:
            raise ParameterError(f"epsilon must be a positive finite number, got {epsilon!r}")
        return [set_density(a, b, float(epsilon)) for a, b in pairs]
    if isinstance(density, Real):
        return [_check_density(density)] * len(pairs)
    density = list(density)
    if len(density) != len(pairs):
        raise ParameterError(f"got {len(density)} densities for {len(pairs)} layers")
    return [_check_density(d, f"density[{i}]") for i, d in enumerate(density)]


def erk_densities(sizes: Sequence[int], density: float) -> list[float]:
    """Per-layer densities of RigL's Erdős–Rényi-Kernel rule.

    Layer density is proportional to ``(n_in + n_out)/(n_in · n_out)``, scaled
    so that the whole network has ``density``; layers the scale would push
    above 1 are made dense and the rest re-scaled.

    Examples
    --------
    >>> [round(d, 4) for d in erk_densities([784, 300, 100, 10], 0.1)]
    [0.0796, 0.2302, 1.0]
    """
    sizes = check_sizes(sizes)
    density = _check_density(density)
    pairs = list(zip(sizes[:-1], sizes[1:]))
    raw = [(a + b) / (a * b) for a, b in pairs]
    n = [a * b for a, b in pairs]
    dense: set[int] = set()
    while True:
        rhs = sum(density * n[i] if i not in dense else -(1 - density) * n[i] for i in range(len(n)))
        divisor = sum(raw[i] * n[i] for i in range(len(n)) if i not in dense)
        if divisor == 0:
            return [1.0] * len(n)
        scale = rhs / divisor
        top = max((raw[i] * scale, i) for i in range(len(n)) if i not in dense)
        if top[0] <= 1.0:
            return [1.0 if i in dense else raw[i] * scale for i in range(len(n))]
        dense.update(i for i in range(len(n)) if i not in dense and math.isclose(raw[i], raw[top[1]]))


def erk(sizes: Sequence[int], density: float, seed=None) -> Topology:
    """An ER topology with RigL's ERK per-layer densities reaching ``density`` overall.

    Examples
    --------
    >>> t = erk([784, 300, 100, 10], 0.1, seed=0)
    >>> round(t.density, 3)
    0.1
    """
    return erdos_renyi(sizes, density=erk_densities(sizes, density), seed=seed)


def from_dense_masks(masks: Sequence, weights: Sequence | None = None) -> Topology:
    """Topology from dense ``(n_out, n_in)`` masks (torch weight layout); nonzero = edge.

    ``weights``, if given, are dense matrices of the same shapes whose entries
    at the edges become edge weights.

    Examples
    --------
    >>> import torch
    >>> t = from_dense_masks([torch.eye(3), torch.ones(2, 3)])
    >>> t.sizes, t.num_edges
    ((3, 3, 2), 9)
    """
    masks = list(masks)
    if weights is not None and len(weights) != len(masks):
        raise TopologyError(f"got {len(weights)} weight matrices for {len(masks)} masks")
    layers = []
    for k, m in enumerate(masks):
        m = torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m)
        if m.dim() != 2:
            raise TopologyError(f"mask {k} must be 2-D (n_out, n_in), got shape {tuple(m.shape)}")
        dst, src = (m != 0).nonzero(as_tuple=True)
        w = None
        if weights is not None:
            wk = torch.as_tensor(weights[k])
            if wk.shape != m.shape:
                raise TopologyError(f"weights[{k}] has shape {tuple(wk.shape)}, mask has {tuple(m.shape)}")
            w = wk[dst, src]
        layers.append(LayerGraph(m.shape[1], m.shape[0], src, dst, w))
    return Topology(layers)


def from_edges(sizes: Sequence[int], edges: Sequence) -> Topology:
    """Topology from one ``(src, dst)`` or ``(src, dst, weight)`` triple of arrays per layer.

    Examples
    --------
    >>> t = from_edges([3, 2], [([0, 2], [1, 1], [0.5, -0.5])])
    >>> t[0].weight.tolist()
    [0.5, -0.5]
    """
    sizes = check_sizes(sizes)
    edges = list(edges)
    if len(edges) != len(sizes) - 1:
        raise TopologyError(f"got edges for {len(edges)} layers, sizes {list(sizes)} have {len(sizes) - 1}")
    layers = []
    for k, e in enumerate(edges):
        if len(e) not in (2, 3):
            raise TopologyError(f"edges[{k}] must be (src, dst) or (src, dst, weight), got {len(e)} items")
        w = e[2] if len(e) == 3 else None
        try:
            layers.append(LayerGraph(sizes[k], sizes[k + 1], e[0], e[1], w))
        except TopoError as err:
            raise type(err)(f"layer {k}: {err}") from None
    return Topology(layers)
