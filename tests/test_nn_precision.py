"""SparseLinear in float16, bfloat16 and float64, and under torch.autocast: no crash, float32 sums."""

import pytest
import torch

import topo
from topo.nn import SparseLinear

LOW = [torch.float16, torch.bfloat16]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _reference(mod, x, gy):
    """Output and gradients of a dense layer with the same (rounded) values, in float32 (float64 for float64)."""
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    w = mod.to_dense().to(dt).requires_grad_()
    b = mod.bias.detach().to(dt).requires_grad_()
    xr = x.detach().to(dt).requires_grad_()
    y = xr @ w.t() + b
    y.backward(gy.to(dt))
    ei = mod.edge_index.long()
    return y.detach(), xr.grad, w.grad[ei[1], ei[0]], b.grad


@pytest.mark.parametrize("backend", ["csr", "dense"])
@pytest.mark.parametrize("dtype", LOW + [torch.float64])
def test_parameters_in_any_floating_dtype(dtype, backend):
    # issue 14 bug 2: .half() / bfloat16 crashed in MKL's CSR addmm; now every dtype runs.
    mod = SparseLinear(100, 100, epsilon=5, seed=0, backend=backend).to(dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 100, generator=g).to(dtype).requires_grad_()
    gy = torch.randn(4, 100, generator=g).to(dtype)
    y = mod(x)
    y.backward(gy)
    assert y.dtype == x.grad.dtype == mod.weight.grad.dtype == mod.bias.grad.dtype == dtype
    ref = _reference(mod, x, gy)
    # float32 sums rounded once to the dtype: within the dtype's own tolerance of the float32 reference.
    for got, want in zip((y, x.grad, mod.weight.grad, mod.bias.grad), ref):
        torch.testing.assert_close(got, want.to(dtype))


def test_the_issue_one_liner():
    y = SparseLinear(100, 100, epsilon=5, seed=0).half()(torch.randn(4, 100, dtype=torch.float16))
    assert y.dtype == torch.float16 and torch.isfinite(y).all()


@pytest.mark.parametrize("backend", ["csr", "dense"])
@pytest.mark.parametrize("dtype", LOW)
def test_sums_accumulate_in_float32(dtype, backend):
    # 3000 ones summed: a float16 accumulator stalls at 2048, a bfloat16 one at 256.
    n = 3000
    layer = topo.from_dense_masks([torch.ones(1, n, dtype=torch.bool)]).layers[0]
    mod = SparseLinear.from_layer_graph(layer, bias=False, backend=backend).to(dtype)
    with torch.no_grad():
        mod.weight.fill_(1)
    y = mod(torch.ones(2, n, dtype=dtype))
    torch.testing.assert_close(y.float(), torch.full((2, 1), float(n)), rtol=1e-2, atol=0)
    mod(torch.ones(n, n, dtype=dtype)[:, :n]).sum().backward()   # weight gradient: a sum over 3000 samples
    torch.testing.assert_close(mod.weight.grad.float(), torch.full((n,), float(n)), rtol=1e-2, atol=0)


@pytest.mark.parametrize("backend", ["csr", "dense"])
@pytest.mark.parametrize("dtype", LOW)
def test_autocast_cpu(dtype, backend):
    mod = SparseLinear(120, 80, epsilon=6, seed=0, backend=backend)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 120, generator=g, requires_grad=True)
    gy = torch.randn(16, 80, generator=g)
    with torch.autocast("cpu", dtype=dtype):
        y = mod(x)
    assert y.dtype == dtype                                  # as nn.Linear under autocast
    y.backward(gy.to(dtype))
    assert mod.weight.dtype == mod.weight.grad.dtype == x.grad.dtype == torch.float32
    ref = _reference(mod, x, gy.to(dtype))
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=2e-3, atol=2e-3)
    for got, want in zip((y.float(), x.grad, mod.weight.grad, mod.bias.grad), ref):
        torch.testing.assert_close(got, want, **tol)


def test_autocast_leaves_float64_alone_as_nn_linear_does():
    mod = SparseLinear(30, 20, epsilon=2, seed=0).double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mod(torch.randn(3, 30, dtype=torch.float64)).dtype == torch.float64
        with pytest.raises(RuntimeError, match="float32|bfloat16"):
            mod(torch.randn(3, 30))


def test_bfloat16_halves_value_memory():
    mod = SparseLinear(1000, 1000, epsilon=20, seed=0)
    f32 = mod.weight.numel() * mod.weight.element_size()
    mod = mod.bfloat16()
    assert mod.weight.dtype == torch.bfloat16
    assert mod.weight.numel() * mod.weight.element_size() * 2 == f32
    mem = topo.estimate_memory([1000, 1000], epsilon=20, dtype=torch.bfloat16, evolve=False)
    assert mem.parameters * 2 == topo.estimate_memory([1000, 1000], epsilon=20, evolve=False).parameters


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", LOW)
def test_cuda_low_precision_and_autocast(dtype):
    mod = SparseLinear(300, 200, epsilon=10, seed=0, backend="csr").cuda()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(32, 300, generator=g).cuda().requires_grad_()
    gy = torch.randn(32, 200, generator=g).cuda()
    with torch.autocast("cuda", dtype=dtype):
        y = mod(x)
    assert y.dtype == dtype
    y.backward(gy.to(dtype))
    ref = _reference(mod, x, gy.to(dtype))
    for got, want in zip((y.float(), x.grad, mod.weight.grad, mod.bias.grad), ref):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    half = SparseLinear(300, 200, epsilon=10, seed=0, backend="csr").to("cuda", dtype)
    out = half(x.detach().to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
