"""The O(E) SET step (sorted-key merges, radix-select pruning) against plain numpy/set references.

Every check runs twice: with topo's numba walks and with their numpy fallback
(``keyset.set_compiled(False)``), which must agree with each other and with the
references. A wrong merge shows up as a pruned set that is not exactly the ``ζ``
nearest-zero weights per sign, a birth that is not new or repeats, a changed edge
count, a weight moved to another edge, or a History that disagrees with the model.
"""

import numpy as np
import pytest
import torch

import topo
from topo.graph import keyset
from topo.graph.layer import LayerGraph
from topo.graph.sampling import sample_keys
from topo.rules import SET, MagnitudePrune, RandomGrow, Rule
from topo.rules.base import count_for
from topo.rules.select import smallest


@pytest.fixture(params=[True, False], ids=["numba", "numpy"])
def compiled(request):
    old = keyset.set_compiled(request.param)
    yield request.param
    keyset.set_compiled(old)


def _layer(seed, n_in, n_out, density, ties=False):
    g = topo.erdos_renyi([n_in, n_out], density=density, seed=seed)[0]
    gen = torch.Generator().manual_seed(seed + 100)
    w = torch.randn(g.num_edges, generator=gen)
    if ties:  # few distinct values, zeros (as just-born edges have) and a negative zero
        w = torch.round(w * 2) / 2
        w[::7] = 0.0
        w[3::11] = -0.0
    return g.with_weight(w)


def _ref_prune(w: np.ndarray, zeta: float, per_sign: bool = True) -> set:
    """Positions a stable ranking drops: per sign (ζ of w >= 0, smallest; ζ of w < 0, largest) or by |w|."""
    idx = np.arange(w.size)
    if not per_sign:
        return set(np.argsort(np.abs(w), kind="stable")[:count_for(zeta, w.size)].tolist())
    pos, neg = idx[w >= 0], idx[w < 0]
    keep_pos = pos[np.argsort(w[pos], kind="stable")][:count_for(zeta, pos.size)]
    keep_neg = neg[np.argsort(-w[neg], kind="stable")][:count_for(zeta, neg.size)]
    return set(keep_pos.tolist()) | set(keep_neg.tolist())


def _keys(edges: torch.Tensor, n_in: int) -> list:
    return (edges[1] * n_in + edges[0]).tolist()


CASES = [(s, n_in, n_out, d, ties) for s, (n_in, n_out, d) in enumerate(
    [(30, 20, 0.3), (200, 150, 0.05), (7, 5, 0.6), (1000, 800, 0.01), (50, 40, 0.4), (1, 12, 0.5)])
    for ties in (False, True)]


@pytest.mark.filterwarnings("ignore:layer 0 .* fewer than its:RuntimeWarning")  # the 1 -> 12 case, on purpose
@pytest.mark.parametrize("seed,n_in,n_out,density,ties", CASES)
@pytest.mark.parametrize("per_sign", [True, False])
def test_set_step_against_a_set_reference(compiled, seed, n_in, n_out, density, ties, per_sign):
    g = _layer(seed, n_in, n_out, density, ties)
    w = g.weight.numpy()
    old = dict(zip(g.keys().tolist(), w.tolist()))
    rule = SET(0.3) if per_sign else Rule(MagnitudePrune(0.3, per_sign=False), RandomGrow())
    r = rule(g, seed)
    died, born = _keys(r.deaths, n_in), _keys(r.births, n_in)
    keys = g.keys().numpy()
    assert set(died) == {int(keys[i]) for i in _ref_prune(w, 0.3, per_sign)}  # exactly the ζ nearest zero
    assert died == sorted(died) and born == sorted(born)
    assert len(set(born)) == len(born) == len(died)  # distinct, count preserved
    assert not set(born) & set(old)  # new: neither a kept edge nor a just-pruned one
    assert all(0 <= k < n_in * n_out for k in born)
    new = r.graph.keys().tolist()
    assert new == sorted(set(old) - set(died) | set(born))  # CSR order, no duplicate
    assert (r.graph.src.tolist(), r.graph.dst.tolist()) == ([k % n_in for k in new], [k // n_in for k in new])
    nw = dict(zip(new, r.graph.weight.tolist()))
    assert all(nw[k] == old[k] for k in set(old) - set(died))  # survivors keep their value
    assert all(nw[k] == 0.0 for k in born)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("budget_factor", [0.7, 1.3])
def test_budgeted_steps_against_a_set_reference(compiled, seed, budget_factor):
    g = _layer(seed, 60, 40, 0.2, ties=bool(seed % 2))
    budget = int(g.num_edges * budget_factor)
    r = SET(0.3)(g, seed, budget=budget)
    old, died, born = set(g.keys().tolist()), _keys(r.deaths, 60), _keys(r.births, 60)
    assert r.graph.num_edges == budget == len(old) - len(died) + len(born)
    assert set(died) <= old and not set(born) & old and len(set(born)) == len(born)
    assert r.graph.keys().tolist() == sorted(old - set(died) | set(born))


def test_ordered_prune_is_the_stable_ranking_by_magnitude(compiled):
    for seed, ties in ((0, False), (1, True), (2, True)):
        g = _layer(seed, 80, 60, 0.2, ties)
        w = g.weight.numpy()
        for per_sign in (True, False):
            got = MagnitudePrune(0.3, per_sign=per_sign)(g).tolist()
            chosen = np.array(sorted(_ref_prune(w, 0.3, per_sign)))
            want = chosen[np.argsort(np.abs(w[chosen]), kind="stable")].tolist()
            assert got == want
            assert MagnitudePrune(0.3, per_sign=per_sign)(g, ordered=False).tolist() == sorted(want)


def test_same_seed_same_edges_as_before_the_rewrite(compiled):
    """Births and deaths of the pre-rewrite implementation (commit 5ee8685) for the same seeds: the random
    stream of the regrowth and the tie-breaking of the pruning are unchanged."""
    g = topo.erdos_renyi([30, 20], density=0.3, seed=1)[0]
    w = torch.round(torch.randn(g.num_edges, generator=torch.Generator().manual_seed(101)) * 3) / 3
    r = SET(0.3)(g.with_weight(w), 1)
    assert _keys(r.births, 30) == [1, 5, 23, 31, 32, 35, 52, 72, 88, 93, 97, 98, 133, 136, 162, 168, 173, 193,
                                   213, 220, 251, 262, 267, 288, 306, 328, 329, 330, 333, 337, 348, 396, 399, 407,
                                   425, 427, 431, 439, 450, 462, 463, 478, 498, 518, 535, 537, 539, 546, 547, 551,
                                   559, 568, 579, 594]
    assert _keys(r.deaths, 30) == [6, 9, 12, 18, 28, 40, 43, 46, 76, 78, 80, 100, 111, 129, 164, 166, 167, 180,
                                   186, 210, 233, 260, 277, 280, 294, 308, 332, 334, 365, 366, 370, 395, 406, 414,
                                   421, 459, 460, 465, 471, 480, 485, 486, 493, 501, 513, 521, 544, 552, 555, 562,
                                   572, 580, 592, 593]


def test_evolver_history_and_optimizer_follow_the_merge(compiled):
    model = topo.compile(topo.erdos_renyi([40, 60, 30, 5], epsilon=4, seed=1), seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g0 = torch.Generator().manual_seed(5)
    x, y = torch.randn(16, 40, generator=g0), torch.randint(0, 5, (16,), generator=g0)
    ev = topo.Evolver(model, SET(0.3), optimizer=opt, seed=3)
    for epoch in (1, 2, 3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        before = [dict(zip((m.edge_index[1].long() * m.in_features + m.edge_index[0].long()).tolist(),
                           zip(m.weight.tolist(), opt.state[m.weight]["momentum_buffer"].tolist())))
                  for m in model.sparse_layers]
        ev.step(epoch=epoch)
        for k, m in enumerate(model.sparse_layers):
            keys = (m.edge_index[1].long() * m.in_features + m.edge_index[0].long()).tolist()
            assert keys == sorted(set(keys)) and len(keys) == len(before[k])
            assert keys == ev.history_.topology(epoch)[k].keys().tolist()
            state = opt.state[m.weight]["momentum_buffer"].tolist()
            for key, value, mom in zip(keys, m.weight.tolist(), state):
                assert (value, mom) == before[k].get(key, (0.0, 0.0))  # carried, or a zero birth


# -- the primitives ---------------------------------------------------------------------------------

def _sorted_unique(rng, n, high):
    return np.unique(rng.integers(0, high, n)).astype(np.int64)


@pytest.mark.parametrize("seed", range(6))
def test_keyset_walks_match_numpy(compiled, seed):
    rng = np.random.default_rng(seed)
    high = [50, 10**6, 10**12][seed % 3]
    a = _sorted_unique(rng, [0, 1, 500, 3000][seed % 4], high)
    for q in (np.sort(rng.integers(-5, high + 5, 2000)), np.sort(rng.integers(0, high, 3)),
              np.empty(0, np.int64), a[::3].copy()):
        ta, tq = torch.from_numpy(a), torch.from_numpy(q.astype(np.int64))
        assert keyset.locate(ta, tq).tolist() == np.searchsorted(a, q).tolist()
        assert keyset.contains(ta, tq).tolist() == np.isin(q, a).tolist()
    b = np.setdiff1d(_sorted_unique(rng, 400, high), a)
    merged, at = keyset.merge(torch.from_numpy(a), torch.from_numpy(b))
    assert merged.tolist() == sorted(a.tolist() + b.tolist())
    assert merged[at].tolist() == b.tolist()
    assert keyset.union(torch.from_numpy(a), torch.from_numpy(rng.permutation(b)), torch.from_numpy(a[:5])).tolist() \
        == sorted(set(a.tolist()) | set(b.tolist()))
    drop = np.sort(rng.choice(a.size, a.size // 3, replace=False)) if a.size else np.empty(0, np.int64)
    keep = np.setdiff1d(np.arange(a.size), drop)
    for t in (torch.from_numpy(a), torch.from_numpy(a).to(torch.bfloat16), torch.from_numpy(a % 2 == 0)):
        (got,) = keyset.compact([t], torch.from_numpy(drop))
        assert torch.equal(got, t[torch.from_numpy(keep)])
    # old -> new matching straight from an int32 edge_index
    n_in = 1000
    if high < 2**31 and a.size:
        src, dst = (a % n_in).astype(np.int32), (a // n_in).astype(np.int32)
        new = np.sort(np.concatenate([a[keep], b]))
        want = [int(np.searchsorted(new, k)) if k in set(new.tolist()) else -1 for k in a.tolist()]
        assert keyset.match(torch.from_numpy(src), torch.from_numpy(dst), n_in, torch.from_numpy(new)).tolist() == want


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int64])
def test_interleave_and_insert_move_values_bit_for_bit(compiled, dtype):
    rng = np.random.default_rng(1)
    a = _sorted_unique(rng, 300, 10**5)
    b = np.setdiff1d(_sorted_unique(rng, 100, 10**5), a)
    av = torch.randn(a.size).to(dtype)
    bv = torch.randn(b.size).to(dtype)
    merged, at = keyset.merge(torch.from_numpy(a), torch.from_numpy(b))
    out = keyset.interleave(av, bv, at)
    assert torch.equal(out[at], bv) and torch.equal(out[~torch.isin(torch.arange(out.numel()), at)], av)
    n_in = 317
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    fused = keyset.insert(ta, ta % n_in, ta // n_in, av, tb, torch.stack([tb % n_in, tb // n_in]), bv)
    if compiled:
        k, s, d, v = fused
        assert torch.equal(k, merged) and torch.equal(s, merged % n_in) and torch.equal(d, merged // n_in)
        assert torch.equal(v, out)
    else:
        assert fused is None  # the caller then merges and interleaves


def test_apply_walk_checks_what_it_merges(compiled):
    keys = torch.tensor([2, 5, 9, 14, 20])
    got = keyset.apply(keys, torch.tensor([5, 20]), torch.tensor([0, 5, 30]))  # 5 dies and is reborn
    if not compiled:
        assert got is None
        return
    assert got.tolist() == [0, 2, 5, 9, 14, 30]
    for dead, born in (([6], []), ([20, 21], []), ([], [9]), ([], [3, 3]), ([2, 2], [])):
        assert keyset.apply(keys, torch.tensor(dead, dtype=torch.int64), torch.tensor(born, dtype=torch.int64)) is None


def test_history_names_bad_changes_after_the_fast_walk_refuses_them(compiled):
    h = topo.History(topo.from_edges([4, 3], [([0, 1, 2], [0, 1, 2])]))
    with pytest.raises(topo.errors.TopologyError, match="a death names an edge that is not alive"):
        h.record(1, [topo.LayerChange(deaths=[[3], [0]])])
    with pytest.raises(topo.errors.TopologyError, match=r"duplicate edge \(src=1, dst=1\)"):
        h.record(1, [topo.LayerChange(births=[[1], [1]])])
    # out-of-order lists are sorted first
    h.record(1, [topo.LayerChange(births=[[3, 0], [2, 1]], deaths=[[2, 0], [2, 0]])])
    assert h.topology(1)[0].keys().tolist() == [4, 5, 11]


def test_radix_select_is_the_stable_ranking():
    rng = np.random.default_rng(3)
    for w in (rng.standard_normal(5000).astype(np.float32),
              np.round(rng.standard_normal(5000) * 2).astype(np.float32),
              np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 0.0, np.nan, -2.0, 2.0], dtype=np.float32)):
        n_pos, n_neg = int((w >= 0).sum()), int((w < 0).sum())
        for zeta in (0.0, 0.3, 1.0):
            k_pos, k_neg = count_for(zeta, n_pos), count_for(zeta, n_neg)
            got = smallest(torch.from_numpy(w), True, k_pos, k_neg)
            assert set(got.tolist()) == _ref_prune(w, zeta) and got.tolist() == sorted(got.tolist())
            if not np.isnan(w).any():
                k = count_for(zeta, w.size)
                assert set(smallest(torch.from_numpy(w), False, k).tolist()) == _ref_prune(w, zeta, False)
    assert smallest(torch.tensor([1.0, float("nan")]), False, 1) is None  # NaN ranks last: the sort decides
    assert smallest(torch.tensor([1.0, 2.0], dtype=torch.float64), True, 1) is None


def test_sample_keys_with_split_exclude_equals_the_union():
    a = torch.tensor([3, 10, 11, 500], dtype=torch.int64)
    b = torch.tensor([0, 7, 12], dtype=torch.int64)
    one = sample_keys(10**4, 300, torch.Generator().manual_seed(4), exclude=torch.sort(torch.cat([a, b])).values)
    two = sample_keys(10**4, 300, torch.Generator().manual_seed(4), exclude=(a, b))
    assert torch.equal(one, two) and not torch.isin(two, torch.cat([a, b])).any()
    with pytest.raises(topo.errors.ParameterError, match="sorted, unique"):
        sample_keys(100, 3, torch.Generator().manual_seed(0), exclude=(a, torch.tensor([5, 4])))


def test_layer_graph_key_cache_follows_its_edges():
    src, dst = torch.tensor([0, 2, 1]), torch.tensor([0, 0, 1])
    g = LayerGraph._trusted(3, 2, src, dst, keys=torch.tensor([0, 2, 4]))
    assert g.keys().tolist() == [0, 2, 4]
    g.src[2] = 2  # in place: the cached keys are stale
    assert g.keys().tolist() == [0, 2, 5]
    g.dst = torch.tensor([0, 1, 1])  # replaced
    assert g.keys().tolist() == [0, 5, 5]
    f = LayerGraph.from_keys(3, 2, torch.tensor([1, 3, 5]), weight=[0.5, 1.5, 2.5])
    assert (f.src.tolist(), f.dst.tolist(), f.keys().tolist()) == ([1, 0, 2], [0, 1, 1], [1, 3, 5])
    with pytest.raises(topo.errors.TopologyError, match="out of range"):
        LayerGraph.from_keys(3, 2, torch.tensor([1, 6]))
    with pytest.raises(topo.errors.TopologyError, match="duplicate"):
        LayerGraph.from_keys(3, 2, torch.tensor([4, 1, 4]))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_split_into_writes_the_index_rows_of_sorted_keys(compiled, dtype):
    rng = np.random.default_rng(3)
    for n_in, n_out, n in ((1, 50, 20), (7, 9, 40), (1000, 3000, 1_200_000), (5, 4, 0)):
        keys = np.sort(rng.choice(n_in * n_out, size=n, replace=False)).astype(np.int64)
        src, dst = torch.empty(n, dtype=dtype), torch.empty(n, dtype=dtype)
        keyset.split_into(torch.from_numpy(keys), n_in, src, dst)
        assert src.numpy().tolist() == (keys % n_in).tolist() and dst.numpy().tolist() == (keys // n_in).tolist()
    # a sparse key space: rows skipped by the billions, and the last row of a 2**62-key layer
    n_in, n_out = 3, 2**62 // 3
    keys = torch.tensor([1, 5, 6, 3 * 10**12 + 2, 3 * (n_out - 1), 3 * (n_out - 1) + 2])
    src, dst = torch.empty(6, dtype=torch.int64), torch.empty(6, dtype=torch.int64)
    keyset.split_into(keys, n_in, src, dst)
    assert src.tolist() == (keys % n_in).tolist() and dst.tolist() == (keys // n_in).tolist()


def test_a_keys_only_layer_splits_its_rows_when_asked(compiled):
    keys = torch.tensor([1, 3, 5, 11])
    g = LayerGraph._trusted_keys(3, 4, keys, torch.tensor([0.5, -1.0, 2.0, 3.0]))
    assert g.num_edges == 4 and g.keys() is keys and g._keys_only  # neither splits the rows
    c = g.copy()
    assert c._keys_only and c.keys() is not keys and c == g
    assert (g.src.tolist(), g.dst.tolist()) == ([1, 0, 2, 2], [0, 1, 1, 3]) and not g._keys_only
    g.src[0] = 0  # the split rows are the layer now: keys follow them
    assert g.keys().tolist() == [0, 3, 5, 11] and c.keys().tolist() == [1, 3, 5, 11]
    assert g.with_weight(None).weight is None and g.in_degree().tolist() == [1, 2, 0, 1]


def test_evolution_hands_keys_only_layers_and_the_module_rows_match(compiled):
    lin = topo.nn.SparseLinear(40, 30, density=0.2, seed=0)
    g = lin.layer_graph()
    assert g._keys_only
    assert torch.equal(g.src, lin.edge_index[0].long()) and torch.equal(g.dst, lin.edge_index[1].long())
    r = SET(0.3)(lin.layer_graph(), 1)
    assert r.graph._keys_only  # the rule never split the kept edges or the result
    lin.rewire(r.graph)
    assert lin.edge_index.dtype == torch.int32
    assert (lin.edge_index[1].long() * 40 + lin.edge_index[0].long()).tolist() == r.graph.keys().tolist()
