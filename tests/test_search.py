"""mode="approx": similarity-search growth, its recall of the exact top-k against brute force, its contract."""

import numpy as np
import pytest
import torch

from topo import LayerGraph
from topo.errors import ParameterError
from topo.graph.sampling import sample_keys
from topo.nn import kernels
from topo.rules import CosineGrow, RuleContext, cosine_scores, gradient_scores
from topo.rules._survivors import above
from topo.rules.search import _orthonormal, faiss_available, neighbour_pairs, subspace, threshold_pairs

BACKENDS = ["threshold", "torch"] + (["faiss"] if faiss_available() else [])


def _lowrank(samples, n_in, n_out, rank, seed, noise=0.3):
    # Activations of a trained layer are far from isotropic: a few shared factors plus noise.
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, rank, generator=g)
    pre = (z @ torch.randn(rank, n_in, generator=g) + noise * torch.randn(samples, n_in, generator=g)).relu()
    post = (z @ torch.randn(rank, n_out, generator=g) + noise * torch.randn(samples, n_out, generator=g)).relu()
    return pre, post


def _layer(n_in, n_out, density, seed):
    gen = torch.Generator().manual_seed(seed)
    keys = sample_keys(n_in * n_out, int(density * n_in * n_out), gen)
    return LayerGraph.from_keys(n_in, n_out, keys)


def _brute(dense, g, exclude, k):
    d = dense.copy().reshape(-1)
    d[g.keys().numpy()] = -np.inf
    d[exclude.numpy()] = -np.inf
    return set(np.argsort(-d, kind="stable")[:k].tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_recall_of_the_exact_top_k(backend):
    pre, post = _lowrank(512, 600, 500, rank=12, seed=0)
    g = _layer(600, 500, 0.02, seed=1)
    excl = sample_keys(600 * 500, 200, torch.Generator().manual_seed(2), exclude=g.keys())
    sc = cosine_scores(pre, post)
    dense = (sc.bT @ sc.aT.T).abs().numpy()  # brute force: every pair's |cos|
    k = 1500
    want = _brute(dense, g, excl, k)
    got = sc.top_nonedges(g, k, excl, mode="approx", pool_factor=4, generator=torch.Generator().manual_seed(3),
                          search_dim=32, search_backend=backend)
    assert got.numel() == k and torch.unique(got).numel() == k and torch.equal(got, torch.sort(got).values)
    assert not torch.isin(got, g.keys()).any() and not torch.isin(got, excl).any()
    recall = len(want & set(got.tolist())) / k
    assert recall >= 0.9, recall
    # A random pool of the same budget recalls far less (the reason "approx" exists).
    pool = sc.top_nonedges(g, k, excl, mode="pool", pool_factor=4, generator=torch.Generator().manual_seed(3))
    assert len(want & set(pool.tolist())) / k < recall / 2


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_gradient_scores_recall(backend):
    g0 = torch.Generator().manual_seed(5)
    z = torch.randn(256, 6, generator=g0)
    x = z @ torch.randn(6, 300, generator=g0) + 0.2 * torch.randn(256, 300, generator=g0)
    dy = z @ torch.randn(6, 200, generator=g0) + 0.2 * torch.randn(256, 200, generator=g0)
    sc = gradient_scores(x, dy)
    g = _layer(300, 200, 0.05, seed=6)
    dense = (dy.T @ x).abs().numpy()
    want = _brute(dense, g, torch.empty(0, dtype=torch.int64), 600)
    got = sc.top_nonedges(g, 600, mode="approx", generator=torch.Generator().manual_seed(0), search_dim=24,
                          search_backend=backend)
    assert len(want & set(got.tolist())) / 600 >= 0.9
    assert got.numel() == 600 and not torch.isin(got, g.keys()).any()


def test_small_layers_are_searched_exactly_and_seeded():
    # Fewer samples than the search dimension: no projection, the neighbour lists are exact.
    pre, post = _lowrank(16, 40, 30, rank=4, seed=7)
    g = _layer(40, 30, 0.2, seed=8)
    sc = cosine_scores(pre, post)
    exact = sc.top_nonedges(g, 50)
    a = sc.top_nonedges(g, 50, mode="approx", generator=torch.Generator().manual_seed(1))
    assert set(a.tolist()) == set(exact.tolist())
    grow = CosineGrow(mode="approx")
    ctx = lambda: RuleContext(generator=torch.Generator().manual_seed(4), activations=(pre, post))  # noqa: E731
    assert torch.equal(grow(g, 20, ctx()), grow(g, 20, ctx()))


def test_subspace_is_orthonormal_and_captures_low_rank_data():
    pre, post = _lowrank(300, 200, 100, rank=5, seed=9, noise=0.0)
    sc = cosine_scores(pre, post)
    q = subspace(sc.aT, sc.bT, 20, torch.Generator().manual_seed(0))
    assert q.shape == (300, 20) and torch.allclose(q.T @ q, torch.eye(20), atol=1e-4)
    # relu(rank-5) data is close to low rank: projecting keeps almost every inner product.
    full = sc.bT @ sc.aT.T
    proj = (sc.bT @ q) @ (sc.aT @ q).T
    assert float((full - proj).abs().max()) < 0.1
    assert subspace(sc.aT, sc.bT, 400, torch.Generator()) is None


def test_neighbour_pairs_are_each_sides_best():
    pre, post = _lowrank(8, 30, 20, rank=3, seed=10)
    sc = cosine_scores(pre, post)
    keys, est = neighbour_pairs(sc.aT, sc.bT, 3, 2, dim=128, generator=torch.Generator().manual_seed(0),
                                backend="torch")
    dense = (sc.bT @ sc.aT.T).abs()
    want = set()
    for j in range(20):
        want |= {j * 30 + i for i in torch.topk(dense[j], 3).indices.tolist()}
    for i in range(30):
        want |= {j * 30 + i for j in torch.topk(dense[:, i], 2).indices.tolist()}
    assert set(keys.tolist()) == want and torch.equal(keys, torch.sort(keys).values)
    # No projection (8 samples < dim): the estimates are the exact scores.
    assert torch.allclose(est, dense.reshape(-1)[keys], atol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        neighbour_pairs(sc.aT, sc.bT, 1, 1, generator=torch.Generator(), backend="annoy")


def _free_top(dense, taken, m):
    d = dense.reshape(-1).clone()
    d[taken] = -1.0
    return set(torch.topk(d, m).indices.tolist())


@pytest.mark.parametrize("margin", [1.5, 0.5, 0.02, 60.0])
@pytest.mark.parametrize("block_bytes", [64 * 2 ** 20, 1000])
def test_threshold_pairs_are_exactly_the_best_estimates(margin, block_bytes):
    # 16 samples < dim: no projection, so the estimates are the exact scores and the m best are known.
    # margin 0.5 makes the first threshold guess too high (the pass is repeated lower), 0.02 leaves too few
    # sampled pairs above it to trust (no threshold: the running top-m sets it), 60 far too low (the
    # running top-m raises it); 1000-byte blocks are a few rows each.
    pre, post = _lowrank(16, 300, 200, rank=4, seed=11)
    sc = cosine_scores(pre, post)
    dense = (sc.bT @ sc.aT.T).abs()
    # The existing edges are the best pairs of all: a search that did not mask them would return them.
    taken = torch.sort(torch.topk(dense.reshape(-1), 500).indices).values
    m = 400
    keys, est = threshold_pairs(sc.aT, sc.bT, m, taken, dim=64, generator=torch.Generator().manual_seed(0),
                                block_bytes=block_bytes, margin=margin)
    assert keys.numel() == m and torch.equal(keys, torch.unique(keys))
    assert set(keys.tolist()) == _free_top(dense, taken, m)
    assert torch.allclose(est, dense.reshape(-1)[keys], atol=1e-6)


def test_threshold_pairs_in_a_subspace_recall_and_are_seeded():
    pre, post = _lowrank(512, 600, 500, rank=8, seed=12)
    sc = cosine_scores(pre, post)
    g = _layer(600, 500, 0.05, seed=13)
    dense = (sc.bT @ sc.aT.T).abs()
    m = 3000
    run = lambda seed: threshold_pairs(sc.aT, sc.bT, m, g.keys(), dim=24,  # noqa: E731
                                       generator=torch.Generator().manual_seed(seed))
    (k1, e1), (k2, e2) = run(4), run(4)
    assert torch.equal(k1, k2) and torch.equal(e1, e2)
    assert k1.numel() == m and not torch.isin(k1, g.keys()).any()
    # The subspace of dimension 24 holds the 8 factors: most of the true best pairs are found, far more
    # than the m / free share (0.01) a random choice would hit.
    assert len(set(k1.tolist()) & _free_top(dense, g.keys(), m)) / m >= 0.8
    # Asking for every free pair returns them all.
    few = _layer(30, 20, 0.5, seed=14)
    sc2 = cosine_scores(*_lowrank(64, 30, 20, rank=3, seed=15))
    keys, _ = threshold_pairs(sc2.aT, sc2.bT, 10 ** 6, few.keys(), dim=8, generator=torch.Generator().manual_seed(0))
    assert keys.tolist() == sorted(set(range(600)) - set(few.keys().tolist()))


def test_approx_search_backend_is_checked():
    pre, post = _lowrank(32, 20, 10, rank=2, seed=16)
    with pytest.raises(ParameterError, match="search_backend.*'annoy'"):
        cosine_scores(pre, post).top_nonedges(_layer(20, 10, 0.1, seed=0), 5, mode="approx",
                                              generator=torch.Generator(), search_backend="annoy")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_above_kernel_matches_torch(dtype):
    x = torch.randn(70, 333, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x[5, 7], x[9, :] = float("nan"), 3.0  # masked entries never pass; a full row passes whole
    want = (x.abs() >= 1.2).reshape(-1).nonzero().squeeze(1)
    pos, val = above(x, 1.2)
    assert torch.equal(pos, want) and torch.equal(val, x.reshape(-1)[want].abs())
    before = kernels.set_enabled(False)
    try:
        pos2, val2 = above(x, 1.2)
    finally:
        kernels.set_enabled(before)
    assert torch.equal(pos2, want) and torch.equal(val2, val)
    assert above(x, 10.0)[0].numel() == 0


def test_orthonormal_basis_also_of_rank_deficient_input():
    y = torch.randn(200, 10, generator=torch.Generator().manual_seed(0)) @ torch.diag(torch.logspace(0, -3, 10))
    q = _orthonormal(y)
    assert torch.allclose(q.T @ q, torch.eye(10), atol=1e-5) and torch.allclose(q @ (q.T @ y), y, atol=1e-5)
    y[:, 4] = y[:, 3]  # Cholesky of the Gram fails: Householder QR instead
    q = _orthonormal(y)
    assert q.shape == (200, 10) and torch.allclose(q.T @ q, torch.eye(10), atol=1e-5)
