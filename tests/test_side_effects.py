"""Importing or using topo leaves the caller's process as it was: warning filters, torch's global RNG."""

import os
import subprocess
import sys

import torch

from topo.cli.factory import build_model, dense_mlp


def test_import_installs_no_warning_filter_and_csr_use_emits_no_beta_notice():
    # A fresh process (torch's beta notice is once per process) with every warning an error and topo's
    # CPU kernels off, so the csr backend builds torch CSR tensors in forward and backward.
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import torch, topo\n"
        "beta = 'Sparse CSR tensor support is in beta state'\n"
        "assert not [f for f in warnings.filters if f[1] is not None and f[1].match(beta)], warnings.filters\n"
        "lin = topo.nn.SparseLinear(30, 20, epsilon=3, seed=0, backend='csr')\n"
        "x = torch.randn(5, 30, requires_grad=True)\n"
        "lin(x).sum().backward()\n"
        "ref = x.detach() @ lin.to_dense().t() + lin.bias.detach()\n"
        "assert torch.allclose(lin(x.detach()), ref, atol=1e-5)\n"
        "print('ok', x.grad.shape[1])\n")
    env = {**os.environ, "TOPO_CPU_KERNELS": "torch"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ok", "30"]


def test_dense_mlp_seed_leaves_the_global_rng_alone_and_matches_manual_seed():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = dense_mlp([6, 8, 3], seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    # Bit-identical to what the old code built (seed the global RNG, then construct).
    torch.manual_seed(7)
    ref = [torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)]
    linears = [m for m in a if isinstance(m, torch.nn.Linear)]
    for m, r in zip(linears, ref):
        assert torch.equal(m.weight, r.weight) and torch.equal(m.bias, r.bias)
    b = build_model([6, 8, 3], "dense", seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(dense_mlp([6, 8, 3], seed=8)[0].weight, a[0].weight)


def test_sparse_build_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    build_model([6, 8, 3], "set", epsilon=2, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
