"""Topology: sizes/ids/density bookkeeping, invariants at construction, copy/equality, summary, fingerprint."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import topo
from topo import LayerGraph, ParameterTypeError, TopoError, Topology, TopologyError


def test_basic_bookkeeping():
    t = topo.from_edges([3, 4, 2], [([0, 1, 2], [0, 1, 3]), ([0, 3], [1, 0])])
    assert t.sizes == (3, 4, 2) and len(t) == 2
    assert t.num_edges == 5 and t.num_neurons == 9 and t.num_possible_edges == 3 * 4 + 4 * 2
    assert t.density == pytest.approx(5 / 20)
    assert list(t) == t.layers and t[1] is t.layers[1]
    assert t.offsets() == [0, 3, 7]
    assert [t.neuron_id(k, i) for k, n in enumerate(t.sizes) for i in range(n)] == list(range(9))
    assert t.neuron_id(-1, 1) == 8
    assert not t.weighted
    assert "sizes=[3, 4, 2]" in repr(t) and "edges=5" in repr(t)


@pytest.mark.parametrize("layer_index, i, match", [
    (3, 0, "layer_index 3 out of range for 3 neuron layers"),
    (1, 4, r"neuron index 4 out of range \[0, 4\) in layer 1"),
    (0, -1, r"neuron index -1 out of range"),
])
def test_neuron_id_bad_input(layer_index, i, match):
    t = Topology.empty([3, 4, 2])
    with pytest.raises(TopoError, match=match):
        t.neuron_id(layer_index, i)


def test_construction_enforces_invariants():
    with pytest.raises(TopologyError, match="layer 1 has n_in=5 but layer 0 has n_out=4"):
        Topology([LayerGraph(3, 4, [], []), LayerGraph(5, 2, [], [])])
    with pytest.raises(TopologyError, match="at least one layer"):
        Topology([])
    with pytest.raises(ParameterTypeError, match="layer 0 is a tuple"):
        Topology([(3, 4)])
    # edges out of range / duplicated surface from the layer with the layer's number
    with pytest.raises(TopologyError, match=r"layer 1: .*dst index 2 out of range"):
        topo.from_edges([2, 2, 2], [([0], [0]), ([0], [2])])
    with pytest.raises(TopologyError, match=r"layer 0: duplicate edge \(src=1, dst=0\)"):
        topo.from_edges([2, 2], [([1, 1], [0, 0])])


@pytest.mark.parametrize("sizes, match", [
    ([5], r"at least two neuron layers, got \[5\]"),
    ([], "at least two neuron layers"),
    ([3, 0, 2], "sizes\\[1\\] must be a positive integer, got 0"),
    ([3, -2], "sizes\\[1\\] must be a positive integer, got -2"),
    ([3, "a"], "sizes\\[1\\] must be a positive integer, got 'a'"),
    (7, "sizes must be a sequence of positive integers, got 7"),
])
def test_bad_sizes(sizes, match):
    with pytest.raises(TopoError, match=match):
        Topology.empty(sizes)


def test_copy_is_deep_and_equality_is_structural():
    t = topo.erdos_renyi([6, 5, 4], density=0.4, seed=3)
    t = t.with_weights([torch.randn(g.num_edges) for g in t])
    c = t.copy()
    assert c == t and c is not t and c.layers[0] is not t.layers[0]
    c.layers[0].weight[0] += 1
    assert c != t
    c = t.copy()
    c.layers[1].src[0] = (c.layers[1].src[0] + 1) % 5  # may duplicate; equality only compares
    assert c != t
    assert t != t.with_weights([None, None])
    assert t != Topology.empty([6, 5, 4]) and t != Topology.empty([6, 5])
    assert (t == 3) is False
    with pytest.raises(TopologyError, match="got 1 weight tensors for 2 layers"):
        t.with_weights([None])


def test_summary_matches_degrees():
    t = topo.erdos_renyi([20, 30, 10], density=0.3, seed=0)
    s = t.summary()
    assert list(s.columns) == ["layer", "n_in", "n_out", "edges", "density", "mean_in_degree", "max_in_degree",
                               "mean_out_degree", "max_out_degree"]
    for k, g in enumerate(t):
        row = s.iloc[k]
        assert (row.n_in, row.n_out, row.edges) == (g.n_in, g.n_out, g.num_edges)
        assert row.density == pytest.approx(g.num_edges / (g.n_in * g.n_out))
        assert row.mean_in_degree == pytest.approx(g.num_edges / g.n_out)
        assert row.mean_out_degree == pytest.approx(g.num_edges / g.n_in)
        assert row.max_in_degree == int(g.to_dense().sum(1).max())
        assert row.max_out_degree == int(g.to_dense().sum(0).max())


def test_fingerprint():
    t = topo.erdos_renyi([8, 6, 4], density=0.5, seed=1)
    assert t.fingerprint() == t.copy().fingerprint()
    assert t.fingerprint() == t.with_weights([torch.ones(g.num_edges) for g in t]).fingerprint()
    assert t.fingerprint() != topo.erdos_renyi([8, 6, 4], density=0.5, seed=2).fingerprint()
    # moving an edge across the layer boundary keeps the concatenated key stream the same
    a = topo.from_edges([2, 2, 2], [([0, 1], [0, 0]), ([0], [1])])    # keys [0, 1] | [2]
    b = topo.from_edges([2, 2, 2], [([0], [0]), ([1, 0], [0, 1])])    # keys [0] | [1, 2]
    assert a != b and a.fingerprint() != b.fingerprint()


@st.composite
def topologies(draw):
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    edges = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        keys = draw(st.sets(st.integers(0, a * b - 1), max_size=a * b))
        edges.append(([k % a for k in keys], [k // a for k in keys]))
    return sizes, edges


@settings(max_examples=60, deadline=None)
@given(topologies())
def test_topology_invariants_hold(case):
    sizes, edges = case
    t = topo.from_edges(sizes, edges)
    assert t.sizes == tuple(sizes)
    assert t.num_edges == sum(len(s) for s, _ in edges)
    assert t.num_possible_edges == sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    for k, g in enumerate(t):
        assert (g.n_in, g.n_out) == (sizes[k], sizes[k + 1])
        assert int(g.in_degree().sum()) == int(g.out_degree().sum()) == g.num_edges
        assert bool((g.keys()[1:] > g.keys()[:-1]).all())
    ids = {t.neuron_id(k, i) for k, n in enumerate(t.sizes) for i in range(n)}
    assert ids == set(range(t.num_neurons))
    assert t.copy() == t and t.copy().fingerprint() == t.fingerprint()
