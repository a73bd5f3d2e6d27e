"""The topology of a layered sparse network: an ordered stack of bipartite layers."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch

from ..errors import ParameterError, ParameterTypeError, TopologyError
from .layer import LayerGraph, _check_size

__all__ = ["Topology"]


class Topology:
    """A multipartite DAG: neuron layers ``sizes[0..L]`` joined by ``L`` :class:`LayerGraph` edge sets.

    ``layers[k]`` connects neuron layer ``k`` (inputs) to neuron layer ``k + 1``.
    Neurons also have a global id (:meth:`neuron_id`), numbering layer after layer;
    the graph conversions (networkx, igraph, GEXF) use it as node key.

    Examples
    --------
    >>> import topo
    >>> t = topo.erdos_renyi([4, 3, 2], density=0.5, seed=0)
    >>> t.sizes, len(t), t.num_edges
    ((4, 3, 2), 2, 9)
    >>> t.neuron_id(1, 0)
    4
    """

    def __init__(self, layers: Sequence[LayerGraph]) -> None:
        layers = list(layers)
        if not layers:
            raise TopologyError("a topology needs at least one layer (two neuron layers)")
        for k, g in enumerate(layers):
            if not isinstance(g, LayerGraph):
                raise ParameterTypeError(f"layer {k} is a {type(g).__name__}, expected LayerGraph")
            if k and g.n_in != layers[k - 1].n_out:
                raise TopologyError(
                    f"layer {k} has n_in={g.n_in} but layer {k - 1} has n_out={layers[k - 1].n_out}")
        self._layers = layers

    @classmethod
    def empty(cls, sizes: Sequence[int]) -> Topology:
        """A topology of the given sizes with no edges."""
        sizes = check_sizes(sizes)
        e = torch.empty(0, dtype=torch.int64)
        return cls([LayerGraph(a, b, e, e) for a, b in zip(sizes[:-1], sizes[1:])])

    # -- structure ------------------------------------------------------------------
    @property
    def layers(self) -> list[LayerGraph]:
        return self._layers

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self._layers[0].n_in,) + tuple(g.n_out for g in self._layers)

    @property
    def num_neurons(self) -> int:
        return sum(self.sizes)

    @property
    def num_edges(self) -> int:
        return sum(g.num_edges for g in self._layers)

    @property
    def num_possible_edges(self) -> int:
        return sum(g.n_in * g.n_out for g in self._layers)

    @property
    def density(self) -> float:
        """Edges over possible edges, all layers together."""
        return self.num_edges / self.num_possible_edges

    @property
    def weighted(self) -> bool:
        return all(g.weight is not None for g in self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[LayerGraph]:
        return iter(self._layers)

    def __getitem__(self, k: int) -> LayerGraph:
        return self._layers[k]

    def offsets(self) -> list[int]:
        """Global id of the first neuron of each neuron layer."""
        out, acc = [], 0
        for n in self.sizes:
            out.append(acc)
            acc += n
        return out

    def neuron_id(self, layer_index: int, i: int) -> int:
        """Global id of neuron ``i`` of neuron layer ``layer_index`` (0 = inputs)."""
        sizes = self.sizes
        if not -len(sizes) <= layer_index < len(sizes):
            raise ParameterError(f"layer_index {layer_index} out of range for {len(sizes)} neuron layers")
        layer_index %= len(sizes)
        if not 0 <= i < sizes[layer_index]:
            raise ParameterError(f"neuron index {i} out of range [0, {sizes[layer_index]}) in layer {layer_index}")
        return self.offsets()[layer_index] + i

    def copy(self) -> Topology:
        return Topology([g.copy() for g in self._layers])

    def with_weights(self, weights: Sequence) -> Topology:
        """Same edges with new per-layer weights (``None`` entries drop them)."""
        if len(weights) != len(self):
            raise TopologyError(f"got {len(weights)} weight tensors for {len(self)} layers")
        return Topology([g.with_weight(w) for g, w in zip(self._layers, weights)])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self._layers, other._layers))

    __hash__ = None  # type: ignore[assignment]  # unhashable: mutable tensors inside (typeshed idiom)

    def __repr__(self) -> str:
        return f"Topology(sizes={list(self.sizes)}, edges={self.num_edges}, density={self.density:.4g})"

    # -- summaries and conversions ----------------------------------------------------
    def summary(self):
        """Per-layer table: sizes, edges, density, mean/max in- and out-degree (pandas)."""
        import pandas as pd

        rows = []
        for k, g in enumerate(self._layers):
            ind, outd = g.in_degree().double(), g.out_degree().double()
            rows.append({"layer": k, "n_in": g.n_in, "n_out": g.n_out, "edges": g.num_edges,
                         "density": g.density, "mean_in_degree": float(ind.mean()),
                         "max_in_degree": int(ind.max()), "mean_out_degree": float(outd.mean()),
                         "max_out_degree": int(outd.max())})
        return pd.DataFrame(rows)

    def edges_frame(self):
        """All edges as a pandas DataFrame with columns ``layer, src, dst, weight``."""
        from .convert import to_edges_frame
        return to_edges_frame(self)

    def to_networkx(self):
        """A ``networkx.DiGraph`` keyed by global neuron id (attrs ``layer``, ``index``; edge ``weight``)."""
        from .convert import to_networkx
        return to_networkx(self)

    def to_igraph(self):
        """A directed ``igraph.Graph`` (vertex attrs ``layer``, ``index``; edge attr ``weight``)."""
        from .convert import to_igraph
        return to_igraph(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write to a pickle-free ``.npz`` file atomically; see :func:`topo.load`."""
        from .serialize import save_topology
        save_topology(self, path)

    def fingerprint(self) -> str:
        """sha256 of sizes and edge structure (not weights): equal topologies, equal fingerprints."""
        import hashlib

        h = hashlib.sha256(repr(self.sizes).encode())
        for g in self._layers:
            # The edge count delimits the layers: without it, moving the last key of one layer to the
            # front of the next would hash the same byte stream.
            h.update(g.num_edges.to_bytes(8, "little"))
            h.update(g.keys().cpu().numpy().astype("<i8", copy=False).tobytes())
        return h.hexdigest()


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    try:
        sizes = list(sizes)
    except TypeError:
        raise ParameterError(f"sizes must be a sequence of positive integers, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ParameterError(f"sizes needs at least two neuron layers, got {sizes!r}")
    return tuple(_check_size(n, f"sizes[{i}]") for i, n in enumerate(sizes))
