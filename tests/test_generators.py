"""Constructors: Erdős–Rényi (SET ε rule, exact and Bernoulli), ERK, from_dense_masks, from_edges."""

import math

import numpy as np
import pytest
import torch

import topo
from topo import TopoError, TopologyError
from topo.graph.generators import set_density


def set_formula(a, b, eps):
    return min(1.0, eps * (a + b) / (a * b))


@pytest.mark.parametrize("sizes, eps", [([64, 100, 100, 10], 10), ([784, 1000, 1000, 10], 20),
                                        ([50, 7, 3], 1), ([30, 40], 0.5)])
def test_er_exact_density_matches_set_formula(sizes, eps):
    t = topo.erdos_renyi(sizes, epsilon=eps, seed=0)
    assert t.sizes == tuple(sizes)
    for g, a, b in zip(t, sizes[:-1], sizes[1:]):
        d = set_formula(a, b, eps)
        assert g.num_edges == round(d * a * b)
        assert int(g.in_degree().sum()) == int(g.out_degree().sum()) == g.num_edges
        assert g.density == pytest.approx(d, abs=0.5 / (a * b))
        assert set_density(a, b, eps) == pytest.approx(d)


def test_er_dense_cap_gives_complete_layer():
    t = topo.erdos_renyi([4, 3, 2], epsilon=50, seed=1)
    assert [g.num_edges for g in t] == [12, 6]
    assert all(bool((g.to_dense() == 1).all()) for g in t)


def test_er_density_per_layer_and_global():
    t = topo.erdos_renyi([40, 30, 20], density=[0.1, 0.5], seed=0)
    assert [g.num_edges for g in t] == [120, 300]
    t = topo.erdos_renyi([40, 30, 20], density=0.25, seed=0)
    assert [g.num_edges for g in t] == [300, 150]
    assert topo.erdos_renyi([40, 30], density=1.0, seed=0).num_edges == 1200


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_er_bernoulli_density_within_three_sigma(seed):
    n_in, n_out, p = 300, 200, 0.1
    t = topo.erdos_renyi([n_in, n_out, 50], density=p, seed=seed, exact=False)
    for g in t:
        n = g.n_in * g.n_out
        assert abs(g.num_edges - p * n) <= 3 * math.sqrt(n * p * (1 - p))


def test_er_bernoulli_counts_vary_and_average_out():
    n, p = 100 * 80, 0.2
    counts = [topo.erdos_renyi([100, 80], density=p, seed=s, exact=False).num_edges for s in range(30)]
    assert len(set(counts)) > 5  # not the fixed exact count
    assert abs(np.mean(counts) - p * n) <= 3 * math.sqrt(n * p * (1 - p) / len(counts))


def test_er_edges_are_uniform_over_positions():
    # Each of the 48 positions should be picked with probability m/48; chi-square over 2000 draws.
    a, b, m, reps = 8, 6, 12, 2000
    counts = torch.zeros(a * b)
    g = torch.Generator().manual_seed(123)
    for _ in range(reps):
        counts[topo.erdos_renyi([a, b], density=m / (a * b), seed=g)[0].keys()] += 1
    assert int(counts.sum()) == m * reps
    expected = reps * m / (a * b)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 47 degrees of freedom: P(chi2 > 85) < 1e-3
    assert chi2 < 85, chi2


def test_seeds_reproduce_and_differ():
    for exact in (True, False):
        a = topo.erdos_renyi([50, 40, 30], epsilon=3, seed=7, exact=exact)
        assert a == topo.erdos_renyi([50, 40, 30], epsilon=3, seed=7, exact=exact)
        assert a != topo.erdos_renyi([50, 40, 30], epsilon=3, seed=8, exact=exact)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    first = topo.erdos_renyi([20, 20], density=0.3, seed=g1)
    assert first == topo.erdos_renyi([20, 20], density=0.3, seed=g2)
    # a generator advances: the next draw from it differs
    assert topo.erdos_renyi([20, 20], density=0.3, seed=g1) != first
    assert topo.erdos_renyi([20, 20], density=0.3, seed=np.int64(7)) == topo.erdos_renyi(
        [20, 20], density=0.3, seed=7)


@pytest.mark.parametrize("kwargs, match", [
    (dict(epsilon=0), "epsilon must be a positive finite number, got 0"),
    (dict(epsilon=-1.5), "epsilon must be a positive finite number, got -1.5"),
    (dict(epsilon=float("nan")), "epsilon must be a positive finite number, got nan"),
    (dict(epsilon=float("inf")), "epsilon must be a positive finite number, got inf"),
    (dict(epsilon=True), "epsilon must be a positive finite number, got True"),
    (dict(density=0.0), r"density must be in \(0, 1\], got 0.0"),
    (dict(density=1.5), r"density must be in \(0, 1\], got 1.5"),
    (dict(density=-0.1), r"density must be in \(0, 1\], got -0.1"),
    (dict(density=float("nan")), r"density must be in \(0, 1\], got nan"),
    (dict(density=[0.1, 2.0]), r"density\[1\] must be in \(0, 1\], got 2.0"),
    (dict(density=[0.1]), "got 1 densities for 2 layers"),
    (dict(epsilon=1, density=0.1), "exactly one of epsilon and density .*epsilon=1, density=0.1"),
    (dict(), "exactly one of epsilon and density .*epsilon=None, density=None"),
    (dict(density=0.1, seed="x"), "seed must be an int, a torch.Generator or None, got 'x'"),
])
def test_er_bad_input(kwargs, match):
    with pytest.raises(TopoError, match=match):
        topo.erdos_renyi([5, 4, 3], **kwargs)


@pytest.mark.parametrize("sizes, match", [([5], r"at least two neuron layers, got \[5\]"),
                                          ([5, 0], r"sizes\[1\] must be a positive integer, got 0"),
                                          ([-3, 4], r"sizes\[0\] must be a positive integer, got -3")])
def test_er_bad_sizes(sizes, match):
    with pytest.raises(TopoError, match=match):
        topo.erdos_renyi(sizes, epsilon=1)


# -- ERK ----------------------------------------------------------------------------------------

def rigl_erk_reference(shapes, density):
    """Line-by-line numpy port of RigL's ``get_mask_random`` ERK loop (sparsity = 1 - density)."""
    sparsity = 1 - density
    dense_layers = set()
    while True:
        divisor, rhs, raw = 0.0, 0.0, {}
        for i, shape in enumerate(shapes):
            n_param = np.prod(shape)
            if i in dense_layers:
                rhs -= n_param * sparsity
            else:
                rhs += n_param * (1 - sparsity)
                raw[i] = np.sum(shape) / np.prod(shape)
                divisor += raw[i] * n_param
        eps = rhs / divisor
        max_prob = max(raw.values())
        if max_prob * eps > 1:
            dense_layers.update(i for i, p in raw.items() if p == max_prob)
        else:
            return [1.0 if i in dense_layers else eps * raw[i] for i in range(len(shapes))]


@pytest.mark.parametrize("sizes, density", [([784, 300, 100, 10], 0.1), ([784, 1000, 1000, 10], 0.02),
                                            ([64, 100, 100, 10], 0.3), ([100, 100], 0.05),
                                            ([20, 10, 5, 3], 0.6)])
def test_erk_densities_match_rigl_reference(sizes, density):
    pairs = list(zip(sizes[:-1], sizes[1:]))
    got = topo.erk_densities(sizes, density)
    np.testing.assert_allclose(got, rigl_erk_reference(pairs, density), rtol=1e-9)
    n = np.array([a * b for a, b in pairs], dtype=float)
    raw = np.array([(a + b) / (a * b) for a, b in pairs])
    d = np.array(got)
    assert float((d * n).sum() / n.sum()) == pytest.approx(density)   # global target
    assert bool((d <= 1.0).all()) and bool((d > 0).all())               # capped at dense
    sparse = d < 1.0
    if sparse.sum() > 1:                                                # proportional to the ER ratio
        ratio = d[sparse] / raw[sparse]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    if (~sparse).any() and sparse.any():                                # the dense ones are the highest-ratio layers
        assert raw[~sparse].min() >= raw[sparse].max()


def test_erk_caps_small_layers_and_hits_global_density():
    t = topo.erk([784, 300, 100, 10], 0.1, seed=0)
    assert t[2].num_edges == 1000 and t[2].density == 1.0     # 100 -> 10 would exceed 1: dense
    target = 0.1 * t.num_possible_edges
    assert abs(t.num_edges - target) <= 0.5 * len(t)          # only per-layer rounding separates them
    assert topo.erk([30, 20], 1.0, seed=0).density == 1.0
    assert topo.erk_densities([30, 20, 10], 1.0) == [1.0, 1.0]
    assert topo.erk([50, 40, 30], 0.2, seed=3) == topo.erk([50, 40, 30], 0.2, seed=3)
    assert topo.erk([50, 40, 30], 0.2, seed=3) != topo.erk([50, 40, 30], 0.2, seed=4)


@pytest.mark.parametrize("density", [0, 1.2, float("nan"), -0.5])
def test_erk_bad_density(density):
    with pytest.raises(TopoError, match=f"density must be in \\(0, 1\\], got {density!r}"):
        topo.erk([10, 10], density, seed=0)


# -- masks and edge lists -----------------------------------------------------------------------

def test_from_dense_masks_matches_masks_and_weights():
    gen = torch.Generator().manual_seed(0)
    masks = [torch.rand(5, 7, generator=gen) < 0.4, torch.rand(3, 5, generator=gen) < 0.4]
    weights = [torch.randn(5, 7, generator=gen), torch.randn(3, 5, generator=gen)]
    t = topo.from_dense_masks(masks)
    assert t.sizes == (7, 5, 3) and not t.weighted
    for g, m in zip(t, masks):
        assert torch.equal(g.to_dense().bool(), m)
    tw = topo.from_dense_masks([m.numpy() for m in masks], weights)
    for g, m, w in zip(tw, masks, weights):
        assert torch.equal(g.to_dense(), w * m)
    assert tw != t and tw.with_weights([None, None]) == t


def test_from_dense_masks_bad_input():
    with pytest.raises(TopologyError, match=r"mask 0 must be 2-D \(n_out, n_in\), got shape \(3,\)"):
        topo.from_dense_masks([torch.ones(3)])
    with pytest.raises(TopologyError, match="layer 1 has n_in=4 but layer 0 has n_out=2"):
        topo.from_dense_masks([torch.ones(2, 3), torch.ones(5, 4)])
    with pytest.raises(TopologyError, match=r"weights\[0\] has shape \(3, 2\), mask has \(2, 3\)"):
        topo.from_dense_masks([torch.ones(2, 3)], [torch.ones(3, 2)])
    with pytest.raises(TopologyError, match="got 2 weight matrices for 1 masks"):
        topo.from_dense_masks([torch.ones(2, 3)], [torch.ones(2, 3)] * 2)


def test_from_edges_layers_and_weights():
    t = topo.from_edges([3, 2, 2], [([2, 0], [1, 0], [0.5, -1.0]), (np.array([1]), np.array([1]))])
    assert t[0].src.tolist() == [0, 2] and t[0].weight.tolist() == [-1.0, 0.5]
    assert t[1].weight is None and t.num_edges == 3
    with pytest.raises(TopologyError, match="got edges for 1 layers, sizes .* have 2"):
        topo.from_edges([3, 2, 2], [([0], [0])])
    with pytest.raises(TopologyError, match=r"edges\[0\] must be \(src, dst\) or \(src, dst, weight\), got 1"):
        topo.from_edges([3, 2], [([0],)])
    with pytest.raises(TopologyError, match=r"layer 0: src index 5 out of range \[0, 3\)"):
        topo.from_edges([3, 2], [([5], [0])])
