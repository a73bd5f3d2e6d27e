"""The fused CPU CD step of SparseRBM (topo.nn.cd_kernels): samples, statistics, determinism, generator."""

import numpy as np
import pytest
import torch

from topo.nn import SparseRBM, cd_kernels, kernels

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="needs numba (topo's CPU kernels)")


def _rbm(n_v=50, n_h=30, seed=1, scale=1.0):
    rbm = SparseRBM(n_v, n_h, epsilon=3, seed=seed, init=("normal", 0.5))
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.randn(n_v, generator=g) * scale)
        rbm.hidden_bias.copy_(torch.randn(n_h, generator=g) * scale)
    return rbm


def _step(rbm, v, keys, k=1, chain=None):
    lin = rbm.linear
    return cd_kernels.cd_step(lin.csr_structure().host(), lin.weight.detach(), rbm.hidden_bias.detach(),
                              rbm.visible_bias.detach(), v, keys, k, chain, record=True)


def _samples_from_stream(p, keys, q):
    """The 0/1 sample that pass q's uniforms give for probabilities p (units, width)."""
    n, width = p.shape
    padded = -(-width // 8) * 8
    u = cd_kernels.uniforms(int(keys[2 * q]), int(keys[2 * q + 1]), n * padded).reshape(n, padded)[:, :width]
    return (u.astype(np.float64) < p).astype(np.float64)


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("k, n_chain, batch", [(1, None, 17), (1, None, 16), (3, None, 9), (2, 5, 12)])
def test_step_matches_dense_float64_recomputation(binary, k, n_chain, batch):
    rbm = _rbm()
    gen = torch.Generator().manual_seed(batch + k)
    v = (torch.rand(batch, 50, generator=gen) > 0.6).float() if binary else torch.rand(batch, 50, generator=gen)
    chain = None if n_chain is None else (torch.rand(n_chain, 50, generator=gen) > 0.5).float()
    keys = cd_kernels.keys_from(gen, 2 * k + (chain is not None))
    r = _step(rbm, v, keys, k, chain)
    rec = {name: np.asarray(a, np.float64) for name, a in r.record.items()}
    W = rbm.linear.to_dense().double().numpy()
    c, b = rbm.hidden_bias.detach().double().numpy(), rbm.visible_bias.detach().double().numpy()
    vt = v.t().double().numpy()

    def sig(x):
        return 1.0 / (1.0 + np.exp(-x))

    def close(name, ref):
        np.testing.assert_allclose(rec[name], ref, rtol=0, atol=2e-6, err_msg=name)

    h0 = sig(W @ vt + c[:, None])
    close("h0", h0)
    np.testing.assert_array_equal(rec["h0_sample"], _samples_from_stream(rec["h0"], keys, 0))
    close("p0", sig(W.T @ rec["h0_sample"] + b[:, None]))
    q = 1
    if chain is None:
        np.testing.assert_array_equal(rec["p0_sample"], _samples_from_stream(rec["p0"], keys, 1))
        x, q = rec["p0_sample"], 2
    else:
        close("hidden0", sig(W @ chain.t().double().numpy() + c[:, None]))
        np.testing.assert_array_equal(rec["hidden0_sample"], _samples_from_stream(rec["hidden0"], keys, 1))
        close("visible0", sig(W.T @ rec["hidden0_sample"] + b[:, None]))
        np.testing.assert_array_equal(rec["visible0_sample"], _samples_from_stream(rec["visible0"], keys, 2))
        x, q = rec["visible0_sample"], 3
    for i in range(1, k):
        close(f"hidden{i}", sig(W @ x + c[:, None]))
        np.testing.assert_array_equal(rec[f"hidden{i}_sample"], _samples_from_stream(rec[f"hidden{i}"], keys, q))
        close(f"visible{i}", sig(W.T @ rec[f"hidden{i}_sample"] + b[:, None]))
        np.testing.assert_array_equal(rec[f"visible{i}_sample"],
                                      _samples_from_stream(rec[f"visible{i}"], keys, q + 1))
        x, q = rec[f"visible{i}_sample"], q + 2
    assert 2 * q == len(keys)  # every key pair used once
    hk = sig(W @ x + c[:, None])
    close("hk", hk)
    n_neg = x.shape[1]
    G = -(h0 @ vt.T / batch - hk @ x.T / n_neg)
    ei = rbm.linear.edge_index
    np.testing.assert_allclose(r.grad_w.numpy(), G[ei[1], ei[0]], rtol=0, atol=2e-6)
    np.testing.assert_allclose(r.grad_hidden.numpy(), hk.mean(1) - h0.mean(1), rtol=0, atol=2e-6)
    np.testing.assert_allclose(r.grad_visible.numpy(), x.mean(1) - vt.mean(1), rtol=0, atol=2e-6)
    np.testing.assert_array_equal(r.vk_t.numpy(), x)
    p0 = sig(W.T @ rec["h0_sample"] + b[:, None])
    assert r.recon == pytest.approx(float(((p0 - vt) ** 2).mean()), abs=1e-6)


def test_contrastive_divergence_runs_the_fused_step_and_sets_its_gradients():
    rbm = _rbm()
    v = (torch.rand(20, 50, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    assert rbm._fused(v, None)
    err, vk = rbm.contrastive_divergence(v, k=1, generator=torch.Generator().manual_seed(4))
    r = _step(rbm, v, cd_kernels.keys_from(torch.Generator().manual_seed(4), 2))
    assert torch.equal(rbm.linear.weight.grad, r.grad_w)
    assert torch.equal(rbm.hidden_bias.grad, r.grad_hidden)
    assert torch.equal(rbm.visible_bias.grad, r.grad_visible)
    assert torch.equal(vk, r.vk_t.t()) and vk.shape == (20, 50) and vk.dtype == torch.float32
    assert err == r.recon


def test_fused_step_only_where_it_applies():
    v = torch.rand(4, 50)
    assert not _rbm().double()._fused(v.double(), None)  # float64: the unfused path
    assert not SparseRBM(50, 30, epsilon=3, visible="gaussian", seed=0)._fused(v, None)
    assert not SparseRBM(50, 30, epsilon=3, backend="dense", seed=0)._fused(v, None)
    prev = kernels.set_enabled(False)
    try:
        assert not _rbm()._fused(v, None)
    finally:
        kernels.set_enabled(prev)
    prev = cd_kernels.set_enabled(False)
    try:
        rbm = _rbm()
        assert not rbm._fused(v, None)
        # Off, float32 runs the unfused step: its samples are torch.rand's (the dense reference's draws).
        v = (torch.rand(6, 50, generator=torch.Generator().manual_seed(2)) > 0.5).float()
        rbm.contrastive_divergence(v, generator=torch.Generator().manual_seed(5))
        g = torch.Generator().manual_seed(5)
        W, b, c = rbm.linear.to_dense(), rbm.visible_bias.detach(), rbm.hidden_bias.detach()
        h0 = torch.sigmoid(v @ W.t() + c)
        hs = (torch.rand(h0.t().shape, generator=g).t() < h0).float()
        m = torch.sigmoid(hs @ W + b)
        vs = (torch.rand(m.t().shape, generator=g).t() < m).float()
        hk = torch.sigmoid(vs @ W.t() + c)
        ei = rbm.linear.edge_index
        torch.testing.assert_close(rbm.linear.weight.grad, (-(h0.t() @ v - hk.t() @ vs) / 6)[ei[1], ei[0]])
    finally:
        cd_kernels.set_enabled(prev)
    assert _rbm()._fused(v, None)


def test_same_seed_same_step_and_thread_count_changes_nothing():
    rbm = _rbm(784, 200, scale=0.1)
    v = (torch.rand(100, 784, generator=torch.Generator().manual_seed(0)) > 0.8).float()

    def grads(seed):
        rbm.contrastive_divergence(v, generator=torch.Generator().manual_seed(seed))
        return [p.grad.clone() for p in (rbm.linear.weight, rbm.hidden_bias, rbm.visible_bias)]

    a = grads(3)
    assert all(torch.equal(x, y) for x, y in zip(a, grads(3)))
    assert not torch.equal(a[0], grads(4)[0])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = grads(3)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(x, y) for x, y in zip(a, two))


def test_sigmoid_accuracy_and_saturation():
    # Pre-activations over the whole float range through the hidden biases (one visible unit, no data).
    rbm = SparseRBM(1, 64, density=1.0, seed=0)
    pre = np.concatenate([[-1e4, -200, -100, -88, -87], np.linspace(-80, 80, 53), [0.0, 88, 100, 1e4, 3e38, -3e38]])
    with torch.no_grad():
        rbm.linear.weight.zero_()
        rbm.hidden_bias.copy_(torch.as_tensor(pre, dtype=torch.float32))
    r = _step(rbm, torch.zeros(3, 1), cd_kernels.keys_from(torch.Generator().manual_seed(0), 2))
    h = r.record["h0"][:, 0].astype(np.float64)
    x = pre.astype(np.float32).astype(np.float64)
    ref = 1.0 / (1.0 + np.exp(-np.clip(x, -700, 700)))
    assert np.isfinite(h).all() and (h >= 0).all() and (h <= 1).all()
    moderate = np.abs(x) <= 80
    rel = np.abs(h[moderate] - ref[moderate]) / ref[moderate]
    assert rel.max() < 1e-6, rel.max()
    assert (h[x >= 20] == 1.0).all() and (h[x <= -88] < 1e-37).all()
    assert (h[x == 0] == 0.5).all()


def test_generator_uniformity_and_independence():
    n = 1 << 20
    u = cd_kernels.uniforms(0x1234, 0xBEEF, n).astype(np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(u * 2**24 == np.floor(u * 2**24))  # 24-bit resolution
    se = np.sqrt(1 / 12 / n)
    assert abs(u.mean() - 0.5) < 5 * se
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)  # var of (u - 1/2)^2 is 1/180
    counts = np.bincount((u * 256).astype(np.int64), minlength=256)
    chi2 = ((counts - n / 256) ** 2 / (n / 256)).sum()
    assert 255 - 6 * np.sqrt(2 * 255) < chi2 < 255 + 6 * np.sqrt(2 * 255), chi2
    bound = 5 / np.sqrt(n)
    for lag in (1, 2, 8, 104):  # neighbours, and the same column of the next unit (padded batch 104)
        assert abs(np.corrcoef(u[:-lag], u[lag:])[0, 1]) < bound, lag
    # Pairs (u_i, u_{i+1}) fill the unit square evenly (16 x 16 cells).
    pairs = np.bincount((u[0::2] * 16).astype(np.int64) * 16 + (u[1::2] * 16).astype(np.int64), minlength=256)
    chi2 = ((pairs - n / 2 / 256) ** 2 / (n / 2 / 256)).sum()
    assert chi2 < 255 + 6 * np.sqrt(2 * 255), chi2
    # Streams of neighbouring keys (consecutive steps draw unrelated keys, but keys may be close) differ.
    for other in (cd_kernels.uniforms(0x1235, 0xBEEF, n), cd_kernels.uniforms(0x1234, 0xBEEE, n)):
        assert abs(np.corrcoef(u, other.astype(np.float64))[0, 1]) < bound
    assert np.array_equal(u, cd_kernels.uniforms(0x1234, 0xBEEF, n))


def test_samples_have_their_probabilities():
    # Bernoulli samples of a fixed p over many draws: the sample mean is p (5 standard errors).
    rbm = SparseRBM(1, 8, density=1.0, seed=0)
    logits = torch.tensor([-4.0, -2.0, -1.0, -0.25, 0.0, 0.5, 2.0, 4.0])
    with torch.no_grad():
        rbm.linear.weight.zero_()
        rbm.hidden_bias.copy_(logits)
    r = _step(rbm, torch.zeros(4000, 1), cd_kernels.keys_from(torch.Generator().manual_seed(1), 2))
    p = torch.sigmoid(logits).double().numpy()
    mean = r.record["h0_sample"].mean(1)
    assert np.all(np.abs(mean - p) < 5 * np.sqrt(p * (1 - p) / 4000)), (mean, p)
