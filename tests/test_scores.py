"""Scores for cosine and gradient growth: blockwise exact top-k and pooled approximate mode vs dense brute force."""

import numpy as np
import pytest
import torch

import topo
from topo.errors import ParameterError, TopologyError
from topo.graph import LayerGraph, sample_keys
from topo.rules import PairScores, cosine_scores, gradient_scores, topk_by_key
from topo.rules import scores as scores_mod


def _layer(n_in, n_out, density, seed):
    return topo.erdos_renyi([n_in, n_out], density=density, seed=seed)[0]


def _dense_cos(pre, post):
    """|cos| between columns, numpy float64, zero columns -> 0."""
    a, b = pre.double().numpy(), post.double().numpy()
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    return np.abs(b.T @ a)  # (n_out, n_in), like the weight matrix


def _brute_top(score, graph, k, exclude=()):
    """Top-k free positions of a dense (n_out, n_in) score matrix; ties to the smaller key."""
    free = np.ones(score.shape, dtype=bool)
    free[graph.dst.numpy(), graph.src.numpy()] = False
    flat_free = free.reshape(-1)
    flat_free[np.asarray(exclude, dtype=np.int64)] = False
    keys = np.flatnonzero(flat_free)
    vals = score.reshape(-1)[keys]
    order = np.lexsort((keys, -vals))  # by value desc, then key asc
    return np.sort(keys[order[:k]])


def _activations(s, n_in, n_out, seed, dead=0):
    g = torch.Generator().manual_seed(seed)
    pre = torch.relu(torch.randn(s, n_in, generator=g))
    post = torch.relu(torch.randn(s, n_out, generator=g))
    if dead:
        pre[:, :dead] = 0
        post[:, :dead] = 0
    return pre, post


@pytest.mark.parametrize("block_bytes", [4, 200, 4096, scores_mod.DEFAULT_BLOCK_BYTES])
def test_exact_cosine_topk_matches_brute_force(block_bytes):
    pre, post = _activations(32, 37, 23, seed=1)
    g = _layer(37, 23, 0.2, seed=2)
    excl = sample_keys(37 * 23, 15, torch.Generator().manual_seed(3), exclude=g.keys())
    got = cosine_scores(pre, post).top_nonedges(g, 40, excl, block_bytes=block_bytes)
    want = _brute_top(_dense_cos(pre, post), g, 40, excl.numpy())
    assert got.tolist() == want.tolist()


def test_exact_ties_go_to_smaller_keys_whatever_the_block_size():
    # Dead neurons give cos = 0 for many pairs: the top-k must cut through a tie deterministically.
    pre, post = _activations(16, 30, 20, seed=4, dead=25)
    g = _layer(30, 20, 0.1, seed=5)
    sc = cosine_scores(pre, post)
    want = _brute_top(_dense_cos(pre, post), g, 200)
    for bb in (4, 512, 10**9):
        assert sc.top_nonedges(g, 200, block_bytes=bb).tolist() == want.tolist()


def test_dead_neurons_score_zero():
    pre, post = _activations(8, 5, 4, seed=6)
    pre[:, 2] = 0
    s = cosine_scores(pre, post)
    src = torch.tensor([2, 2, 2, 2, 0])
    dst = torch.tensor([0, 1, 2, 3, 0])
    got = s.pairs(src, dst)
    assert got[:4].tolist() == [0.0] * 4
    assert got[4].item() == pytest.approx(_dense_cos(pre, post)[0, 0], rel=1e-5)


def test_pairs_match_dense_scores():
    pre, post = _activations(20, 11, 9, seed=7)
    g = _layer(11, 9, 0.5, seed=8)
    got = cosine_scores(pre, post).edges(g).numpy()
    want = _dense_cos(pre, post)[g.dst.numpy(), g.src.numpy()]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gradient_topk_matches_autograd_dense_gradient():
    torch.manual_seed(0)
    n_in, n_out, batch = 24, 13, 50
    g = _layer(n_in, n_out, 0.25, seed=9)
    w_dense = torch.zeros(n_out, n_in)
    w_dense[g.dst, g.src] = torch.randn(g.num_edges)
    w_dense.requires_grad_(True)
    x = torch.randn(batch, n_in)
    y = torch.randint(0, n_out, (batch,))
    out = x @ w_dense.T
    out.retain_grad()
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    # The independent reference: autograd's dense gradient of the full weight matrix.
    want = _brute_top(w_dense.grad.abs().double().numpy(), g, 30)
    got = gradient_scores(x, out.grad).top_nonedges(g, 30, block_bytes=100)
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("mode", ["pool-uniform", "approx-uniform", "pool", "approx"])
def test_approx_mode_with_a_full_pool_is_exact(mode):
    pre, post = _activations(16, 20, 15, seed=10)
    g = _layer(20, 15, 0.3, seed=11)
    excl = sample_keys(20 * 15, 7, torch.Generator().manual_seed(1), exclude=g.keys())
    sc = cosine_scores(pre, post)
    exact = sc.top_nonedges(g, 10, excl)
    approx = sc.top_nonedges(g, 10, excl, mode=mode, pool_factor=1000, generator=torch.Generator().manual_seed(0))
    assert approx.tolist() == exact.tolist()


def test_block_pool_covers_every_neuron_equally():
    # 40 x 30 layer, pool of ~120 cells: 10 groups, blocks of 3 rows x 4 columns.
    pre, post = _activations(8, 40, 30, seed=15)
    g = LayerGraph(40, 30, [], [])
    sc = cosine_scores(pre, post)
    got = sc.top_nonedges(g, 120, mode="pool", pool_factor=1.0, generator=torch.Generator().manual_seed(3))
    # the whole pool is chosen: every output neuron gets 4 candidates, every input neuron 3
    assert torch.bincount(got // 40, minlength=30).tolist() == [4] * 30
    assert torch.bincount(got % 40, minlength=40).tolist() == [3] * 40


def test_block_pool_short_of_free_pairs_falls_back_to_exact():
    pre, post = _activations(8, 6, 5, seed=16)
    g = _layer(6, 5, 0.8, seed=17)  # 24 edges, 6 free positions
    sc = cosine_scores(pre, post)
    for mode in ("pool", "approx"):
        got = sc.top_nonedges(g, 5, mode=mode, pool_factor=1.0, generator=torch.Generator().manual_seed(0))
        assert got.tolist() == sc.top_nonedges(g, 5).tolist()


@pytest.mark.parametrize("mode", ["pool-uniform", "pool"])
def test_approx_mode_picks_free_high_scoring_pairs_and_is_seeded(mode):
    pre, post = _activations(64, 200, 150, seed=12)
    g = _layer(200, 150, 0.05, seed=13)
    excl = sample_keys(200 * 150, 100, torch.Generator().manual_seed(1), exclude=g.keys())
    sc = cosine_scores(pre, post)
    k = 300
    a1 = sc.top_nonedges(g, k, excl, mode=mode, generator=torch.Generator().manual_seed(5))
    a2 = sc.top_nonedges(g, k, excl, mode=mode, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, sc.top_nonedges(g, k, excl, mode=mode, generator=torch.Generator().manual_seed(6)))
    assert a1.numel() == k and torch.unique(a1).numel() == k
    assert not torch.isin(a1, g.keys()).any() and not torch.isin(a1, excl).any()
    dense = _dense_cos(pre, post).reshape(-1)
    rand = sample_keys(200 * 150, k, torch.Generator().manual_seed(2), exclude=torch.sort(
        torch.cat([g.keys(), excl])).values)
    exact = sc.top_nonedges(g, k, excl)
    # Best of a 10x pool lies between random picks and the exact top-k.
    assert dense[rand.numpy()].mean() < dense[a1.numpy()].mean() <= dense[exact.numpy()].mean() + 1e-9
    # ...and is the exact top-k of its own pool: every chosen score beats the pool's median.
    assert dense[a1.numpy()].min() > np.median(dense[rand.numpy()])


def test_kth_largest_in_pieces_matches_topk():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)).round(decimals=1)  # ties
    for k in (1, 7, 100, 999, 1000):
        assert scores_mod._kth_largest(x, k, piece=37) == torch.topk(x, k).values.min()


def test_inputs_are_not_modified():
    pre, post = _activations(6, 4, 3, seed=18)
    view = pre.T.contiguous().T  # a transposed view: contiguous() of its .T would alias it
    before = view.clone(), post.clone()
    cosine_scores(view, post)
    assert torch.equal(view, before[0]) and torch.equal(post, before[1])


def test_topk_by_key_orders_by_value_then_key():
    v = torch.tensor([0.5, 2.0, 2.0, 1.0, 2.0])
    k = torch.tensor([10, 30, 20, 5, 40])
    vals, keys = topk_by_key(v, k, 3)
    assert vals.tolist() == [2.0, 2.0, 2.0] and keys.tolist() == [20, 30, 40]
    vals, keys = topk_by_key(v, k, 2)
    assert keys.tolist() == [20, 30]


def test_bad_requests_raise():
    pre, post = _activations(4, 3, 2, seed=0)
    g = _layer(3, 2, 0.5, seed=0)
    sc = cosine_scores(pre, post)
    with pytest.raises(TopologyError, match="cannot choose 4 new edges"):
        sc.top_nonedges(g, 4)
    with pytest.raises(ValueError, match="mode"):
        sc.top_nonedges(g, 1, mode="fast")
    with pytest.raises(ParameterError, match="Generator"):
        sc.top_nonedges(g, 1, mode="approx-uniform")
    with pytest.raises(TopologyError, match="3->2"):
        sc.top_nonedges(_layer(4, 2, 0.5, seed=0), 1)
    with pytest.raises(ParameterError, match="same S"):
        PairScores(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ParameterError, match="same S"):
        cosine_scores(torch.zeros(3, 2), torch.zeros(4, 2))


def test_chunked_exact_never_allocates_a_full_score_matrix():
    """A 20000 x 20000 layer: no single allocation may exceed one block of scores."""
    from torch.profiler import ProfilerActivity, profile

    n = 20_000
    g = topo.erdos_renyi([n, n], epsilon=1, seed=0)[0]
    pre, post = _activations(8, n, n, seed=14)
    sc = cosine_scores(pre, post)
    block = 8 * 2**20
    shapes = []
    real = scores_mod._block_scores

    def spy(b_rows, a):
        out = real(b_rows, a)
        shapes.append(tuple(out.shape))
        return out

    with pytest.MonkeyPatch.context() as mp, profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        mp.setattr(scores_mod, "_block_scores", spy)
        keys = sc.top_nonedges(g, 4000, block_bytes=block)
    assert keys.numel() == 4000 and not torch.isin(keys, g.keys()).any()
    assert sum(r for r, _ in shapes) == n and all(r * c * 4 <= block for r, c in shapes)
    biggest = max(e.cpu_memory_usage for e in prof.events())
    assert 0 < biggest <= block * 1.01, biggest
    assert biggest < n * n * 4 / 100
