"""SparseLinear: outputs and gradients against a dense torch reference, module plumbing, bad input."""

import pytest
import torch

import topo
from topo.errors import ParameterError, TopoError, TopologyError
from topo.graph import LayerGraph
from topo.nn import BackendUnavailableError, SparseLinear, torch_sparse_available

BACKENDS = ["csr", "dense"] + (["torch_sparse"] if torch_sparse_available() else [])


def _layer(n_in=30, n_out=20, density=0.2, seed=0):
    return topo.erdos_renyi([n_in, n_out], density=density, seed=seed).layers[0]


def _dense_reference(mod: SparseLinear, x: torch.Tensor, gy: torch.Tensor):
    """Independent reference: a dense weight matrix built by indexing, plain autograd."""
    src, dst = mod.edge_index
    wd = torch.zeros(mod.out_features, mod.in_features, dtype=x.dtype)
    wd[dst, src] = mod.weight.detach()
    wd.requires_grad_()
    b = mod.bias.detach().clone().requires_grad_() if mod.bias is not None else None
    xr = x.detach().clone().requires_grad_()
    y = xr @ wd.t() + (b if b is not None else 0)
    y.backward(gy)
    return y.detach(), xr.grad, wd.grad[dst, src], (b.grad if b is not None else None)


def _assert_matches_dense(mod, batch):
    x = torch.randn(batch, mod.in_features, requires_grad=True)
    gy = torch.randn(batch, mod.out_features)
    y = mod(x)
    y.backward(gy)
    y_ref, gx_ref, gv_ref, gb_ref = _dense_reference(mod, x, gy)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, gx_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mod.weight.grad, gv_ref, rtol=1e-5, atol=1e-5)
    if mod.bias is not None:
        torch.testing.assert_close(mod.bias.grad, gb_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
def test_outputs_and_gradients_match_dense_reference(backend, bias):
    _assert_matches_dense(SparseLinear.from_layer_graph(_layer(), bias=bias, backend=backend, seed=1), batch=7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_float64(backend):
    g = _layer(9, 6, 0.3, seed=3)
    mod = SparseLinear.from_layer_graph(g, backend=backend, seed=0, dtype=torch.float64)
    x = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        if backend == "csr":
            return topo.nn.csr_linear(x, w, b, mod.csr_structure())
        if backend == "dense":
            return topo.nn.dense_linear(x, w, b, mod.edge_index[0], mod.edge_index[1], 9, 6)
        return topo.nn.torch_sparse_linear(x, w, b, mod.csr_structure())

    assert torch.autograd.gradcheck(f, (x, mod.weight, mod.bias))


def test_backends_agree_and_stack_in_transposed_layout():
    # Two layers + ReLU: the csr output is a transposed view feeding the next layer; both the
    # forward values and all gradients must equal the dense backend's.
    g1, g2 = topo.erdos_renyi([40, 30, 10], density=0.25, seed=5).layers
    results = {}
    for backend in BACKENDS:
        l1 = SparseLinear.from_layer_graph(g1, backend=backend, seed=0)
        l2 = SparseLinear.from_layer_graph(g2, backend=backend, seed=1)
        x = torch.randn(16, 40, generator=torch.Generator().manual_seed(2), requires_grad=True)
        y = l2(torch.relu(l1(x)))
        y.square().sum().backward()
        results[backend] = [y, x.grad, l1.weight.grad, l1.bias.grad, l2.weight.grad]
    for backend in BACKENDS[1:]:
        for a, b in zip(results["csr"], results[backend]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(30,), (2, 3, 30)])
def test_any_leading_dimensions(shape):
    mod = SparseLinear.from_layer_graph(_layer(), backend="csr", seed=0)
    x = torch.randn(*shape)
    y = mod(x)
    assert y.shape == shape[:-1] + (20,)
    ref = x.reshape(-1, 30) @ mod.to_dense().t() + mod.bias.detach()
    torch.testing.assert_close(y.reshape(-1, 20), ref, rtol=1e-5, atol=1e-5)


def test_empty_layer_and_empty_batch():
    e = torch.empty(0, dtype=torch.int64)
    mod = SparseLinear(5, 4, layer=LayerGraph(5, 4, e, e), backend="csr", seed=0)
    y = mod(torch.randn(3, 5))
    torch.testing.assert_close(y, mod.bias.detach().expand(3, 4))
    full = SparseLinear.from_layer_graph(_layer(), backend="csr", seed=0)
    assert full(torch.randn(0, 30)).shape == (0, 20)


def test_never_allocates_dense_matrix():
    # 100k x 100k float32 would be 40 GB, more than this machine has: any dense allocation fails.
    g = topo.erdos_renyi([100_000, 100_000], epsilon=1, seed=0).layers[0]
    mod = SparseLinear.from_layer_graph(g, backend="auto", seed=0)
    assert mod.active_backend == "csr"
    x = torch.randn(4, 100_000, requires_grad=True)
    mod(x).sum().backward()
    assert mod.weight.grad.shape == (g.num_edges,) and x.grad.shape == x.shape


def test_no_grad_and_hooks():
    mod = SparseLinear.from_layer_graph(_layer(), backend="csr", seed=0)
    seen = []
    mod.register_forward_hook(lambda m, inp, out: seen.append((inp[0].shape, out.shape)))
    with torch.no_grad():
        y = mod(torch.randn(3, 30))
    assert not y.requires_grad and seen == [((3, 30), (3, 20))]


def test_state_dict_round_trip_and_resize():
    a = SparseLinear(30, 20, density=0.2, seed=0)
    b = SparseLinear(30, 20, density=0.5, seed=9)   # other edge count: loading resizes
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.weight, b.weight)
    x = torch.randn(4, 30)
    torch.testing.assert_close(a(x), b(x))
    assert set(a.state_dict()) == {"weight", "bias", "edge_index"}


def test_double_and_layer_graph():
    mod = SparseLinear.from_layer_graph(_layer(), backend="csr", seed=0).double()
    assert mod.weight.dtype == torch.float64 and mod.edge_index.dtype == torch.int32  # indices keep their dtype
    x = torch.randn(2, 30, dtype=torch.float64)
    torch.testing.assert_close(mod(x), x @ mod.to_dense().t() + mod.bias.detach())
    g = mod.layer_graph()
    assert g == LayerGraph(30, 20, mod.edge_index[0], mod.edge_index[1], mod.weight.detach())
    assert g.weight.data_ptr() != mod.weight.data_ptr()


def test_weighted_graph_values_and_seeds():
    g = _layer().with_weight(torch.arange(_layer().num_edges, dtype=torch.float32))
    assert torch.equal(SparseLinear.from_layer_graph(g).weight.detach(), g.weight)
    a, b = SparseLinear(50, 40, epsilon=3, seed=4), SparseLinear(50, 40, epsilon=3, seed=4)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.weight, b.weight)
    torch.manual_seed(0)
    c = SparseLinear(50, 40, epsilon=3)
    torch.manual_seed(0)
    assert torch.equal(c.weight, SparseLinear(50, 40, epsilon=3).weight)


def test_default_init_uses_mean_in_degree():
    mod = SparseLinear(1000, 500, epsilon=5, seed=0)     # fan_in = E / n_out
    bound = (6 / (mod.num_edges / 500)) ** 0.5
    w = mod.weight.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert mod.bias.abs().max() <= 1 / (mod.num_edges / 500) ** 0.5


@pytest.mark.parametrize("init, bound", [("xavier_uniform_dense", (6 / (1000 + 500)) ** 0.5),
                                         ("glorot_uniform_dense", (6 / (1000 + 500)) ** 0.5),
                                         ("kaiming_uniform_dense", (6 / 1000) ** 0.5)])
def test_dense_fan_inits_use_the_layer_shape(init, bound):
    # SET's Keras and CTRE's code draw a masked dense layer's init: bounds from n_in, n_out, not the degrees.
    mod = SparseLinear(1000, 500, epsilon=5, seed=0, init=init)
    w = mod.weight.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert w.abs().max() < 0.2 * (6 / (mod.num_edges / 500)) ** 0.5  # far below the effective-fan bound
    b = mod.bias.detach()
    assert b.abs().max() <= 1 / 1000 ** 0.5 and b.abs().max() > 0.9 / 1000 ** 0.5  # nn.Linear's bias bound
    with pytest.raises(TopoError, match="xavier_uniform_dense"):
        SparseLinear(10, 5, epsilon=1, init="xavier_dense")


@pytest.mark.parametrize("bad, match", [
    (torch.randn(3, 29), r"\(3x29 and 30x20\).*in_features=30"),
    (torch.randn(3, 30, dtype=torch.float64), "float64.*float32"),
    (torch.randint(0, 3, (3, 30)), "int64"),
    (torch.empty(3, 30, device="meta"), "meta"),
    (torch.tensor(1.0), "0-D"),
    ([[1.0] * 30], "list"),
])
def test_bad_input_raises_what_nn_linear_raises(bad, match):
    # issue 13 item 4: the same exception type as nn.Linear (RuntimeError, TypeError for a non-tensor),
    # with a message naming the shapes/dtypes/devices; never a TopologyError.
    mod = SparseLinear.from_layer_graph(_layer(), seed=0)
    with pytest.raises(Exception) as dense_error:
        torch.nn.Linear(30, 20)(bad)
    with pytest.raises(dense_error.type, match=match) as sparse_error:
        mod(bad)
    assert not isinstance(sparse_error.value, TopologyError)


def test_bad_construction():
    with pytest.raises(TopologyError, match="30->20 but the module is 30->21"):
        SparseLinear(30, 21, layer=_layer())
    with pytest.raises(ParameterError, match="'cusparse'"):
        SparseLinear(30, 20, layer=_layer(), backend="cusparse")
    with pytest.raises(ParameterError, match="layer=, epsilon= or density="):
        SparseLinear(30, 20)
    with pytest.raises(ParameterError, match="not both"):
        SparseLinear(30, 20, layer=_layer(), epsilon=2)
    with pytest.raises(ParameterError, match="in_features"):
        SparseLinear(0, 20, epsilon=2)
    with pytest.raises(ParameterError, match="'uniformish'"):
        SparseLinear(30, 20, epsilon=2, init="uniformish")


@pytest.mark.skipif(torch_sparse_available(), reason="torch_sparse is installed")
def test_torch_sparse_missing_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match=r"pip install -e \.\[torch-sparse\]"):
        SparseLinear(30, 20, epsilon=2, backend="torch_sparse")
    with pytest.raises(ImportError):
        SparseLinear(30, 20, epsilon=2, backend="torch_sparse")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["csr", "dense"])
def test_cuda_matches_cpu(backend):
    cpu = SparseLinear.from_layer_graph(_layer(300, 200, 0.05), backend=backend, seed=0)
    gpu = SparseLinear.from_layer_graph(_layer(300, 200, 0.05), backend=backend, seed=0).to("cuda")
    x = torch.randn(16, 300, requires_grad=True)
    xg = x.detach().cuda().requires_grad_()
    cpu(x).square().sum().backward()
    gpu(xg).square().sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), x.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.weight.grad.cpu(), cpu.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.bias.grad.cpu(), cpu.bias.grad, rtol=1e-4, atol=1e-4)


@cuda
@pytest.mark.cuda
def test_cuda_never_allocates_dense():
    n = 20_000
    mod = SparseLinear(n, n, epsilon=20, seed=0, backend="csr").cuda()
    x = torch.randn(128, n, device="cuda", requires_grad=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    mod(x).sum().backward()
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base < n * n * 4 / 4


def test_sequential_deepcopy_and_optimizer_step():
    import copy

    net = torch.nn.Sequential(SparseLinear(30, 20, epsilon=3, seed=0, backend="csr"), torch.nn.ReLU(),
                              SparseLinear(20, 4, epsilon=3, seed=1, backend="csr"))
    x = torch.randn(5, 30)
    net(x)                                   # builds the CSR caches
    twin = copy.deepcopy(net)
    assert twin[0]._structure_cache is None
    torch.testing.assert_close(twin(x), net(x))
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(x).square().sum().backward()
    opt.step()
    assert not torch.equal(twin[0].weight, net[0].weight)
    assert torch.equal(twin[0].edge_index, net[0].edge_index)


def test_load_rejects_corrupt_edge_index():
    a = SparseLinear(30, 20, density=0.2, seed=0)
    sd = a.state_dict()
    bad = dict(sd, edge_index=sd["edge_index"].flip(1))
    with pytest.raises(TopologyError, match="not sorted"):
        SparseLinear(30, 20, density=0.2, seed=1).load_state_dict(bad)
    bad = dict(sd, edge_index=sd["edge_index"] + 30)
    with pytest.raises(TopologyError, match="outside a 30->20 layer"):
        SparseLinear(30, 20, density=0.2, seed=1).load_state_dict(bad)


def test_cache_blocked_products_match(monkeypatch):
    # Force the cache-blocking path of torch's CSR ops (normally only for operands above 8 MiB, and
    # only with topo's CPU kernels off) on a small layer.
    import topo.nn.functional as F
    from topo.nn import kernels

    monkeypatch.setattr(kernels, "_ENABLED", False)
    monkeypatch.setattr(F, "_BLOCK_BYTES", 0)
    monkeypatch.setattr(F, "_BLOCK_COLS", 3)
    _assert_matches_dense(SparseLinear.from_layer_graph(_layer(), backend="csr", seed=0), batch=10)

def test_edge_index_is_int32_and_old_int64_state_dicts_load():
    from topo.nn.linear import edge_index_dtype

    mod = SparseLinear.from_layer_graph(_layer(), seed=0)
    assert mod.edge_index.dtype == torch.int32
    assert edge_index_dtype(2**31 - 1, 5) == torch.int32 and edge_index_dtype(2**31, 5) == torch.int64
    g = mod.layer_graph()
    assert g.src.dtype == torch.int64 and g == _layer().with_weight(mod.weight.detach())
    # A state dict saved before int32 (int64 edge_index), same and different edge count.
    for eps in (2, 4):
        old = SparseLinear(30, 20, epsilon=eps, seed=1)
        sd = {k: (v.to(torch.int64) if k == "edge_index" else v) for k, v in old.state_dict().items()}
        new = SparseLinear.from_layer_graph(_layer(), seed=0)
        new.load_state_dict(sd)
        assert new.edge_index.dtype == torch.int32
        assert torch.equal(new.edge_index.long(), sd["edge_index"])
        x = torch.randn(5, 30)
        torch.testing.assert_close(new(x), old(x))
    # Rewiring keeps int32 and matches keys in 64 bits.
    other = topo.erdos_renyi([30, 20], epsilon=3, seed=5).layers[0]
    old_to_new = mod.rewire(other)
    assert mod.edge_index.dtype == torch.int32 and mod.layer_graph().keys().equal(other.keys())
    assert old_to_new.dtype == torch.int64
