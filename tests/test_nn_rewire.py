"""SparseLinear.rewire and remap_optimizer_state: survivors keep values and optimizer state exactly."""

import pytest
import torch

import topo
from topo.errors import ParameterError, TopologyError
from topo.graph import LayerGraph
from topo.nn import SparseLinear, remap_optimizer_state


def _pair(seed=0):
    """An old and a new layer sharing part of their edges (a prune-and-regrow step)."""
    old = topo.erdos_renyi([40, 30], density=0.2, seed=seed).layers[0]
    keys = old.keys()
    g = torch.Generator().manual_seed(seed + 1)
    kept = keys[torch.randperm(keys.numel(), generator=g)[: keys.numel() * 2 // 3]]
    fresh = topo.graph.sample_keys(40 * 30, keys.numel() - kept.numel(), g, exclude=keys)
    new = LayerGraph.from_keys(40, 30, torch.cat([kept, fresh]))
    return old, new


def _brute_old_to_new(old: LayerGraph, new: LayerGraph) -> torch.Tensor:
    pos = {int(k): i for i, k in enumerate(new.keys())}
    return torch.tensor([pos.get(int(k), -1) for k in old.keys()])


def _train_steps(mod, opt, n=2):
    for _ in range(n):
        opt.zero_grad()
        mod(torch.randn(8, 40)).square().sum().backward()
        opt.step()


def test_rewire_keeps_matching_values_and_parameter():
    old, new = _pair()
    mod = SparseLinear.from_layer_graph(old, backend="csr", seed=0)
    param, before = mod.weight, mod.weight.detach().clone()
    m = mod.rewire(new, init="zeros")
    assert mod.weight is param and m.dtype == torch.int64
    assert torch.equal(m, _brute_old_to_new(old, new))
    survive = m >= 0
    assert torch.equal(mod.weight.detach()[m[survive]], before[survive])
    born = torch.ones(new.num_edges, dtype=torch.bool)
    born[m[survive]] = False
    assert born.sum() == new.num_edges - int(survive.sum()) and (mod.weight.detach()[born] == 0).all()
    # the cached CSR structure was rebuilt: outputs equal a dense product with the new edges
    x = torch.randn(5, 40)
    dense = torch.zeros(30, 40)
    dense[new.dst, new.src] = mod.weight.detach()
    torch.testing.assert_close(mod(x), x @ dense.t() + mod.bias.detach())
    assert mod.layer_graph().keys().equal(new.keys())


def test_rewire_init_schemes_and_keep_graph():
    old, new = _pair()
    mod = SparseLinear.from_layer_graph(old, seed=0)
    m = mod.rewire(new, init=("normal", 0.0))
    born = torch.ones(new.num_edges, dtype=torch.bool)
    born[m[m >= 0]] = False
    assert (mod.weight.detach()[born] == 0).all()
    a = SparseLinear.from_layer_graph(old, seed=0)
    b = SparseLinear.from_layer_graph(old, seed=0)
    a.rewire(new, init="xavier_uniform", generator=3)
    b.rewire(new, init="xavier_uniform", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.weight, b.weight)
    w = torch.randn(new.num_edges)
    mod.rewire(new.with_weight(w), keep="graph")
    assert torch.equal(mod.weight.detach(), w)
    with pytest.raises(ParameterError, match="weighted"):
        mod.rewire(new, keep="graph")
    with pytest.raises(ParameterError, match="keep must be"):
        mod.rewire(new, keep="everything")
    with pytest.raises(TopologyError, match="40->31"):
        mod.rewire(topo.erdos_renyi([40, 31], density=0.1, seed=0).layers[0])


def test_rewire_remaps_existing_grad():
    old, new = _pair()
    mod = SparseLinear.from_layer_graph(old, seed=0)
    mod(torch.randn(4, 40)).sum().backward()
    g_old = mod.weight.grad.clone()
    m = mod.rewire(new)
    assert mod.weight.grad.shape == (new.num_edges,)
    assert torch.equal(mod.weight.grad[m[m >= 0]], g_old[m >= 0])


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=0.01),
    lambda p: torch.optim.AdamW(p, lr=0.01, amsgrad=True),
])
def test_remap_optimizer_state(make_opt):
    old, new = _pair(3)
    mod = SparseLinear.from_layer_graph(old, backend="csr", seed=0)
    opt = make_opt(mod.parameters())
    _train_steps(mod, opt)
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in opt.state[mod.weight].items()}
    bias_state = {k: v.clone() for k, v in opt.state[mod.bias].items()}
    m = mod.rewire(new)
    assert remap_optimizer_state(opt, mod, m) >= 1
    keep = m >= 0
    born = torch.ones(new.num_edges, dtype=torch.bool)
    born[m[keep]] = False
    for key, old_v in before.items():
        new_v = opt.state[mod.weight][key]
        if key == "step":
            assert torch.equal(new_v, old_v)
            continue
        assert new_v.shape == (new.num_edges,)
        assert torch.equal(new_v[m[keep]], old_v[keep]) and (new_v[born] == 0).all()
    for key, v in bias_state.items():
        assert torch.equal(opt.state[mod.bias][key], v)
    _train_steps(mod, opt)          # training continues with the same optimizer


def test_remap_handles_none_momentum_and_errors():
    old, new = _pair()
    mod = SparseLinear.from_layer_graph(old, seed=0)
    opt = torch.optim.SGD(mod.parameters(), lr=0.1)          # momentum 0: buffer stays None
    _train_steps(mod, opt, 1)
    m = mod.rewire(new)
    assert remap_optimizer_state(opt, mod, m) == 0
    _train_steps(mod, opt, 1)
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ParameterError, match="not among this optimizer"):
        remap_optimizer_state(other, mod, m)
    with pytest.raises(ParameterError, match="after layer.rewire"):
        remap_optimizer_state(opt, mod, torch.full((5,), new.num_edges + 3))


@pytest.mark.parametrize("backend", ["csr", "dense"])
@pytest.mark.parametrize("keep_grad", [False, True])
def test_rewire_to_another_edge_count_while_an_old_graph_is_alive(backend, keep_grad):
    # Users keep losses (`losses.append(loss)`), and reference cycles outlive a step until the collector
    # runs: autograd must not check the next gradient against the old edge count.
    m = SparseLinear(10, 5, density=1.0, seed=0, backend=backend)
    x = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    kept = m(x).sum()
    kept.backward(retain_graph=True)  # d/dW[dst, src] of sum(y) = sum of x[:, src]
    if not keep_grad:
        m.weight.grad = None
    g = m.layer_graph()
    m.rewire(LayerGraph(10, 5, g.src[:28], g.dst[:28]))
    assert m.num_edges == 28
    m(x).square().sum().backward()
    src, dst = m.edge_index.long()
    w = m.weight.detach().clone().requires_grad_()
    dense = torch.zeros(5, 10).index_put((dst, src), w)
    torch.nn.functional.linear(x, dense, m.bias.detach()).square().sum().backward()
    expect = w.grad + (x.sum(0)[src] if keep_grad else 0)
    torch.testing.assert_close(m.weight.grad, expect)
