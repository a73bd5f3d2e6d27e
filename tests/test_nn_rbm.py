"""SparseRBM: sparse products against dense references, CD-k/PCD, evolution, files, likelihood."""

import itertools
import json
import math
import zipfile

import numpy as np
import pytest
import torch

import topo
from topo.errors import ParameterError, TopologyFormatError
from topo.nn import SparseRBM, ais
from topo.nn.kernels import set_enabled

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _rbm(n_v=12, n_h=7, visible="bernoulli", backend="csr", seed=0, sigma=0.6):
    rbm = SparseRBM(n_v, n_h, density=0.45, visible=visible, backend=backend, seed=seed,
                    init=("normal", sigma)).double()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.randn(n_v, generator=g, dtype=torch.float64) * 0.5)
        rbm.hidden_bias.copy_(torch.randn(n_h, generator=g, dtype=torch.float64) * 0.5)
    return rbm


def _dense(rbm):
    return rbm.linear.to_dense(), rbm.visible_bias.detach(), rbm.hidden_bias.detach()


@pytest.fixture(scope="module")
def digits():
    Xtr, _ = topo.datasets.load("digits", "train")
    Xte, _ = topo.datasets.load("digits", "test")
    return (torch.as_tensor(Xtr) > 0.5).double(), (torch.as_tensor(Xte) > 0.5).double()


@pytest.mark.parametrize("kernels", [True, False])
def test_products_match_dense(kernels):
    prev = set_enabled(kernels)
    try:
        rbm = _rbm(40, 25)
        W, b, c = _dense(rbm)
        v = torch.rand(9, 40, dtype=torch.float64)
        h = torch.rand(9, 25, dtype=torch.float64)
        torch.testing.assert_close(rbm.hidden_probs(v), torch.sigmoid(v @ W.t() + c))
        torch.testing.assert_close(rbm(v), torch.sigmoid(v @ W.t() + c))
        torch.testing.assert_close(rbm.visible_mean(h), torch.sigmoid(h @ W + b))
        stats = rbm._edge_stats(h.t().contiguous(), v.t().contiguous())
        ei = rbm.linear.edge_index
        torch.testing.assert_close(stats, (h.t() @ v)[ei[1], ei[0]])
        fe = -(v @ b) - torch.nn.functional.softplus(v @ W.t() + c).sum(1)
        torch.testing.assert_close(rbm.free_energy(v), fe)
    finally:
        set_enabled(prev)


@pytest.mark.parametrize("backend", ["csr", "dense"])
def test_cd1_gradient_matches_dense_reference(backend):
    rbm = _rbm(30, 10, backend=backend)
    W, b, c = _dense(rbm)
    v = (torch.rand(16, 30, generator=torch.Generator().manual_seed(1)) > 0.5).double()
    err, vk = rbm.contrastive_divergence(v, k=1, generator=torch.Generator().manual_seed(5))
    # The same draws, in the same order, by dense torch ops.
    g = torch.Generator().manual_seed(5)
    h0 = torch.sigmoid(v @ W.t() + c)
    hs = (torch.rand(h0.t().shape, generator=g, dtype=torch.float64).t() < h0).double()
    m = torch.sigmoid(hs @ W + b)
    vs = (torch.rand(m.t().shape, generator=g, dtype=torch.float64).t() < m).double()
    hk = torch.sigmoid(vs @ W.t() + c)
    dW = -(h0.t() @ v - hk.t() @ vs) / 16
    ei = rbm.linear.edge_index
    torch.testing.assert_close(rbm.linear.weight.grad, dW[ei[1], ei[0]])
    torch.testing.assert_close(rbm.hidden_bias.grad, (hk - h0).mean(0))
    torch.testing.assert_close(rbm.visible_bias.grad, (vs - v).mean(0))
    torch.testing.assert_close(vk, vs)
    assert err == pytest.approx(float(((v - m) ** 2).mean()))


def test_persistent_chain_has_its_own_batch():
    rbm = _rbm(20, 8)
    v = (torch.rand(10, 20) > 0.5).double()
    chain = (torch.rand(4, 20) > 0.5).double()
    _, end = rbm.contrastive_divergence(v, k=3, generator=torch.Generator().manual_seed(0), chain=chain)
    assert end.shape == (4, 20) and set(end.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ParameterError, match="positive int"):
        rbm.contrastive_divergence(v, k=0)
    with pytest.raises(ParameterError, match="shape"):
        rbm.contrastive_divergence(v[:, :5])
    with pytest.raises(ParameterError, match="dtype"):
        rbm.contrastive_divergence(v.float())


def test_exact_log_partition_matches_brute_force():
    rbm = _rbm(8, 6)
    W, b, c = _dense(rbm)
    vs = torch.tensor(list(itertools.product([0, 1], repeat=8)), dtype=torch.float64)
    hs = torch.tensor(list(itertools.product([0, 1], repeat=6)), dtype=torch.float64)
    neg_e = (vs @ b)[:, None] + (hs @ c)[None, :] + vs @ W.t() @ hs.t()
    truth = float(torch.logsumexp(neg_e.flatten(), 0))
    assert ais.exact_log_partition(rbm) == pytest.approx(truth, abs=1e-9)
    wide = _rbm(6, 9)  # fewer visible than hidden units: enumerates the visible layer
    W, b, c = _dense(wide)
    vs = torch.tensor(list(itertools.product([0, 1], repeat=6)), dtype=torch.float64)
    hs = torch.tensor(list(itertools.product([0, 1], repeat=9)), dtype=torch.float64)
    neg_e = (vs @ b)[:, None] + (hs @ c)[None, :] + vs @ W.t() @ hs.t()
    assert ais.exact_log_partition(wide) == pytest.approx(float(torch.logsumexp(neg_e.flatten(), 0)), abs=1e-9)
    with pytest.raises(ParameterError, match="max_units"):
        ais.exact_log_partition(SparseRBM(40, 30, density=0.1, seed=0))


def test_gaussian_log_partition_integrates_the_density():
    rbm = _rbm(2, 3, visible="gaussian", sigma=0.8)
    grid = torch.linspace(-9, 9, 1201, dtype=torch.float64)
    vv = torch.cartesian_prod(grid, grid)
    step = float(grid[1] - grid[0])
    log_int = float(torch.logsumexp(-rbm.free_energy(vv), 0)) + 2 * math.log(step)
    assert ais.exact_log_partition(rbm) == pytest.approx(log_int, abs=1e-6)


def test_ais_within_a_tenth_of_a_nat_of_exact(digits):
    """A trained 64→16 SET-RBM on binarised digits: AIS log Z and test log-likelihood vs enumeration."""
    Xtr, Xte = digits
    rbm = SparseRBM(64, 16, epsilon=4, seed=0, dtype=torch.float64)
    ev = topo.Evolver(rbm, topo.rules.SET(0.3), seed=0)
    topo.train.RBMTrainer(rbm, evolver=ev, epochs=6, batch_size=20, lr=0.05, progress=False).fit(Xtr)
    exact = ais.exact_log_partition(rbm)
    est = ais.ais_log_partition(rbm, Xtr, n_betas=3000, n_runs=100, generator=0)
    assert abs(est.log_z - exact) < 0.1
    assert est.log_z_low <= est.log_z <= est.log_z_high
    ll_exact = ais.log_likelihood(rbm, Xte, exact)
    ll_ais = ais.log_likelihood(rbm, Xte, est)
    assert abs(ll_ais.mean - ll_exact.mean) < 0.1
    assert ll_ais.low <= ll_ais.mean <= ll_ais.high
    # Training moved the model far from its starting point: the test likelihood is not trivial.
    assert ll_exact.mean > -64 * math.log(2) + 10


def test_ais_gaussian_visible():
    rbm = _rbm(10, 8, visible="gaussian", sigma=0.3)
    est = ais.ais_log_partition(rbm, torch.randn(50, 10, dtype=torch.float64), n_betas=2000, n_runs=100,
                                generator=1)
    assert abs(est.log_z - ais.exact_log_partition(rbm)) < 0.1


def test_ais_is_seeded_and_checks_its_input():
    rbm = _rbm(10, 6)
    a = ais.ais_log_partition(rbm, n_betas=200, n_runs=10, generator=3)
    b = ais.ais_log_partition(rbm, n_betas=200, n_runs=10, generator=3)
    assert torch.equal(a.log_w, b.log_w)
    with pytest.raises(ParameterError, match="betas"):
        ais.ais_log_partition(rbm, betas=[0.0, 0.7, 0.5, 1.0])
    with pytest.raises(ParameterError, match="n_runs"):
        ais.ais_log_partition(rbm, n_runs=0)


def test_pseudo_likelihood_is_unbiased():
    rbm = _rbm(10, 6)
    v = (torch.rand(5, 10, generator=torch.Generator().manual_seed(2)) > 0.5).double()
    f = rbm.free_energy(v)
    exact = sum(float(torch.nn.functional.logsigmoid(rbm.free_energy(_flip(v, i)) - f).mean()) for i in range(10))
    g = torch.Generator().manual_seed(0)
    est = np.mean([rbm.pseudo_likelihood(v, g) for _ in range(400)])
    assert est == pytest.approx(exact, rel=0.05)
    with pytest.raises(ParameterError, match="binary"):
        _rbm(4, 3, visible="gaussian").pseudo_likelihood(v[:, :4])


def _flip(v, i):
    out = v.clone()
    out[:, i] = 1 - out[:, i]
    return out


def test_training_raises_pseudo_likelihood_and_evolves(digits):
    Xtr, Xte = digits
    rbm = SparseRBM(64, 32, epsilon=5, seed=1)
    before = rbm.pseudo_likelihood(Xte.float(), 0)
    ev = topo.Evolver(rbm, topo.rules.SET(0.3), seed=0)
    t = topo.train.RBMTrainer(rbm, evolver=ev, epochs=4, batch_size=25, lr=0.05, progress=False,
                              seed=0).fit(Xtr[:600].numpy(), Xte.float())
    m = t.metrics_
    assert list(m.epoch) == [1, 2, 3, 4]
    assert (m.num_edges == rbm.num_edges).all()
    assert m.pseudo_likelihood.iloc[-1] > before + 5
    assert m.test_reconstruction_error.iloc[-1] < m.test_reconstruction_error.iloc[0]
    assert ev.history_.epochs == [0.0, 1.0, 2.0, 3.0]  # no evolution after the last epoch
    births = ev.history_.changes(1.0)[0].births.shape[1]
    assert births == pytest.approx(0.3 * rbm.num_edges, abs=2)
    # Momentum follows the surviving edges.
    buf = t.optimizer_.state[rbm.linear.weight]["momentum_buffer"]
    assert buf.shape == rbm.linear.weight.shape


def test_persistent_cd_trains(digits):
    Xtr, _ = digits
    rbm = SparseRBM(64, 16, epsilon=4, seed=0)
    t = topo.train.RBMTrainer(rbm, persistent=True, k=2, epochs=3, batch_size=25, lr=0.05, progress=False).fit(Xtr)
    assert t.metrics_.reconstruction_error.iloc[-1] < t.metrics_.reconstruction_error.iloc[0]
    assert t._chain.shape == (25, 64)


def test_save_load_roundtrip_without_pickle(tmp_path, digits):
    Xtr, Xte = digits
    rbm = SparseRBM(64, 20, epsilon=3, seed=0, visible="bernoulli")
    ev = topo.Evolver(rbm, topo.rules.SET(0.3), seed=0)
    topo.train.RBMTrainer(rbm, evolver=ev, epochs=2, batch_size=50, progress=False).fit(Xtr)
    path = tmp_path / "rbm.npz"
    rbm.save(path)
    with zipfile.ZipFile(path) as z:
        assert all(n.endswith(".npy") for n in z.namelist())
    back = SparseRBM.load(path)
    assert torch.equal(back.linear.edge_index, rbm.linear.edge_index)
    torch.testing.assert_close(back.free_energy(Xte.float()), rbm.free_energy(Xte.float()))
    assert back.regrow_init == rbm.regrow_init
    fresh = SparseRBM(64, 20, epsilon=3, seed=9)
    fresh.load_state_dict(rbm.state_dict())  # a plain state_dict resizes the edge set too
    torch.testing.assert_close(fresh.free_energy(Xte.float()), rbm.free_energy(Xte.float()))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(TopologyFormatError, match="not a SparseRBM"):
        SparseRBM.load(tmp_path / "bad.npz")


def test_run_directory_and_bit_identical_resume(tmp_path, digits):
    Xtr, Xte = digits
    Xtr = Xtr[:400].float()

    def run(out, epochs, resume=False):
        rbm = SparseRBM(64, 12, epsilon=3, seed=0)
        ev = topo.Evolver(rbm, topo.rules.SET(0.3), seed=0)
        t = topo.train.RBMTrainer(rbm, evolver=ev, epochs=epochs, batch_size=40, out_dir=out, resume=resume,
                                  progress=False, persistent=True).fit(Xtr, Xte.float())
        return rbm, t

    full, tf = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    part, tp = run(tmp_path / "b", 3, resume=True)
    assert torch.equal(full.linear.edge_index, part.linear.edge_index)
    assert torch.equal(full.linear.weight, part.linear.weight)
    cols = ["train_loss", "test_loss", "pseudo_likelihood", "num_edges"]
    assert tf.metrics_[cols].equals(tp.metrics_[cols])
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"config.json", "metrics.csv", "topology.npz", "history.npz", "checkpoint.pt"} <= names
    h = topo.History.load(tmp_path / "a" / "history.npz")
    assert h.epochs == [0.0, 1.0, 2.0]
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["model"] == "SparseRBM" and cfg["sizes"] == [64, 12] and cfg["rule"] == "set"
    with pytest.raises(FileExistsError):
        run(tmp_path / "a", 3)


def test_trainer_rejects_bad_settings(digits):
    Xtr, _ = digits
    rbm = SparseRBM(64, 8, epsilon=2, seed=0)
    with pytest.raises(ParameterError, match="lr"):
        topo.train.RBMTrainer(rbm, lr=-1, progress=False).fit(Xtr.float())
    with pytest.raises(ParameterError, match="features"):
        topo.train.RBMTrainer(rbm, epochs=1, progress=False).fit(Xtr[:, :10].float())
    with pytest.raises(ParameterError, match="NaN"):
        topo.train.RBMTrainer(rbm, epochs=1, progress=False).fit(torch.full((4, 64), float("nan")))
    with pytest.raises(ParameterError, match="visible"):
        SparseRBM(4, 3, visible="poisson")


@cuda
@pytest.mark.cuda
def test_cuda_matches_cpu():
    rbm = _rbm(50, 20)
    gpu = _rbm(50, 20).to("cuda")
    v = (torch.rand(8, 50) > 0.5).double()
    torch.testing.assert_close(gpu.free_energy(v.cuda()).cpu(), rbm.free_energy(v))
    torch.testing.assert_close(gpu.visible_mean(rbm.hidden_probs(v).cuda()).cpu(),
                               rbm.visible_mean(rbm.hidden_probs(v)))
    gpu.contrastive_divergence(v.cuda(), generator=torch.Generator().manual_seed(0))
    rbm.contrastive_divergence(v, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gpu.linear.weight.grad.cpu(), rbm.linear.weight.grad)
