"""topo's CPU CSR kernels against dense references, and the csr backend with and without them."""

import os

import pytest
import torch

import topo
from topo.nn import kernels

pytest.importorskip("numba", reason="topo's CPU kernels need numba (a core dependency: pip install -e .)")


def _random_csr(n_rows, n_cols, density, dtype, index_dtype, seed, hub_row=None):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n_rows, n_cols, generator=g) < density
    mask[0] = False                                   # an empty row
    if hub_row is not None:
        mask[hub_row] = True                          # a hub: every column
    dense = torch.randn(n_rows, n_cols, generator=g, dtype=dtype) * mask
    csr = dense.to_sparse_csr()
    crow, col = csr.crow_indices().to(index_dtype), csr.col_indices().to(index_dtype)
    return dense, crow, col, csr.values().clone()


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("width", [1, 7, 128])
def test_spmm_matches_dense(dtype, index_dtype, width, threads):
    dense_w, crow, col, values = _random_csr(53, 41, 0.15, dtype, index_dtype, seed=width, hub_row=7)
    x = torch.randn(41, width, dtype=dtype)
    bias = torch.randn(53, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kernels.spmm(crow, col, values, x), dense_w @ x, **tol)
    torch.testing.assert_close(kernels.spmm(crow, col, values, x, bias=bias), dense_w @ x + bias[:, None], **tol)


def test_spmm_perm_reads_values_through_the_permutation(threads):
    dense_w, crow, col, values = _random_csr(30, 20, 0.3, torch.float64, torch.int32, seed=3)
    perm = torch.randperm(values.numel(), generator=torch.Generator().manual_seed(0))
    shuffled = torch.empty_like(values)
    shuffled[perm] = values                           # values[k] == shuffled[perm[k]]
    x = torch.randn(20, 5, dtype=torch.float64)
    torch.testing.assert_close(kernels.spmm(crow, col, shuffled, x, perm=perm.to(torch.int32)), dense_w @ x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("width", [1, 3, 128])
def test_sddmm_matches_dense(dtype, width, threads):
    dense_w, crow, col, _ = _random_csr(47, 35, 0.2, dtype, torch.int32, seed=width, hub_row=5)
    a = torch.randn(47, width, dtype=dtype)
    b = torch.randn(35, width, dtype=dtype)
    rows = torch.repeat_interleave(torch.arange(47), crow[1:].long() - crow[:-1].long())
    expected = (a @ b.t())[rows, col.long()]
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kernels.sddmm(crow, col, a, b), expected, **tol)


def test_empty_operands():
    crow = torch.zeros(4, dtype=torch.int32)
    col = torch.zeros(0, dtype=torch.int32)
    out = kernels.spmm(crow, col, torch.zeros(0), torch.randn(5, 2), bias=torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    assert kernels.sddmm(crow, col, torch.randn(3, 2), torch.randn(5, 2)).numel() == 0


def test_supports_only_cpu_floating_tensors():
    assert kernels.supports(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
    assert not kernels.supports(torch.zeros(2, dtype=torch.float16))
    previous = kernels.set_enabled(False)
    try:
        assert not kernels.enabled() and not kernels.supports(torch.zeros(2))
    finally:
        kernels.set_enabled(previous)


def _step(mod, x):
    x = x.clone().requires_grad_()
    y = mod(x)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return y.detach(), x.grad, mod.weight.grad.clone(), mod.bias.grad.clone()


def test_csr_backend_same_with_and_without_kernels(threads):
    mod = topo.nn.SparseLinear(120, 90, epsilon=6, seed=0, backend="csr")
    x = torch.randn(33, 120, generator=torch.Generator().manual_seed(1))
    with_kernels = _step(mod, x)
    mod.zero_grad()
    previous = kernels.set_enabled(False)
    try:
        torch_ops = _step(mod, x)
    finally:
        kernels.set_enabled(previous)
    for a, b in zip(with_kernels, torch_ops):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_csr_backend_gradcheck_through_kernels():
    assert kernels.enabled()
    mod = topo.nn.SparseLinear(9, 7, epsilon=2, seed=0, backend="csr").double()
    x = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    fn = topo.nn.csr_linear
    st = mod.csr_structure()
    w = mod.weight.detach().clone().requires_grad_()
    b = mod.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: fn(x, w, b, st), (x, w, b))


def test_first_use_keeps_the_torch_thread_setting():
    # numba's OpenMP pool resets the process's OpenMP thread count when it starts; topo puts back
    # the user's torch.set_num_threads (a fresh process: the pool starts only once per process).
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1); from topo.nn import kernels; "
            "kernels.spmm(torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([1.0]), torch.ones(1, 2)); "
            "import numba; print(torch.get_num_threads(), numba.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(37, 5), (128, 200), (3, 1), (1, 4), (784, 128), (1001, 130), (50, 16), (65, 33),
                                   (2000, 128), (4000, 17)])
def test_contiguous_rows_of_any_layout(shape, dtype, threads):
    # The transpose works in 64-byte register tiles (16 x 16 float32, 8 x 8 float64) and copies
    # ragged edges element-wise: shapes on and off the tile grid, wide inputs split in bands.
    base = torch.randn(shape[1], shape[0] + 3, dtype=dtype)
    for d in (base[:, : shape[0]].t(),                           # transposed view of a padded row-major array
              base.t().contiguous()[: shape[0]],                 # contiguous already
              base[:, : shape[0]].t().contiguous().t().t(),      # transposed view of a contiguous array
              torch.ones(()).double().expand(*shape)):           # broadcast (y.sum()'s gradient)
        out = kernels.contiguous_rows(d)
        assert out.is_contiguous() and torch.equal(out, d)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows,batch", [(53, 19), (301, 128), (40, 3)])
def test_spmm_reads_and_writes_row_major_layouts(dtype, rows, batch, threads):
    # transpose_out stores tiles of rows by register transposes; partial tiles (rows, batch not
    # multiples of the tile) element-wise.
    dense_w, crow, col, values = _random_csr(rows, 41, 0.15, dtype, torch.int32, seed=4, hub_row=7)
    x = torch.randn(batch, 41, dtype=dtype)              # a (batch, n) row-major input
    bias = torch.randn(rows, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    out = kernels.spmm(crow, col, values, x.t(), bias=bias, transpose_out=True)
    assert out.t().is_contiguous()                       # written straight into the (batch, n_rows) layout
    torch.testing.assert_close(out, dense_w @ x.t() + bias[:, None], **tol)
    a = torch.randn(min(11, batch), rows, dtype=dtype)
    row_of = torch.repeat_interleave(torch.arange(rows), crow[1:].long() - crow[:-1].long())
    torch.testing.assert_close(kernels.sddmm(crow, col, a.t(), x[:len(a)].t()),
                               (a.t() @ x[:len(a)])[row_of, col.long()], **tol)


@pytest.mark.parametrize("layout", ["row-major", "transposed", "column-slice", "batch-slice"])
def test_csr_layer_gradients_in_every_input_layout(layout, threads):
    mod = topo.nn.SparseLinear(70, 45, epsilon=5, seed=0, backend="csr").double()
    g = torch.Generator().manual_seed(2)
    base = torch.randn(40, 80, dtype=torch.float64, generator=g)
    x = {"row-major": base[:, :70].contiguous(), "transposed": base[:, :70].t().contiguous().t(),
         "column-slice": base[:, 5:75], "batch-slice": base[::2, :70]}[layout].detach().requires_grad_()
    gy = torch.randn(x.shape[0], 45, dtype=torch.float64, generator=g)
    for upstream in (gy, gy.t().contiguous().t()):       # row-major and transposed upstream gradients
        x.grad, mod.weight.grad, mod.bias.grad = None, None, None
        mod(x).backward(upstream)
        w = mod.to_dense().requires_grad_()
        xr = x.detach().clone().requires_grad_()
        (xr @ w.t() + mod.bias.detach()).backward(upstream)
        ei = mod.edge_index.long()
        torch.testing.assert_close(x.grad, xr.grad)
        torch.testing.assert_close(mod.weight.grad, w.grad[ei[1], ei[0]])
        torch.testing.assert_close(mod.bias.grad, upstream.sum(0))
        # The input gradient comes back in the input's own layout: no copy by autograd.
        assert x.grad.stride(-1 if layout != "transposed" else 0) == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("transpose_out", [False, True])
@pytest.mark.parametrize("batch", [1, 5, 128])
def test_spmm_with_rows_of_a_row_major_operand(dtype, transpose_out, batch, threads):
    # spmm_with_rows: a (batch, n) row-major operand is transposed and multiplied in one kernel call;
    # the transposed copy it returns is what the layer saves for its backward pass.
    dense_w, crow, col, values = _random_csr(67, 45, 0.2, dtype, torch.int32, seed=batch, hub_row=3)
    x = torch.randn(batch, 45, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    out, rows = kernels.spmm_with_rows(crow, col, values, x.t(), transpose_out=transpose_out)
    assert rows.is_contiguous() and torch.equal(rows, x.t())
    torch.testing.assert_close(out, dense_w @ x.t(), **tol)
    contiguous = x.t().contiguous()
    out2, rows2 = kernels.spmm_with_rows(crow, col, values, contiguous)
    assert rows2 is contiguous
    torch.testing.assert_close(out2, dense_w @ x.t(), **tol)


def test_register_tile_transposes_on_other_instruction_sets(tmp_path):
    # The tile shuffles (topo.nn._simd) are plain LLVM vector IR; compiled for SSE2-only and AVX2
    # targets (4 or 2 registers per 64-byte tile row) they must give the same layouts.
    import subprocess
    import sys

    code = ("import torch; from topo.nn import kernels as K\n"
            "for dt in (torch.float32, torch.float64):\n"
            "    x = torch.randn(37, 70, dtype=dt)\n"
            "    assert torch.equal(K.contiguous_rows(x.t()), x.t().contiguous())\n"
            "    w = (torch.rand(40, 70) < 0.2).to(dt) * torch.randn(40, 70, dtype=dt)\n"
            "    c = w.to_sparse_csr()\n"
            "    out = K.spmm(c.crow_indices(), c.col_indices(), c.values(), x.t(), transpose_out=True)\n"
            "    assert torch.allclose(out, w @ x.t(), rtol=1e-5, atol=1e-5) and out.t().is_contiguous()\n"
            "print('ok')\n")
    for cpu in ("generic", "haswell"):
        env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CACHE_DIR": str(tmp_path / cpu)}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert out.returncode == 0 and out.stdout.strip() == "ok", (cpu, out.stderr[-2000:])
