"""analysis.degrees: per-neuron tables from bincount, checked against networkx and dense matrices."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import analysis
import topo
from _analysis_support import synthetic_history


def weighted_er(sizes, epsilon, seed):
    t = topo.erdos_renyi(sizes, epsilon=epsilon, seed=seed)
    g = torch.Generator().manual_seed(seed)
    return t.with_weights([torch.randn(l.num_edges, generator=g) for l in t.layers])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_degree_sums_equal_edge_counts_and_match_networkx(seed):
    t = weighted_er([30, 20, 15, 5], epsilon=3, seed=seed)
    d = analysis.degrees(t)
    assert set(d.columns) == {"epoch", "layer", "side", "neuron", "degree", "strength"}
    assert d["epoch"].isna().all()
    g = t.to_networkx()
    offsets = t.offsets()
    for k, layer in enumerate(t.layers):
        out = d[(d.layer == k) & (d.side == "out")].sort_values("neuron")
        inn = d[(d.layer == k) & (d.side == "in")].sort_values("neuron")
        assert out.degree.sum() == inn.degree.sum() == layer.num_edges
        assert len(out) == layer.n_in and len(inn) == layer.n_out
        # networkx reference: successors in layer k+1 / predecessors in layer k
        ref_out = [sum(1 for v in g.successors(offsets[k] + i)) for i in range(layer.n_in)]
        ref_in = [sum(1 for u in g.predecessors(offsets[k + 1] + j)) for j in range(layer.n_out)]
        assert out.degree.tolist() == ref_out
        assert inn.degree.tolist() == ref_in
        dense = layer.to_dense().abs().double().numpy()  # (n_out, n_in)
        np.testing.assert_allclose(out.strength.to_numpy(), dense.sum(0), rtol=1e-6)
        np.testing.assert_allclose(inn.strength.to_numpy(), dense.sum(1), rtol=1e-6)


def test_history_epochs_dict_and_unweighted():
    h = synthetic_history(sizes=(20, 12, 6), epsilon=3, epochs=4, seed=3)
    d = analysis.degrees(h)
    assert sorted(d.epoch.unique()) == h.epochs
    for e, t in h:
        sub = d[d.epoch == e]
        for k, layer in enumerate(t.layers):
            assert sub[(sub.layer == k) & (sub.side == "in")].degree.sum() == layer.num_edges
    picked = analysis.degrees(h, epochs=[0, "last"])
    assert sorted(picked.epoch.unique()) == [0.0, 4.0]
    last = picked[picked.epoch == 4.0].reset_index(drop=True)
    again = analysis.degrees({4: h.final}).reset_index(drop=True)
    pd.testing.assert_frame_equal(last, again)
    unweighted = analysis.degrees(topo.erdos_renyi([5, 4], density=0.5, seed=0))
    assert unweighted.strength.isna().all()


def test_summary_and_distribution_against_numpy():
    t = topo.from_edges([4, 3], [([0, 0, 0, 1, 2], [0, 1, 2, 0, 0])])  # input 3 is dead
    d = analysis.degrees(t)
    s = analysis.degree_summary(d)
    out = s[s.side == "out"].iloc[0]
    x = np.array([3, 1, 1, 0])
    assert out["n"] == 4 and out["edges"] == 5 and out["zeros"] == 1 and out["max"] == 3
    assert out["mean"] == pytest.approx(x.mean()) and out["std"] == pytest.approx(x.std())
    # Gini from its definition: mean absolute difference over twice the mean
    ref = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size ** 2 * x.mean())
    assert out["gini"] == pytest.approx(ref)
    dist = analysis.degree_distribution(d)
    o = dist[dist.side == "out"]
    assert o.degree.tolist() == [0, 1, 3] and o["count"].tolist() == [1, 2, 1]
    assert o.pmf.sum() == pytest.approx(1.0)
    assert o.ccdf.tolist() == pytest.approx([1.0, 0.75, 0.25])


def test_gini_and_bad_input():
    assert analysis.gini([5, 5, 5]) == 0.0
    assert analysis.gini([0, 0, 0, 0, 10]) == pytest.approx(0.8)
    assert math.isnan(analysis.gini([0, 0]))
    with pytest.raises(ValueError, match="non-negative"):
        analysis.gini([1, -1])
    with pytest.raises(ValueError, match="Topology, topo.History"):
        analysis.degrees([1, 2, 3])
    with pytest.raises(ValueError, match="epochs="):
        analysis.degrees(topo.erdos_renyi([4, 4], density=0.5, seed=0), epochs=[0])
    with pytest.raises(ValueError, match="not keys"):
        analysis.degrees({0: topo.erdos_renyi([4, 4], density=0.5, seed=0)}, epochs=[3])
    with pytest.raises(ValueError, match="degrees\\(\\) table"):
        analysis.degree_summary(pd.DataFrame({"a": [1]}))
    h = synthetic_history(sizes=(8, 6), epsilon=2, epochs=2)
    with pytest.raises(ValueError, match="not in this history"):
        analysis.degrees(h, epochs=[7])


def test_degrees_without_strength_follow_births_and_deaths():
    h = synthetic_history(sizes=(25, 14, 7), epsilon=3, epochs=5, seed=8)
    fast = analysis.degrees(h, epochs=[0, 2, "last"], strength=False)
    full = analysis.degrees(h, epochs=[0, 2, "last"])
    assert "strength" not in fast
    pd.testing.assert_frame_equal(fast, full.drop(columns="strength"))
    assert "mean_strength" not in analysis.degree_summary(fast)
    pd.testing.assert_frame_equal(analysis.degrees(h.final, strength=False),
                                  analysis.degrees(h.final).drop(columns="strength"))
