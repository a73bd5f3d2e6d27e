"""Conversions: networkx, igraph, pandas, scipy — identical round trips, independent structure checks, bad graphs."""

import igraph as ig
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import topo
from topo import LayerGraph, TopoError, TopologyError


def weighted(t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return t.with_weights([torch.randn(layer.num_edges, generator=g) for layer in t])


@pytest.fixture(params=["unweighted", "weighted"])
def topology(request):
    t = topo.erdos_renyi([9, 7, 5, 3], density=0.35, seed=11)
    return weighted(t) if request.param == "weighted" else t


def test_networkx_structure(topology):
    t = topology
    G = t.to_networkx()
    assert isinstance(G, nx.DiGraph) and nx.is_directed_acyclic_graph(G)
    assert G.number_of_nodes() == sum(t.sizes) and G.number_of_edges() == t.num_edges
    offsets = np.concatenate([[0], np.cumsum(t.sizes)])
    for k, n in enumerate(t.sizes):
        for i in range(n):
            assert G.nodes[int(offsets[k]) + i] == {"layer": k, "index": i}
    expected = {}
    for k, g in enumerate(t):
        dense = g.to_dense()
        for j, i in (dense != 0).nonzero().tolist() if g.weight is not None else zip(g.dst.tolist(), g.src.tolist()):
            expected[(int(offsets[k]) + i, int(offsets[k + 1]) + j)] = float(dense[j, i])
        # networkx degrees equal our degree vectors
        assert [G.in_degree(int(offsets[k + 1]) + j) for j in range(g.n_out)] == g.in_degree().tolist()
        assert [G.out_degree(int(offsets[k]) + i) for i in range(g.n_in)] == g.out_degree().tolist()
    assert set(G.edges()) == set(expected)
    for (u, v), w in expected.items():
        if t.weighted:
            assert G.edges[u, v]["weight"] == pytest.approx(w)
        else:
            assert "weight" not in G.edges[u, v]


def test_networkx_round_trip_identical(topology):
    back = topo.from_networkx(topology.to_networkx())
    assert back == topology
    assert back.weighted == topology.weighted


def test_networkx_round_trip_with_relabelled_nodes(topology):
    G = nx.relabel_nodes(topology.to_networkx(), {i: f"n{i}" for i in range(sum(topology.sizes))})
    assert topo.from_networkx(G) == topology


def test_igraph_round_trip_and_structure(topology):
    g = topology.to_igraph()
    assert isinstance(g, ig.Graph) and g.is_directed() and g.is_dag()
    assert g.vcount() == sum(topology.sizes) and g.ecount() == topology.num_edges
    G = topology.to_networkx()
    assert sorted(g.get_edgelist()) == sorted(G.edges())
    assert g.vs["layer"] == [d["layer"] for _, d in sorted(G.nodes(data=True))]
    assert g.vs["index"] == [d["index"] for _, d in sorted(G.nodes(data=True))]
    if topology.weighted:
        got = {(e.source, e.target): e["weight"] for e in g.es}
        assert got == {(u, v): d["weight"] for u, v, d in G.edges(data=True)}
    back = topo.from_igraph(g)
    assert back == topology and back.weighted == topology.weighted


def test_edges_frame_round_trip_and_contents(topology):
    df = topology.edges_frame()
    assert list(df.columns) == ["layer", "src", "dst", "weight"]
    assert len(df) == topology.num_edges
    for k, g in enumerate(topology):
        part = df[df.layer == k]
        assert part.src.tolist() == g.src.tolist() and part.dst.tolist() == g.dst.tolist()
        if g.weight is None:
            assert part.weight.isna().all()
        else:
            np.testing.assert_array_equal(part.weight.to_numpy(), g.weight.numpy())
    back = topo.from_edges_frame(df, topology.sizes)
    assert back == topology and back.weighted == topology.weighted
    # shuffled rows come back sorted
    shuffled = df.sample(frac=1.0, random_state=0)
    assert topo.from_edges_frame(shuffled, topology.sizes) == topology
    # neither direction shares memory: editing the frame leaves both topologies alone
    df.iloc[:, df.columns.get_loc("src")] = 0
    df.iloc[:, df.columns.get_loc("weight")] = 7.0
    assert back == topology and topology[0].src.tolist() != [0] * topology[0].num_edges


def test_scipy_round_trip_per_layer(topology):
    for g in topology:
        m = g.to_scipy()
        assert m.shape == (g.n_out, g.n_in) and m.format == "csr" and m.nnz == g.num_edges
        np.testing.assert_array_equal(m.toarray(), g.to_dense().numpy())
        back = LayerGraph.from_scipy(m)
        if g.weight is None:
            assert back.with_weight(None) == g
        else:
            assert back == g


@pytest.mark.parametrize("weights", [None, [[], [0.5, -2.0]]])
def test_zero_edge_layer_round_trips(weights):
    t = topo.from_edges([3, 2, 2], [([], []), ([0, 1], [1, 0])])
    if weights is not None:
        t = t.with_weights([torch.tensor(w) for w in weights])
    for back in (topo.from_networkx(t.to_networkx()), topo.from_igraph(t.to_igraph()),
                 topo.from_edges_frame(t.edges_frame(), t.sizes)):
        assert back == t and back.weighted == t.weighted


def test_edgeless_topology_round_trips_unweighted():
    t = topo.Topology.empty([3, 2]).with_weights([torch.empty(0)])
    for back in (topo.from_networkx(t.to_networkx()), topo.from_igraph(t.to_igraph()),
                 topo.from_edges_frame(t.edges_frame(), t.sizes)):
        assert back == topo.Topology.empty([3, 2])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=2, max_size=4), st.integers(0, 2**16), st.floats(0.05, 1.0))
def test_round_trips_property(sizes, seed, density):
    t = weighted(topo.erdos_renyi(sizes, density=density, seed=seed), seed)
    # Weightedness is read off the edges, so a topology without any edge comes back unweighted.
    expected = t if t.num_edges else t.with_weights([None] * len(t))
    assert topo.from_networkx(t.to_networkx()) == expected
    assert topo.from_igraph(t.to_igraph()) == expected
    assert topo.from_edges_frame(t.edges_frame(), t.sizes) == expected
    assert topo.Topology([LayerGraph.from_scipy(g.to_scipy()) for g in t]) == t


# -- bad graphs ---------------------------------------------------------------------------------

def test_from_networkx_without_attributes_names_the_node():
    G = nx.DiGraph()
    G.add_edge("a", "b")
    with pytest.raises(TopologyError, match="node 'a' lacks the 'layer'/'index' attributes"):
        topo.from_networkx(G)
    G = nx.DiGraph()
    G.add_node(0, layer=0)
    with pytest.raises(TopologyError, match="node 0 lacks"):
        topo.from_networkx(G)
    with pytest.raises(TopologyError, match="lack 'layer'/'index' attributes"):
        topo.from_igraph(ig.Graph(n=3, directed=True))


def _graph(nodes, edges):
    G = nx.DiGraph()
    for n, (lv, iv) in nodes.items():
        G.add_node(n, layer=lv, index=iv)
    for e in edges:
        G.add_edge(*e[:2], **({"weight": e[2]} if len(e) == 3 else {}))
    return G


@pytest.mark.parametrize("nodes, edges, match", [
    ({"a": (0, 0), "b": (0, 0), "c": (1, 0)}, [("a", "c")], "node 'b': another node already has layer=0, index=0"),
    ({"a": (0, 0), "c": (2, 0)}, [], r"node layers must be 0..L without gaps, got \[0, 2\]"),
    ({"a": (0, 0), "b": (0, 2), "c": (1, 0)}, [], "indices of layer 0 must be 0..1, got min 0 max 2"),
    ({"a": (0, 0)}, [], r"sizes needs at least two neuron layers, got \[1\]"),
    ({"a": (0, 0), "b": (1, 0), "c": (2, 0)}, [("a", "c")], "edge 'a'->'c' joins layer 0 to layer 2"),
    ({"a": (0, 0), "b": (1, 0)}, [("b", "a")], "edge 'b'->'a' joins layer 1 to layer 0"),
    ({"a": (0, 0), "b": (0, 1), "c": (1, 0)}, [("a", "c", 1.0), ("b", "c")],
     "some edges have a weight and others not"),
    ({"a": (0, "x"), "b": (1, 0)}, [], "node 'a' has index='x'; it must be an integer"),
    ({"a": (0.5, 0), "b": (1, 0)}, [], "node 'a' has layer=0.5; it must be an integer"),
])
def test_from_networkx_bad_graphs(nodes, edges, match):
    with pytest.raises(TopoError, match=match):
        topo.from_networkx(_graph(nodes, edges))


def test_from_edges_frame_bad_input():
    t = topo.erdos_renyi([4, 3], density=0.5, seed=0)
    df = t.edges_frame()
    with pytest.raises(TopologyError, match=r"lacks columns \['dst'\]"):
        topo.from_edges_frame(df.drop(columns="dst"), t.sizes)
    bad = pd.concat([df, pd.DataFrame({"layer": [3], "src": [0], "dst": [0], "weight": [np.nan]})])
    with pytest.raises(TopologyError, match=r"layer values \[3\] outside 0..0"):
        topo.from_edges_frame(bad, t.sizes)
    dup = pd.concat([df, df.iloc[:1]])
    with pytest.raises(TopologyError, match="duplicate edge"):
        topo.from_edges_frame(dup, t.sizes)
    with pytest.raises(TopologyError, match=r"src index 9 out of range \[0, 4\)"):
        topo.from_edges_frame(pd.DataFrame({"layer": [0], "src": [9], "dst": [0]}), t.sizes)
