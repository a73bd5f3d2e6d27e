"""LayerGraph: storage order, invariants, degrees/strengths against dense references, conversions."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import topo
from topo import LayerGraph, TopoError, TopologyError


def random_mask(n_out, n_in, p, seed):
    return torch.rand(n_out, n_in, generator=torch.Generator().manual_seed(seed)) < p


@st.composite
def layer_edges(draw, max_n=12):
    """Sizes plus a set of distinct (src, dst) pairs in arbitrary order, and weights."""
    n_in, n_out = draw(st.integers(1, max_n)), draw(st.integers(1, max_n))
    pairs = draw(st.lists(st.tuples(st.integers(0, n_in - 1), st.integers(0, n_out - 1)),
                          unique=True, max_size=n_in * n_out))
    w = draw(st.lists(st.floats(-5, 5, width=32), min_size=len(pairs), max_size=len(pairs)))
    return n_in, n_out, pairs, w


def test_sorts_by_dst_then_src_and_permutes_weights():
    g = LayerGraph(4, 3, src=[3, 0, 2, 1], dst=[0, 2, 0, 1], weight=[1.0, 2.0, 3.0, 4.0])
    assert g.src.tolist() == [2, 3, 1, 0]
    assert g.dst.tolist() == [0, 0, 1, 2]
    assert g.weight.tolist() == [3.0, 1.0, 4.0, 2.0]
    assert g.src.dtype == g.dst.dtype == torch.int64
    assert g.num_edges == 4 and g.shape == (3, 4)
    assert g.density == pytest.approx(4 / 12)


@settings(max_examples=60, deadline=None)
@given(layer_edges())
def test_invariants_and_dense_equivalence(case):
    n_in, n_out, pairs, w = case
    src = [s for s, _ in pairs]
    dst = [d for _, d in pairs]
    g = LayerGraph(n_in, n_out, src, dst, w)
    keys = g.keys()
    # strictly increasing keys <=> sorted by (dst, src) and no duplicates
    assert bool((keys[1:] > keys[:-1]).all())
    assert keys.tolist() == sorted(d * n_in + s for s, d in pairs)
    # dense reference built independently from the raw pairs
    ref = torch.zeros(n_out, n_in)
    for (s, d), x in zip(pairs, w):
        ref[d, s] = x
    assert torch.equal(g.to_dense(), ref)
    mask = torch.zeros(n_out, n_in, dtype=torch.int64)
    for s, d in pairs:
        mask[d, s] = 1
    assert torch.equal(g.in_degree(), mask.sum(1))
    assert torch.equal(g.out_degree(), mask.sum(0))
    assert int(g.in_degree().sum()) == int(g.out_degree().sum()) == g.num_edges == len(pairs)
    assert torch.allclose(g.strength("out"), ref.abs().double().sum(0))
    assert torch.allclose(g.strength("in"), ref.abs().double().sum(1))
    # CSR row pointer agrees with scipy's
    assert g.crow_indices().tolist() == sp.csr_matrix(mask.numpy()).indptr.tolist()


def test_unweighted_strength_equals_degree():
    g = LayerGraph(5, 4, src=[0, 1, 1, 4], dst=[0, 0, 3, 3])
    assert torch.equal(g.strength("out"), g.out_degree().double())
    assert torch.equal(g.strength("in"), g.in_degree().double())
    assert g.strength("in").dtype == torch.float64
    with pytest.raises(ValueError, match="'sideways'"):
        g.strength("sideways")


def test_scipy_round_trip_and_shape():
    mask = random_mask(7, 9, 0.3, 0)
    w = torch.randn(7, 9, generator=torch.Generator().manual_seed(1)) * mask
    g = topo.from_dense_masks([mask], [w])[0]
    m = g.to_scipy()
    assert isinstance(m, sp.csr_matrix) and m.shape == (7, 9)
    np.testing.assert_array_equal(m.toarray(), w.numpy())
    assert LayerGraph.from_scipy(m) == g
    unweighted = LayerGraph(9, 7, g.src, g.dst)
    np.testing.assert_array_equal(unweighted.to_scipy().toarray(), mask.numpy().astype(np.float32))
    back = LayerGraph.from_scipy(unweighted.to_scipy())
    assert torch.equal(back.src, g.src) and torch.equal(back.dst, g.dst)


def test_scipy_conversion_does_not_alias_the_layer():
    g = LayerGraph(3, 2, [0, 1, 2], [0, 1, 1], [1.0, 2.0, 3.0])
    m = g.to_scipy()
    m.data[:] = 0
    m.indices[:] = 0
    assert g.weight.tolist() == [1.0, 2.0, 3.0] and g.src.tolist() == [0, 1, 2]
    m = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))
    h = LayerGraph.from_scipy(m)
    m.data[:] = 9
    assert h.weight.tolist() == [1.0, 2.0]


def test_from_keys_copy_equality_with_weight():
    g = LayerGraph.from_keys(3, 4, torch.tensor([11, 0, 4]))
    assert list(zip(g.src.tolist(), g.dst.tolist())) == [(0, 0), (1, 1), (2, 3)]
    c = g.copy()
    assert c == g and c.src is not g.src
    c.src[0] = 1
    assert g.src[0] == 0 and c != g
    w = g.with_weight([1, 2, 3])
    assert w.weight.is_floating_point() and w != g  # integer weights become floats, like the constructor
    assert g.weight is None and w.with_weight(None) == g
    assert w != w.with_weight([1.0, 2.0, 4.0])
    assert LayerGraph(3, 4, [0], [0]) != LayerGraph(4, 3, [0], [0])
    assert (g == "not a layer") is False
    with pytest.raises(TopologyError, match=r"\(3,\)"):
        g.with_weight([1.0])


def test_empty_layer():
    g = LayerGraph(3, 2, [], [])
    assert g.num_edges == 0 and g.density == 0.0
    assert g.in_degree().tolist() == [0, 0] and g.out_degree().tolist() == [0, 0, 0]
    assert g.to_scipy().nnz == 0 and g.crow_indices().tolist() == [0, 0, 0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_in=0, n_out=2, src=[], dst=[]), "n_in must be a positive integer, got 0"),
    (dict(n_in=2, n_out=-1, src=[], dst=[]), "n_out must be a positive integer, got -1"),
    (dict(n_in=2.5, n_out=2, src=[], dst=[]), "n_in must be a positive integer, got 2.5"),
    (dict(n_in=True, n_out=2, src=[], dst=[]), "n_in must be a positive integer, got True"),
    (dict(n_in=3, n_out=2, src=[0, 3], dst=[0, 1]), r"src index 3 out of range \[0, 3\)"),
    (dict(n_in=3, n_out=2, src=[0, 1], dst=[-1, 1]), r"dst index -1 out of range \[0, 2\)"),
    (dict(n_in=3, n_out=2, src=[2, 0, 2], dst=[1, 0, 1]), r"duplicate edge \(src=2, dst=1\)"),
    (dict(n_in=3, n_out=2, src=[0, 1], dst=[0]), "src and dst differ in length: 2 vs 1"),
    (dict(n_in=3, n_out=2, src=[0.5], dst=[0]), "src must hold integers"),
    (dict(n_in=3, n_out=2, src=[True, False], dst=[0, 1]), "src must hold integers, got dtype torch.bool"),
    (dict(n_in=3, n_out=2, src=[[0, 1]], dst=[[0, 1]]), r"src must be 1-D, got shape \(1, 2\)"),
    (dict(n_in=3, n_out=2, src=[0, 1], dst=[0, 1], weight=[1.0]), r"weight has shape \(1,\)"),
])
def test_bad_input_names_the_value(kwargs, match):
    with pytest.raises(TopoError, match=match):
        LayerGraph(**kwargs)
    assert issubclass(TopologyError, ValueError)


def test_repr_mentions_sizes_and_edges():
    r = repr(LayerGraph(3, 2, [0, 1], [0, 1], [1.0, 2.0]))
    assert "3->2" in r and "edges=2" in r and "weight=" in r
