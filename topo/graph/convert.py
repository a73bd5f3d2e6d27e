"""Conversions between :class:`~topo.Topology` and networkx, igraph and pandas."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import TopologyError
from .layer import LayerGraph
from .topology import Topology, check_sizes

__all__ = ["to_networkx", "from_networkx", "to_igraph", "from_igraph", "to_edges_frame", "from_edges_frame"]


def _global_edges(t: Topology):
    """Global (source id, target id, weight or None) numpy arrays over all layers."""
    offs = t.offsets()
    src = np.concatenate([g.src.cpu().numpy() + offs[k] for k, g in enumerate(t.layers)])
    dst = np.concatenate([g.dst.cpu().numpy() + offs[k + 1] for k, g in enumerate(t.layers)])
    w = (np.concatenate([g.weight.detach().cpu().numpy() for g in t.layers]) if t.weighted else None)
    return src, dst, w


def _node_labels(t: Topology):
    layer = np.repeat(np.arange(len(t.sizes)), t.sizes)
    index = np.concatenate([np.arange(n) for n in t.sizes])
    return layer, index


def to_networkx(t: Topology):
    """Directed networkx graph; nodes are global ids with attributes ``layer`` and ``index``.

    Examples
    --------
    >>> import topo
    >>> G = topo.erdos_renyi([3, 2], density=1.0, seed=0).to_networkx()
    >>> G.number_of_nodes(), G.number_of_edges(), G.nodes[3]
    (5, 6, {'layer': 1, 'index': 0})
    """
    import networkx as nx

    G = nx.DiGraph()
    layer, index = _node_labels(t)
    G.add_nodes_from((i, {"layer": int(lv), "index": int(iv)}) for i, (lv, iv) in enumerate(zip(layer, index)))
    src, dst, w = _global_edges(t)
    if w is None:
        G.add_edges_from(zip(src.tolist(), dst.tolist()))
    else:
        G.add_weighted_edges_from(zip(src.tolist(), dst.tolist(), w.tolist()))
    return G


def _from_labelled(nodes_layer: dict, edges, sizes_hint=None) -> Topology:
    """Shared by networkx/igraph/pandas import: node -> (layer, index) and (u, v, w) edges."""
    by_layer: dict[int, set[int]] = {}
    for node, (lv, iv) in nodes_layer.items():
        idx = by_layer.setdefault(lv, set())
        if iv in idx:
            # Two nodes on one neuron would silently merge (and their edges with them).
            raise TopologyError(f"node {node!r}: another node already has layer={lv}, index={iv}")
        idx.add(iv)
    if not by_layer or sorted(by_layer) != list(range(len(by_layer))):
        raise TopologyError(f"node layers must be 0..L without gaps, got {sorted(by_layer)}")
    counts = []
    for lv in range(len(by_layer)):
        idx = by_layer[lv]
        if min(idx) != 0 or max(idx) != len(idx) - 1:
            raise TopologyError(f"indices of layer {lv} must be 0..{len(idx) - 1}, got min {min(idx)} max {max(idx)}")
        counts.append(len(idx))
    sizes = check_sizes(counts)
    per_layer: list[tuple[list, list, list]] = [([], [], []) for _ in range(len(sizes) - 1)]
    weighted = None
    for u, v, w in edges:
        (lu, iu), (lv, iv) = nodes_layer[u], nodes_layer[v]
        if lv != lu + 1:
            raise TopologyError(f"edge {u!r}->{v!r} joins layer {lu} to layer {lv}; only k -> k+1 edges are allowed")
        if weighted is None:
            weighted = w is not None
        if weighted != (w is not None):
            raise TopologyError(f"edge {u!r}->{v!r}: some edges have a weight and others not")
        s, d, ws = per_layer[lu]
        s.append(iu), d.append(iv), ws.append(w)
    layers = [LayerGraph(sizes[k], sizes[k + 1], s, d,
                         torch.tensor(ws, dtype=torch.float32) if weighted else None)
              for k, (s, d, ws) in enumerate(per_layer)]
    return Topology(layers)


def _label(node, name: str, value) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TopologyError(f"node {node!r} has {name}={value!r}; it must be an integer")
    return int(value)


def from_networkx(G) -> Topology:
    """Inverse of :func:`to_networkx`; every node needs integer ``layer`` and ``index`` attributes."""
    nodes = {}
    for node, data in G.nodes(data=True):
        if "layer" not in data or "index" not in data:
            raise TopologyError(f"node {node!r} lacks the 'layer'/'index' attributes from_networkx needs")
        nodes[node] = (_label(node, "layer", data["layer"]), _label(node, "index", data["index"]))
    return _from_labelled(nodes, ((u, v, d.get("weight")) for u, v, d in G.edges(data=True)))


def to_igraph(t: Topology):
    """Directed igraph graph; vertex ids are global ids (attributes ``layer``, ``index``, edge ``weight``)."""
    import igraph as ig

    src, dst, w = _global_edges(t)
    g = ig.Graph(n=t.num_neurons, edges=np.column_stack([src, dst]), directed=True)
    layer, index = _node_labels(t)
    g.vs["layer"] = layer.tolist()
    g.vs["index"] = index.tolist()
    if w is not None:
        g.es["weight"] = w.tolist()
    return g


def from_igraph(g) -> Topology:
    """Inverse of :func:`to_igraph`."""
    names = set(g.vs.attributes())
    if not {"layer", "index"} <= names:
        raise TopologyError(f"igraph vertices lack 'layer'/'index' attributes (have {sorted(names)})")
    nodes = {v.index: (_label(v.index, "layer", v["layer"]), _label(v.index, "index", v["index"])) for v in g.vs}
    has_w = "weight" in g.es.attributes()
    ws = g.es["weight"] if has_w else [None] * g.ecount()
    return _from_labelled(nodes, ((e.source, e.target, w) for e, w in zip(g.es, ws)))


def to_edges_frame(t: Topology):
    """pandas DataFrame with columns ``layer, src, dst, weight`` (weight NaN when unweighted)."""
    import pandas as pd

    parts = []
    for k, g in enumerate(t.layers):
        w = g.weight.detach().cpu().numpy() if g.weight is not None else np.full(g.num_edges, np.nan, np.float32)
        parts.append(pd.DataFrame({"layer": np.full(g.num_edges, k, np.int64), "src": g.src.cpu().numpy(),
                                   "dst": g.dst.cpu().numpy(), "weight": w}))
    return pd.concat(parts, ignore_index=True)


def from_edges_frame(df, sizes) -> Topology:
    """Inverse of :meth:`Topology.edges_frame` given the neuron layer ``sizes``."""
    sizes = check_sizes(sizes)
    missing = {"layer", "src", "dst"} - set(df.columns)
    if missing:
        raise TopologyError(f"edges frame lacks columns {sorted(missing)}")
    # A layer without rows has no weights to look at; like networkx/igraph import, it follows the
    # rest of the frame, so a weighted topology with an empty layer round-trips.
    any_weight = "weight" in df.columns and bool(df["weight"].notna().any())
    layers = []
    for k in range(len(sizes) - 1):
        part = df[df["layer"] == k]
        has_w = any_weight and (part.empty or not part["weight"].isna().all())
        w = part["weight"].to_numpy(copy=True) if has_w else None
        layers.append(LayerGraph(sizes[k], sizes[k + 1], part["src"].to_numpy(copy=True),
                                 part["dst"].to_numpy(copy=True), None if w is None else torch.from_numpy(w)))
    bad = set(df["layer"].unique().tolist()) - set(range(len(sizes) - 1))
    if bad:
        raise TopologyError(f"edges frame has layer values {sorted(bad)} outside 0..{len(sizes) - 2}")
    return Topology(layers)
