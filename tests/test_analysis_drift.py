"""Drift from recorded births/deaths against brute-force set arithmetic; NNSTD against exhaustive matching."""

import itertools

import numpy as np
import pytest
import torch

import analysis
import topo
from _analysis_support import synthetic_history


def edge_sets(t):
    return [set(zip(g.src.tolist(), g.dst.tolist())) for g in t.layers]


def brute_drift(h):
    rows, ever, prev, init = [], None, None, None
    for e, t in h:
        cur = edge_sets(t)
        if init is None:
            init, prev, ever = cur, cur, [set(s) for s in cur]
        for k, s in enumerate(cur):
            ever[k] |= s
            g = t.layers[k]
            jp = 1 - len(s & prev[k]) / len(s | prev[k]) if s | prev[k] else 0.0
            ji = 1 - len(s & init[k]) / len(s | init[k]) if s | init[k] else 0.0
            rows.append((e, k, len(s), len(s - prev[k]), len(prev[k] - s), jp, ji, len(ever[k]) / (g.n_in * g.n_out)))
        prev = cur
    return rows


def test_drift_matches_brute_force_including_rebirths():
    h = synthetic_history(sizes=(12, 9, 4), epsilon=2, epochs=6, zeta=0.5, seed=2)
    # one more step where an edge dies and is reborn at once, and one where a long-dead edge returns
    last = h.final
    g0 = last.layers[0]
    e_src, e_dst = int(g0.src[0]), int(g0.dst[0])
    keys = set(zip(g0.src.tolist(), g0.dst.tolist()))
    free = next((s, d) for d in range(g0.n_out) for s in range(g0.n_in) if (s, d) not in keys)
    h.record(7, [topo.LayerChange(births=[[e_src, free[0]], [e_dst, free[1]]], deaths=[[e_src], [e_dst]]),
                 topo.LayerChange()])
    got = analysis.drift(h)
    ref = brute_drift(h)
    assert len(got) == len(ref)
    for row, r in zip(got.itertuples(index=False), sorted(ref, key=lambda r: (r[0], r[1]))):
        assert (row.epoch, row.layer, row.num_edges) == r[:3]
        if row.epoch > 0 and not (row.epoch == 7 and row.layer == 0):
            assert (row.births, row.deaths) == r[3:5]  # set differences; the reborn edge hides in both
        assert row.jaccard_prev == pytest.approx(r[5])
        assert row.jaccard_initial == pytest.approx(r[6])
        assert row.itop_rate == pytest.approx(r[7])
    step7 = got[(got.epoch == 7) & (got.layer == 0)].iloc[0]
    assert (step7.births, step7.deaths) == (2, 1)


def test_drift_rejects_non_history():
    with pytest.raises(ValueError, match="History"):
        analysis.drift(topo.erdos_renyi([4, 4], density=0.5, seed=0))


def _jaccard_cost(a_sets, b_sets):
    return np.array([[1 - len(a & b) / len(a | b) if a | b else 0.0 for b in b_sets] for a in a_sets])


def brute_nnstd(t1, t2):
    """Exhaustive matching per layer (all permutations), relabelling like the reference code."""
    perm = list(range(t1.sizes[0]))
    out = []
    for g1, g2 in zip(t1.layers, t2.layers):
        a = [set(g1.src[g1.dst == j].tolist()) for j in range(g1.n_out)]
        inv = {old: new for new, old in enumerate(perm)}
        b = [{inv[s] for s in g2.src[g2.dst == j].tolist()} for j in range(g2.n_out)]
        cost = _jaccard_cost(a, b)
        best = min(itertools.permutations(range(g1.n_out)), key=lambda p: cost[range(g1.n_out), p].sum())
        out.append(cost[range(g1.n_out), best].sum() / g1.n_out)
        perm = list(best)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_nnstd_matches_exhaustive_matching(seed):
    t1 = topo.erdos_renyi([6, 5, 4], density=0.4, seed=seed)
    t2 = topo.erdos_renyi([6, 5, 4], density=0.4, seed=seed + 100)
    got = analysis.nnstd(t1, t2, per_layer=True)
    np.testing.assert_allclose(got, brute_nnstd(t1, t2), atol=1e-12)
    assert analysis.nnstd(t1, t2) == pytest.approx(got.mean())


def test_nnstd_is_zero_for_relabelled_hidden_neurons():
    t = topo.erdos_renyi([10, 6, 5, 3], density=0.5, seed=0)
    # hidden neurons with equal input sets would make the matching ambiguous; this topology has none
    for g in t.layers[:2]:
        assert len({tuple(g.src[g.dst == j].tolist()) for j in range(g.n_out)}) == g.n_out
    gen = torch.Generator().manual_seed(0)
    p1, p2 = torch.randperm(6, generator=gen), torch.randperm(5, generator=gen)
    masks = [g.to_dense().bool() for g in t.layers]  # (n_out, n_in)
    relabelled = topo.from_dense_masks([masks[0][p1], masks[1][p2][:, p1], masks[2][:, p2]])
    assert analysis.nnstd(t, relabelled) == pytest.approx(0.0)
    assert analysis.nnstd(t, topo.erdos_renyi([10, 6, 5, 3], density=0.5, seed=9)) > 0.1


def test_nnstd_guards():
    a = topo.erdos_renyi([5, 30, 2], density=0.3, seed=0)
    with pytest.raises(ValueError, match="layer 0 has 30 output neurons, above max_neurons=20"):
        analysis.nnstd(a, a, max_neurons=20)
    with pytest.raises(ValueError, match="sizes"):
        analysis.nnstd(a, topo.erdos_renyi([5, 31, 2], density=0.3, seed=0))
    with pytest.raises(ValueError, match="Topology"):
        analysis.nnstd(a, "b")
